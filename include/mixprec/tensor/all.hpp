// Umbrella header of the tensor layer: includes every header of its folder.
#pragma once

#include <mixprec/tensor/arena_layout.hpp>
#include <mixprec/tensor/device_scalar.hpp>
#include <mixprec/tensor/elementwise.hpp>
#include <mixprec/tensor/initializers.hpp>
#include <mixprec/tensor/parameters.hpp>
#include <mixprec/tensor/reductions.hpp>
#include <mixprec/tensor/segment_reductions.hpp>
#include <mixprec/tensor/shape.hpp>
#include <mixprec/tensor/tensor.hpp>
#include <mixprec/tensor/tensor_view.hpp>
#include <mixprec/tensor/tiling.hpp>
