// How the host backend runs a step's update and measuring passes over a
// tile. Both strategies give the same bits; they differ in speed only.
//
//   host_sweeps     (the default) each row of a tile in one vectorised loop,
//                   stochastic-rounding bits drawn in chunks; a statistics
//                   pass sweeps the tile once per statistic;
//   host_gpu_order  the GPU's order on one worker: every whole group of 8
//                   elements of an aligned tile through update_groups (the
//                   measuring passes through measure_groups), the rest one at
//                   a time; counts the elements it ran in groups. It lets
//                   the GPU's element code run, and be checked, on a
//                   machine without a GPU.
//
// host_strategy<Body>::type names the strategy; a program that wants the
// GPU's order specializes it in every translation unit that runs a step,
// before its first step (the one-definition rule: a specialization seen by
// some units only is undetected and wrong). The project's
// test_passes_in_groups force-includes it into every source it builds.
#pragma once

#include <atomic>
#include <cstdint>

namespace mixprec::detail {

struct host_sweeps {};

struct host_gpu_order {
  static inline std::atomic<std::uint64_t> updated{0};   // elements updated in groups
  static inline std::atomic<std::uint64_t> measured{0};  // elements measured in groups
};

template <class Body, class = void>
struct host_strategy {
  using type = host_sweeps;
};

}  // namespace mixprec::detail
