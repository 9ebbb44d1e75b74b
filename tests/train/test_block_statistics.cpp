// Per-block statistics (scope::block): one value per run of N consecutive
// elements of a parameter, the last run of a parameter shorter, read by the
// element rule. Checked against the blocks reduced here, element by element,
// in long double, over parameters whose sizes end in partial blocks and
// span several tiles.
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include <mixprec/mixprec.hpp>

#include "../support/errors.hpp"

using namespace mixprec;

namespace {

// The update becomes the statistic of the element's block: the block's
// max |g| (Max) or its sum of squares.
template <bool Max, std::uint32_t N>
struct block_statistic_as_update {
  static constexpr const char* name = "block_statistic_as_update";
  static constexpr statistic statistics[] = {
      {"of_block", scope::block, Max ? reduction::max_abs : reduction::power_sum, source::input, N}};
  static constexpr stat_id<statistic_index(statistics, "of_block")> of_block{};
  template <class Ctx>
  MIXPREC_HOST_DEVICE float update(float, const Ctx& ctx) const {
    return static_cast<float>(ctx.statistic(of_block));
  }
};

// Parameter sizes: partial last blocks, a parameter of one partial block,
// parameters spanning two and three tiles of 4096, a rank-3 parameter.
const std::vector<std::vector<std::size_t>> shapes = {{100}, {4101}, {8}, {2, 3, 16}, {7000}, {9000}};

float gradient(std::size_t k, std::size_t i) {
  if (i % 37 == 5) return 0.0f;
  const float v = std::ldexp(static_cast<float>((i * 2654435761u + k * 97u) % 2001u) - 1000.0f, -9);
  return (i + k) % 3 == 0 ? -v : v;
}

// Runs one SGD step (lr 1, weights 0) behind the statistic: the weights
// become minus the statistic of each element's block.
template <bool Max, std::uint32_t N>
void check_blocks() {
  parameters<float> p;
  for (std::size_t k = 0; k < shapes.size(); ++k) p.add("p" + std::to_string(k), shape(shapes[k].begin(), shapes[k].end()));
  p.finalize();
  std::vector<std::vector<float>> grads(shapes.size());
  for (std::size_t k = 0; k < shapes.size(); ++k) {
    const std::size_t n = p.list()[k].shape.size();
    p.from_host(role::master, k, std::vector<float>(n, 0.0f));
    for (std::size_t i = 0; i < n; ++i) grads[k].push_back(gradient(k, i));
    p.from_host(role::grad, k, grads[k]);
  }
  sgd_options o;
  o.lr = 1.0f;
  const auto step = chain(block_statistic_as_update<Max, N>{}, sgd(o));
  auto state = step.init(p);
  step.apply(p, state);

  std::size_t checked = 0, blocks = 0;
  for (std::size_t k = 0; k < shapes.size(); ++k) {
    const std::vector<float> w = p.to_host(role::master, k);
    const std::vector<float>& g = grads[k];
    for (std::size_t b0 = 0; b0 < g.size(); b0 += N) {
      const std::size_t end = std::min(g.size(), b0 + N);
      long double want = 0;
      for (std::size_t i = b0; i < end; ++i) {
        const long double a = std::fabs(static_cast<long double>(g[i]));
        want = Max ? std::fmax(want, a) : want + a * a;
      }
      // The engine's double result rounded once to float; the sum's order
      // differs from this one by a few double roundings.
      const float expect = static_cast<float>(want);
      for (std::size_t i = b0; i < end; ++i) {
        CAPTURE(k);
        CAPTURE(i);
        if (Max) CHECK(-w[i] == expect);
        else CHECK(-w[i] == doctest::Approx(expect).epsilon(std::ldexp(1.0, -23)));
        ++checked;
      }
      ++blocks;
    }
  }
  MESSAGE("block of " << N << std::string(Max ? ", max |g|" : ", sum of squares") << ": " << blocks << " blocks, " << checked
                      << " elements checked");
}

}  // namespace

TEST_SUITE("train") {

TEST_CASE("per-block statistics: max |x| and sum of squares of each block, partial last blocks included") {
  check_blocks<true, 32>();
  check_blocks<false, 32>();
  check_blocks<true, 256>();
  check_blocks<false, 16>();
  check_blocks<true, 4096>();
}

TEST_CASE("per-block statistics: the plan says which pass reduces them and their block") {
  const auto step = chain(block_statistic_as_update<true, 256>{}, sgd(sgd_options{}));
  const std::string plan = step.describe();
  CHECK(test::contains(plan, "per block of 256 max |x| of its input"));
}

TEST_CASE("per-block statistics: a shard that splits a block is refused") {
  parameters<bfloat16> p;
  p.add("w", {1000});
  p.finalize();
  const auto step = chain(block_statistic_as_update<true, 256>{}, sgd(sgd_options{}));
  CHECK(test::contains(test::error_message([&] { (void)step.init(p, stream{}, element_range{100, 1000}); }),
                       "does not begin and end at a boundary of the 256-element blocks"));
  CHECK_NOTHROW((void)step.init(p, stream{}, element_range{256, 1000}));
}

}  // TEST_SUITE
