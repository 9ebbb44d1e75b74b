// Force-included (-include) into every source of test_passes_in_groups: the
// host runs every step's passes in the GPU's order (train/host_strategy.hpp),
// so the references and goldens those sources check cover the GPU's element
// code on a machine without a GPU.
#pragma once

#include <mixprec/train/host_strategy.hpp>

namespace mixprec::detail {
template <class Body>
struct host_strategy<Body, void> {
  using type = host_gpu_order;
};
}  // namespace mixprec::detail
