// Tensor reductions into device scalars, against float64/long double
// references: sum, sum of squares, L2 norm, max-abs, non-finite count, for
// every storage format; 10^7 bfloat16 values within fp32 rounding of the
// float64 result; the same bits on every run and for every thread count.
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include <doctest/doctest.h>

#include <mixprec/tensor/all.hpp>

#include "../support/formats.hpp"
#include "../support/random.hpp"

#if defined(MIXPREC_BACKEND_OMP)
#include <omp.h>
#endif

using namespace mixprec;

namespace {

struct references {
  long double sum = 0, squares = 0;
  float max_abs = 0;
};

references reference_of(const std::vector<float>& v) {
  references r;
  for (float x : v) {
    r.sum += x;
    r.squares += static_cast<long double>(x) * x;
    r.max_abs = std::max(r.max_abs, std::fabs(x));
  }
  return r;
}

// Within fp32 rounding: |got - want| <= 2^-24 * scale.
bool within_fp32(double got, long double want, long double scale) {
  return std::fabs(static_cast<long double>(got) - want) <= std::ldexp(1.0L, -24) * scale;
}

}  // namespace

TEST_SUITE("tensor") {
  TEST_CASE_TEMPLATE("reductions match float64 references for every format", T, float, half, bfloat16, fp8_e4m3,
                     fp8_e5m2) {
    const std::vector<float> v = test::random_values<T>(100003, 7, 0.25f, 2.0f);
    const tensor<T> t = tensor<T>::from_host({100003}, v);
    const references ref = reference_of(v);
    long double abs_sum = 0;
    for (float x : v) abs_sum += std::fabs(x);
    workspace ws;
    device_scalar<double> s, sq, norm;
    device_scalar<float> mx;
    device_scalar<std::uint64_t> bad;
    sum(t.view(), s, ws);
    sum_of_squares(t.view(), sq, ws);
    l2_norm(t.view(), norm, ws);
    max_abs(t.view(), mx, ws);
    count_non_finite(t.view(), bad, ws);
    CHECK(within_fp32(s.get(), ref.sum, abs_sum));
    CHECK(within_fp32(sq.get(), ref.squares, ref.squares));
    CHECK(within_fp32(norm.get(), std::sqrt(ref.squares), std::sqrt(ref.squares)));
    CHECK(mx.get() == ref.max_abs);
    CHECK(bad.get() == 0);
  }

  TEST_CASE("10^7 bfloat16 values reduce within fp32 rounding of float64") {
    const std::size_t n = 10000000;
    const std::vector<float> v = test::random_values<bfloat16>(n, 11, 0.1f, 1.0f);
    const tensor<bfloat16> t = tensor<bfloat16>::from_host({n}, v);
    const references ref = reference_of(v);
    long double abs_sum = 0;
    for (float x : v) abs_sum += std::fabs(x);
    workspace ws;
    device_scalar<double> s, sq;
    sum(t.view(), s, ws);
    sum_of_squares(t.view(), sq, ws);
    CHECK(within_fp32(s.get(), ref.sum, abs_sum));
    CHECK(within_fp32(sq.get(), ref.squares, ref.squares));
  }

  TEST_CASE("non-finite values are counted and poison max-abs") {
    std::vector<float> v(5000, 1.0f);
    v[17] = INFINITY;
    v[4000] = -INFINITY;
    v[4999] = NAN;
    SUBCASE("half") {
      const tensor<half> t = tensor<half>::from_host({5000}, v);
      workspace ws;
      device_scalar<std::uint64_t> bad;
      device_scalar<float> mx;
      count_non_finite(t.view(), bad, ws);
      max_abs(t.view(), mx, ws);
      CHECK(bad.get() == 3);
      CHECK(std::isnan(mx.get()));
    }
    SUBCASE("fp8_e4m3: overflow becomes NaN, saturation stays finite") {
      v[17] = 1e4f;  // 1e4 > 448: NaN under overflow_to_infinity
      const tensor<fp8_e4m3> t = tensor<fp8_e4m3>::from_host({5000}, v);
      workspace ws;
      device_scalar<std::uint64_t> bad;
      count_non_finite(t.view(), bad, ws);
      CHECK(bad.get() == 3);
    }
  }

  TEST_CASE("reductions give the same bits on every run and thread count") {
    const std::size_t n = 3000017;
    const std::vector<float> v = test::random_values<half>(n, 5, 0.0f, 10.0f);
    const tensor<half> t = tensor<half>::from_host({n}, v);
    workspace ws;
    device_scalar<double> a, b;
    sum_of_squares(t.view(), a, ws);
    sum_of_squares(t.view(), b, ws);
    const double first = a.get();
    CHECK(std::memcmp(&first, &(const double&)b.get(), sizeof(double)) == 0);
#if defined(MIXPREC_BACKEND_OMP)
    const int threads = omp_get_max_threads();
    for (int k : {1, 2, 3, 7}) {
      omp_set_num_threads(k);
      sum_of_squares(t.view(), b, ws);
      const double again = b.get();
      CHECK(std::memcmp(&first, &again, sizeof(double)) == 0);
    }
    omp_set_num_threads(threads);
#endif
  }
}
