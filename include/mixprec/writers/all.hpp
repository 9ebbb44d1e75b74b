// Umbrella header of the writers layer: includes every header of its folder.
#pragma once

#include <mixprec/writers/kahan_summation.hpp>
#include <mixprec/writers/round_model_nearest.hpp>
#include <mixprec/writers/round_model_stochastic.hpp>
#include <mixprec/writers/writer.hpp>
