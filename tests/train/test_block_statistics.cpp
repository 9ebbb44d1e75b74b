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

// The update becomes the statistic Op of the element's block.
template <reduction Op, std::uint32_t N>
struct block_statistic_as_update {
  static constexpr const char* name = "block_statistic_as_update";
  static constexpr statistic statistics[] = {{"of_block", scope::block, Op, source::input, N}};
  static constexpr stat_id<statistic_index(statistics, "of_block")> of_block{};
  template <class Ctx>
  MIXPREC_HOST_DEVICE float update(float, const Ctx& ctx) const {
    return static_cast<float>(ctx.statistic(of_block));
  }
};

// Parameter sizes: partial last blocks, a parameter of one partial block,
// an empty one, parameters spanning two and three tiles of 4096, a rank-3
// parameter.
const std::vector<std::vector<std::size_t>> block_test_shapes = {{100}, {4101}, {8}, {0}, {2, 3, 16}, {7000}, {9000}};

float gradient(std::size_t k, std::size_t i) {
  if (i % 37 == 5) return 0.0f;
  const float v = std::ldexp(static_cast<float>((i * 2654435761u + k * 97u) % 2001u) - 1000.0f, -9);
  return (i + k) % 3 == 0 ? -v : v;
}

// The statistic of g[begin, end), by its definition, in long double.
long double of_block(reduction op, const std::vector<float>& g, std::size_t begin, std::size_t end, float scale) {
  long double r = 0;
  for (std::size_t i = begin; i < end; ++i) {
    const long double v = static_cast<long double>(g[i]) * scale;
    switch (op) {
      case reduction::max_abs:
        r = std::fmax(r, std::fabs(v));
        break;
      case reduction::power_sum:
        r += v * v;
        break;
      case reduction::sum:
        r += v;
        break;
      case reduction::zero_count:
        r += v == 0 ? 1 : 0;
        break;
      default:
        FAIL("not checked here");
    }
  }
  return r;
}

// One SGD step (lr 1, weights 0) behind the statistic, after clipping by the
// global norm when `clip`: the weights become minus the statistic of each
// element's block (of the clipped gradients: a statistic measured before
// the clip's factor is known, then scaled by it).
template <reduction Op, std::uint32_t N>
void check_blocks(bool clip) {
  parameters<float> p;
  for (std::size_t k = 0; k < block_test_shapes.size(); ++k)
    p.add("p" + std::to_string(k), shape(block_test_shapes[k].begin(), block_test_shapes[k].end()));
  p.finalize();
  std::vector<std::vector<float>> grads(block_test_shapes.size());
  long double squares = 0;
  for (std::size_t k = 0; k < block_test_shapes.size(); ++k) {
    const std::size_t n = p.list()[k].shape.size();
    p.from_host(role::master, k, std::vector<float>(n, 0.0f));
    for (std::size_t i = 0; i < n; ++i) grads[k].push_back(gradient(k, i));
    for (float v : grads[k]) squares += static_cast<long double>(v) * v;
    p.from_host(role::grad, k, grads[k]);
  }
  sgd_options o;
  o.lr = 1.0f;
  const float max_norm = 1.0f;
  // clip_by_global_norm's coefficient, from the norm rounded to float as it rounds it.
  const float coef = clip ? max_norm / (static_cast<float>(std::sqrt(squares)) + 1e-6f) : 1.0f;
  if (clip) REQUIRE(coef < 1.0f);  // the clip is active
  if (clip) {
    const auto step = chain(clip_by_global_norm{max_norm}, block_statistic_as_update<Op, N>{}, sgd(o));
    auto state = step.init(p);
    step.apply(p, state);
  } else {
    const auto step = chain(block_statistic_as_update<Op, N>{}, sgd(o));
    auto state = step.init(p);
    step.apply(p, state);
  }
  std::size_t checked = 0, blocks = 0;
  for (std::size_t k = 0; k < block_test_shapes.size(); ++k) {
    const std::vector<float> w = p.to_host(role::master, k);
    const std::vector<float>& g = grads[k];
    for (std::size_t b0 = 0; b0 < g.size(); b0 += N) {
      const std::size_t end = std::min(g.size(), b0 + N);
      const float expect = static_cast<float>(of_block(Op, g, b0, end, coef));
      for (std::size_t i = b0; i < end; ++i) {
        CAPTURE(k);
        CAPTURE(i);
        // Maxima and counts exactly; sums within a few roundings of their
        // order and of the clip's factor (fp32's unit roundoff 2^-24).
        if ((Op == reduction::max_abs && !clip) || Op == reduction::zero_count) CHECK(-w[i] == expect);
        else CHECK(-w[i] == doctest::Approx(expect).epsilon(std::ldexp(1.0, -21)).scale(1e-3));
        ++checked;
      }
      ++blocks;
    }
  }
  MESSAGE("block of " << N << ", " << std::string(detail::reduction_name(Op))
                      << (clip ? std::string(", clipped") : std::string()) << ": " << blocks << " blocks, " << checked
                      << " elements checked");
}

}  // namespace

TEST_SUITE("train") {
  TEST_CASE("per-block statistics: max |x| and sums and counts of each block with partial last blocks") {
    check_blocks<reduction::max_abs, 32>(false);
    check_blocks<reduction::power_sum, 32>(false);
    check_blocks<reduction::max_abs, 256>(false);
    check_blocks<reduction::power_sum, 16>(false);
    check_blocks<reduction::max_abs, 4096>(false);
    check_blocks<reduction::sum, 64>(false);
    check_blocks<reduction::zero_count, 32>(false);
  }

  TEST_CASE("per-block statistics: measured before a global clip and scaled by its factor") {
    check_blocks<reduction::max_abs, 32>(true);
    check_blocks<reduction::power_sum, 128>(true);
    check_blocks<reduction::sum, 16>(true);
  }

  TEST_CASE("per-block statistics: the plan says which pass reduces them and their block") {
    const auto step = chain(block_statistic_as_update<reduction::max_abs, 256>{}, sgd(sgd_options{}));
    const std::string plan = step.describe();
    CHECK(test::contains(plan, "per block of 256 max |x| of its input"));
  }

  TEST_CASE("per-block statistics: a shard that splits a block is refused") {
    parameters<bfloat16> p;
    p.add("w", {1000});
    p.finalize();
    const auto step = chain(block_statistic_as_update<reduction::max_abs, 256>{}, sgd(sgd_options{}));
    CHECK(test::contains(test::error_message([&] {
                           (void)step.init(p, stream{}, element_range{100, 1000});
                         }),
                         "does not begin and end at a boundary of the 256-element blocks"));
    CHECK_NOTHROW((void)step.init(p, stream{}, element_range{256, 1000}));
  }

}  // TEST_SUITE
