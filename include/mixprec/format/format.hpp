// Umbrella header of the format layer.
#pragma once

#include <mixprec/format/bits.hpp>
#include <mixprec/format/format_traits.hpp>
