// Built only into test_passes_in_groups, whose sources all see
// support/gpu_order_on_host.hpp first: there the host runs the update and
// measuring passes the GPU's way (detail::host_gpu_order): every whole
// group of 8 elements of an aligned tile through update_groups
// (train/update_groups.hpp) and measure_groups (train/measure_groups.hpp), the rest one at
// a time. The other sources of that executable check the bits (references,
// committed goldens); this checks that the groups are taken.
#include <cstdint>
#include <vector>

#include <doctest/doctest.h>

#include <mixprec/mixprec.hpp>

#include "../support/synthetic.hpp"

using namespace mixprec;

TEST_SUITE("train") {
  TEST_CASE("the passes run every whole group of 8 of each tile in groups and the rest alone") {
    // 4101 elements: a tile of 4096 (512 groups) and one of 5 (none); 8: one
    // group; 3: none. Offsets are multiples of 16, so every tile is aligned.
    parameters<bfloat16, bfloat16> p;
    p.add("a", {4101});
    p.add("b", {8});
    p.add("c", {3});
    p.finalize();
    for (const char* name : {"a", "b", "c"}) p.initialize(name, init::uniform{-0.5f, 0.5f}, 1);
    std::vector<float> g(p.element_count());
    for (std::size_t i = 0; i < g.size(); ++i) g[i] = 1e-3f * test::unit_value(i);
    p.from_host(role::grad, g);
    // A statistics pass (the norm) and the update pass.
    const auto opt = chain(clip_by_global_norm{1.0f}, adamw(adamw_options{}), round_model_stochastic{7});
    auto state = opt.init(p);
    using order = detail::host_gpu_order;
    const std::uint64_t updated = order::updated.load(), measured = order::measured.load();
    opt.apply(p, state);
    CHECK(order::updated.load() - updated == 4096 + 8);
    CHECK(order::measured.load() - measured == 4096 + 8);
  }
}  // TEST_SUITE
