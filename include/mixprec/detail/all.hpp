// Umbrella header of the device primitives (internal).
#pragma once

#include <mixprec/detail/execution.hpp>
#include <mixprec/detail/for_each.hpp>
#include <mixprec/detail/memory.hpp>
#include <mixprec/detail/reduce.hpp>
#include <mixprec/detail/square_sum.hpp>
#include <mixprec/detail/tiles.hpp>
#include <mixprec/detail/workspace.hpp>
