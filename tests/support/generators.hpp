// Test support: the generator policies of stochastic rounding as doctest
// types (TEST_CASE_TEMPLATE over both).
#pragma once

#include <doctest/doctest.h>

#include <mixprec/cast/generator.hpp>

TYPE_TO_STRING(mixprec::splitmix_generator);
TYPE_TO_STRING(mixprec::philox_generator);
