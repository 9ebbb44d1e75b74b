// Stochastic rounding: it only ever returns one of the two neighbours, rounds
// up with probability equal to the fractional position (checked exactly by
// sweeping the random bits over a lattice), is unbiased over many draws
// (4-sigma bound) including subnormals, is deterministic per key,
// decorrelated across keys, and gives the same bits on every backend (the
// committed goldens of the default generator and of Philox).
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include <mixprec/cast/all.hpp>

#include "../support/device.hpp"
#include "../support/formats.hpp"
#include "../support/generators.hpp"
#include "../support/reference_rounding.hpp"
#include "../support/stochastic_golden.hpp"

using namespace mixprec;

namespace {

// Representative inputs inside the range of T, subnormals included.
template <class T>
std::vector<float> probe_values() {
  using F = format_traits<T>;
  const float dmin = F::denorm_min(), nmin = F::min_normal();
  return {dmin * 0.3f, dmin * 1.7f, nmin * 0.55f, nmin * 0.999f, nmin * 1.37f,    0.1f,
          1.0f / 3.0f, -1.1f,       2.71828f,     -7.77f,        F::max() * 0.77f};
}

template <class T>
test::neighbours neighbours_of(float x) {
  static const test::value_table table = test::finite_values<T>();
  return test::bracket(table, std::fabs(static_cast<double>(x)), test::layout_of<T>().mantissa_bits);
}

}  // namespace

TEST_SUITE("cast") {
  TEST_CASE_TEMPLATE("stochastic rounding returns only the two neighbours", T, half, bfloat16, fp8_e4m3, fp8_e5m2) {
    std::vector<float> inputs = test::boundary_inputs<T>();
    std::size_t wrong = 0, checked = 0;
    for (float x : inputs) {
      if (!std::isfinite(x) || std::fabs(x) > format_traits<T>::max()) continue;
      const test::neighbours n = neighbours_of<T>(x);
      const std::uint32_t sign = (test::bits_from_float(x) >> 31) << (format_traits<T>::total_bits - 1);
      const bool exact = n.lo == std::fabs(static_cast<double>(x));
      for (std::uint64_t i = 0; i < 16; ++i) {
        const std::uint32_t got = test::bits_of(convert<T, overflow_saturate>(x, round_stochastic{11, 0}, i));
        const std::uint32_t hi = n.hi_is_beyond ? format_traits<T>::max_bits : n.hi_bits;
        wrong += exact ? got != (sign | n.lo_bits) : (got != (sign | n.lo_bits) && got != (sign | hi));
        ++checked;
      }
    }
    INFO("draws checked: " << checked);
    CHECK(wrong == 0);
  }

  TEST_CASE_TEMPLATE("the probability of rounding up is the fractional position", T, half, bfloat16, fp8_e4m3,
                     fp8_e5m2) {
    // Rounding up happens when the 32 random bits are below floor(p * 2^32),
    // p = (|x| - lo) / (hi - lo). Sweeping the bits over the lattice k * 2^16
    // therefore rounds up exactly ceil(floor(p * 2^32) / 2^16) times.
    for (float x : probe_values<T>()) {
      const test::neighbours n = neighbours_of<T>(x);
      const double p = (std::fabs(static_cast<double>(x)) - n.lo) / (n.hi - n.lo);
      std::uint32_t ups = 0;
      for (std::uint32_t k = 0; k < 65536; ++k) {
        const float r = to_float(stochastic_round<T>(x, k << 16));
        ups += std::fabs(static_cast<double>(r)) == n.hi;
      }
      const double expected = std::ceil(std::floor(std::ldexp(p, 32)) / 65536.0);
      INFO("x = " << x << ", p = " << p);
      CHECK(ups == expected);
    }
  }

  TEST_CASE_TEMPLATE("stochastic rounding is unbiased (4-sigma)", T, half, bfloat16, fp8_e4m3, fp8_e5m2) {
    constexpr int draws = 200000;
    for (float x : probe_values<T>()) {
      const test::neighbours n = neighbours_of<T>(x);
      const double gap = n.hi - n.lo;
      const double p = (std::fabs(static_cast<double>(x)) - n.lo) / gap;
      double sum = 0;
      for (int i = 0; i < draws; ++i) sum += to_float(convert<T>(x, round_stochastic{2024, 5}, i));
      const double mean = sum / draws;
      const double sigma = gap * std::sqrt(p * (1 - p) / draws);
      INFO("x = " << x << ", mean = " << mean << ", sigma = " << sigma);
      CHECK(std::fabs(mean - static_cast<double>(x)) <= 4 * sigma + 1e-12 * std::fabs(x));
    }
  }

  TEST_CASE("stochastic rounding is deterministic per key and decorrelated across keys") {
    // x sits exactly halfway between two bfloat16 values: each draw is a fair coin.
    const float x = 1.0f + 1.0f / 256.0f;
    constexpr int n = 100000;
    auto up = [&](std::uint64_t seed, std::uint64_t stream, std::uint64_t i) {
      return to_float(convert<bfloat16>(x, round_stochastic{seed, stream}, i)) > x;
    };
    int same_key = 0, across_seed = 0, across_stream = 0, across_index = 0, ups = 0;
    for (int i = 0; i < n; ++i) {
      const bool a = up(1, 0, i);
      ups += a;
      same_key += a == up(1, 0, i);
      across_seed += a == up(2, 0, i);
      across_stream += a == up(1, 1, i);
      across_index += a == up(1, 0, i + 1);
    }
    const double bound = 4 * std::sqrt(0.25 / n);  // agreement of independent fair coins: 0.5 +- 4 sigma
    CHECK(same_key == n);
    CHECK(std::fabs(ups / double(n) - 0.5) < bound);
    CHECK(std::fabs(across_seed / double(n) - 0.5) < bound);
    CHECK(std::fabs(across_stream / double(n) - 0.5) < bound);
    CHECK(std::fabs(across_index / double(n) - 0.5) < bound);
  }

  template <class T, class G>
  void check_golden(const test::golden_line& g, const std::vector<float>& inputs) {
    auto d_in = test::to_device(inputs);
    thrust::device_vector<T> d_out(inputs.size());
    convert_n(test::ptr(d_in), inputs.size(), test::ptr(d_out), round_stochastic<G>{g.seed, g.stream});
    const std::vector<T> out = test::to_host(d_out);
    std::size_t wrong = 0;
    for (std::size_t i = 0; i < out.size(); ++i) wrong += test::bits_of(out[i]) != g.bits.at(i);
    INFO(std::string(G::name) << ", " << g.format << " seed " << g.seed << " stream " << g.stream << " on backend "
                              << backend_name(current_backend));
    CHECK(wrong == 0);
  }

  TEST_CASE_TEMPLATE("stochastic rounding draws the committed host bits on this backend", G, splitmix_generator,
                     philox_generator) {
    const auto lines =
        test::read_golden(std::string(MIXPREC_TEST_DATA_DIR) + "/" + test::golden_file<G>("stochastic_rounding"));
    REQUIRE(lines.size() == 4 * 3 * 3);
    const std::vector<float> inputs = test::golden_inputs();
    for (const auto& g : lines) {
      REQUIRE(g.bits.size() == inputs.size());
      if (g.format == "half") check_golden<half, G>(g, inputs);
      else if (g.format == "bfloat16") check_golden<bfloat16, G>(g, inputs);
      else if (g.format == "fp8_e4m3") check_golden<fp8_e4m3, G>(g, inputs);
      else if (g.format == "fp8_e5m2") check_golden<fp8_e5m2, G>(g, inputs);
      else FAIL("unknown format in golden file: " << g.format);
    }
  }
}
