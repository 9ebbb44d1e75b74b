// Umbrella header of the scaling layer: includes every header of its folder.
#pragma once

#include <mixprec/scaling/dynamic_loss_scale.hpp>
#include <mixprec/scaling/fp8_scaling.hpp>
#include <mixprec/scaling/skip_if_non_finite.hpp>
#include <mixprec/scaling/static_loss_scale.hpp>
