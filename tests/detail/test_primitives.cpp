// The device primitives: zipped for-each, tiled reductions over ranges that
// are not multiples of a tile, per-segment combination with empty segments,
// the workspace's bounds.
#include <cmath>
#include <cstdint>
#include <limits>
#include <numeric>
#include <random>
#include <vector>

#include <stdexcept>
#include <string>

#include <doctest/doctest.h>

#include <mixprec/detail/all.hpp>
#include <mixprec/tensor/all.hpp>

#include "../support/device.hpp"
#include "../support/errors.hpp"

using namespace mixprec;

namespace {

struct axpy {
  float a;
  MIXPREC_HOST_DEVICE void operator()(const float& x, const double& y, float& out) const {
    out = a * x + static_cast<float>(y);
  }
};

struct index_sum {
  using value_type = std::uint64_t;
  MIXPREC_HOST_DEVICE std::uint64_t identity() const { return 0; }
  MIXPREC_HOST_DEVICE void accumulate(std::uint64_t& acc, std::size_t i) const { acc += i; }
  MIXPREC_HOST_DEVICE std::uint64_t combine(const std::uint64_t& a, const std::uint64_t& b) const { return a + b; }
};

struct add_square_body {
  const double* acc;
  const float* v;
  double* out;
  MIXPREC_HOST_DEVICE void operator()(std::size_t i) const { out[i] = detail::add_square(acc[i], v[i]); }
};

}  // namespace

TEST_SUITE("detail") {
  // add_square may fuse the multiply and the add (detail/square_sum.hpp):
  // the same bits as a rounded square added with rounding, which is the
  // reference here (the square stored before the add, so it is not fused).
  TEST_CASE("add_square gives the bits of a separate square and add on the backend") {
    std::mt19937 gen(11);
    std::vector<float> v;
    std::vector<double> acc;
    for (float x : {0.0f, -0.0f, 1.0f, std::numeric_limits<float>::max(), -std::numeric_limits<float>::max(),
                    std::numeric_limits<float>::denorm_min(), std::numeric_limits<float>::min(), 16777215.0f,
                    1.0f + std::numeric_limits<float>::epsilon()}) {
      for (double a : {0.0, 1.0, 1e-300, 3e38, 1e77, 0.1}) v.push_back(x), acc.push_back(a);
    }
    while (v.size() < 100000) {
      const std::uint32_t bits = static_cast<std::uint32_t>(gen());
      const float x = detail::bit_cast<float>(bits);
      if (!std::isfinite(x)) continue;
      v.push_back(x);
      // Accumulators near the square's magnitude, where the add rounds.
      acc.push_back(std::ldexp(static_cast<double>(gen()) + 0.5, std::ilogb(static_cast<double>(x) * x) - 30));
    }
    auto dv = test::to_device(v);
    auto dacc = test::to_device(acc);
    thrust::device_vector<double> out(v.size());
    detail::for_each_index(stream{}, v.size(), add_square_body{test::ptr(dacc), test::ptr(dv), test::ptr(out)});
    const auto got = test::to_host(out);
    std::size_t wrong = 0;
    for (std::size_t i = 0; i < v.size(); ++i) {
      volatile double square = static_cast<double>(v[i]) * static_cast<double>(v[i]);
      const double expected = acc[i] + square;
      wrong += detail::bit_cast<std::uint64_t>(got[i]) != detail::bit_cast<std::uint64_t>(expected);
    }
    CHECK(wrong == 0);
  }

  TEST_CASE("for_each_zipped passes the elements of every range") {
    std::vector<float> x(1000);
    std::vector<double> y(1000);
    for (int i = 0; i < 1000; ++i) x[i] = static_cast<float>(i), y[i] = 0.5 * i;
    auto dx = test::to_device(x);
    auto dy = test::to_device(y);
    thrust::device_vector<float> out(1000);
    detail::for_each_zipped(stream{}, 1000, axpy{2.0f}, test::ptr(dx), test::ptr(dy), test::ptr(out));
    const auto h = test::to_host(out);
    for (int i = 0; i < 1000; ++i) CHECK(h[i] == 2.0f * i + 0.5f * i);
  }

  TEST_CASE("transform_reduce covers every index for sizes around the tile size") {
    detail::workspace ws;
    thrust::device_vector<std::uint64_t> out(1);
    for (std::size_t n : {std::size_t{0}, std::size_t{1}, std::size_t{4095}, std::size_t{4096}, std::size_t{4097},
                          std::size_t{3 * 4096 + 17}, std::size_t{1000003}}) {
      detail::transform_reduce(stream{}, ws, n, index_sum{}, test::ptr(out));
      CAPTURE(n);
      CHECK(test::to_host(out)[0] == (n == 0 ? 0 : static_cast<std::uint64_t>(n) * (n - 1) / 2));
    }
  }

  TEST_CASE("per-segment sums of an arena with empty segments") {
    parameters<float> p;
    const std::size_t sizes[] = {0, 5, 0, 9000, 1, 0};
    for (std::size_t k = 0; k < 6; ++k) p.add("p" + std::to_string(k), {sizes[k]});
    p.finalize();
    std::vector<float> ones(p.padded_size(), 1.0f);
    detail::write_to_device(ones.data(), p.master_data(), ones.size());  // padding too: it must be skipped
    workspace ws;
    thrust::device_vector<double> out(6, -1.0);
    segment_sum_of_squares(p.layout(), static_cast<const float*>(p.master_data()), test::ptr(out), ws);
    const auto h = test::to_host(out);
    for (std::size_t k = 0; k < 6; ++k) CHECK(h[k] == static_cast<double>(sizes[k]));
  }

  TEST_CASE("a workspace slice past its capacity is an error") {
    detail::workspace ws;
    ws.reserve(64);
    CHECK(ws.capacity() >= 64);
    CHECK(ws.slice<double>(0, 8) != nullptr);
    CHECK(test::contains(test::error_message([&] { (void)ws.slice<double>(16, 8); }), "exceeds its"));
    CHECK(test::contains(test::error_message([&] { (void)ws.slice<double>(3, 1); }), "exceeds its"));
  }

  TEST_CASE("failures of other libraries surface as mixprec::error naming the operation") {
    const std::string msg = test::error_message(
        [] { detail::translate_errors("a Thrust call", []() -> int { throw std::runtime_error("device fault"); }); });
    CHECK(msg == "mixprec: a Thrust call: device fault");
    // AddressSanitizer aborts on impossible allocations instead of throwing
    // std::bad_alloc, so the allocation check runs in the non-sanitized builds.
#if !defined(__SANITIZE_ADDRESS__)
    CHECK(test::contains(test::error_message([] { (void)detail::allocate<float>(std::size_t{1} << 40, "a test"); }),
                         "cannot allocate 1099511627776 elements (4.39805e+12 bytes) for a test: out of memory"));
#endif
    CHECK(detail::translate_errors("fine", [] { return 7; }) == 7);
  }
}
