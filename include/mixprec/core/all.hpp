// Umbrella header of the core layer: includes every header of its folder.
#pragma once

#include <mixprec/core/bit.hpp>
#include <mixprec/core/config.hpp>
#include <mixprec/core/error.hpp>
#include <mixprec/core/stream.hpp>
#include <mixprec/core/version.hpp>
