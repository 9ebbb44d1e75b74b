// Umbrella header of the cast layer.
#pragma once

#include <mixprec/cast/convert.hpp>
#include <mixprec/cast/convert_range.hpp>
#include <mixprec/cast/philox.hpp>
#include <mixprec/cast/round.hpp>
