// Umbrella header of the optim layer: includes every header of its folder.
#pragma once

#include <mixprec/optim/adafactor.hpp>
#include <mixprec/optim/adam_mini.hpp>
#include <mixprec/optim/ema.hpp>
#include <mixprec/optim/every_k.hpp>
#include <mixprec/optim/optimizers.hpp>
#include <mixprec/optim/schedules.hpp>
#include <mixprec/optim/stages.hpp>
