// Umbrella header of the optim layer: includes every header of its folder.
#pragma once

#include <mixprec/optim/optimizers.hpp>
#include <mixprec/optim/schedules.hpp>
#include <mixprec/optim/stages.hpp>
