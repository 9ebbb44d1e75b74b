// Umbrella header of the format layer: includes every header of its folder.
#pragma once

#include <mixprec/format/bits.hpp>
#include <mixprec/format/format_traits.hpp>
