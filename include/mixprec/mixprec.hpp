// mixprec: mixed-precision training components on Thrust/CUB.
// Including this header brings in every layer.
#pragma once

#include <mixprec/core/core.hpp>
#include <mixprec/format/format.hpp>
#include <mixprec/cast/cast.hpp>
