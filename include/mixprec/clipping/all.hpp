// Umbrella header of the clipping layer: includes every header of its folder.
#pragma once

#include <mixprec/clipping/clip_adaptive.hpp>
#include <mixprec/clipping/clip_by_global_norm.hpp>
#include <mixprec/clipping/clip_by_value.hpp>
