// Umbrella header of the cast layer: includes every header of its folder.
#pragma once

#include <mixprec/cast/convert.hpp>
#include <mixprec/cast/convert_range.hpp>
#include <mixprec/cast/generator.hpp>
#include <mixprec/cast/hardware_convert.hpp>
#include <mixprec/cast/host_hardware_convert.hpp>
#include <mixprec/cast/philox.hpp>
#include <mixprec/cast/round.hpp>
#include <mixprec/cast/splitmix.hpp>
