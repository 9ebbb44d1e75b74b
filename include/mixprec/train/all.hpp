// Umbrella header of the train layer: includes every header of its folder.
#pragma once

#include <mixprec/train/analysis.hpp>
#include <mixprec/train/chain.hpp>
#include <mixprec/train/every_k.hpp>
#include <mixprec/train/passes.hpp>
#include <mixprec/train/writers.hpp>
