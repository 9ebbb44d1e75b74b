// tensor, tensor_view and the element-wise operations, for every storage
// format, against double-precision references with tolerances from each
// format's unit roundoff; shape and size errors.
#include <cmath>
#include <vector>

#include <doctest/doctest.h>

#include <mixprec/tensor/all.hpp>

#include "../support/device.hpp"
#include "../support/errors.hpp"
#include "../support/formats.hpp"
#include "../support/random.hpp"

using namespace mixprec;

namespace {

// |got - want| <= (u_T + 4 u_float) |want| + denorm_min_T: one rounding to T
// after a few float operations.
template <class T>
bool close(float got, double want) {
  using F = format_traits<T>;
  const double tol =
      (F::unit_roundoff() + 4 * format_traits<float>::unit_roundoff()) * std::fabs(want) + F::denorm_min();
  return std::fabs(static_cast<double>(got) - want) <= tol;
}

struct square_plus_one {
  MIXPREC_HOST_DEVICE float operator()(float x) const { return x * x + 1.0f; }
};

}  // namespace

TEST_SUITE("tensor") {
  TEST_CASE("shape counts elements and reports overflow") {
    CHECK(shape{}.size() == 1);
    CHECK(shape{2, 3, 4, 5}.size() == 120);
    CHECK(shape{7, 0, 3}.size() == 0);
    CHECK(shape{2, 3}.to_string() == "[2, 3]");
    CHECK(shape{1, 2, 3, 4, 5, 6, 7, 8}.rank() == 8);
    CHECK(test::contains(test::error_message([] { shape{1, 2, 3, 4, 5, 6, 7, 8, 9}; }), "at most 8"));
    CHECK(test::contains(test::error_message([] { (void)shape{1ull << 40, 1ull << 40}.size(); }), "size_t"));
  }

  TEST_CASE_TEMPLATE("element-wise operations load the format and compute in float and round once", T, float, half,
                     bfloat16, fp8_e4m3, fp8_e5m2) {
    const std::size_t n = 10007;
    const float scale_by = std::is_same_v<T, fp8_e4m3> ? 1.0f : 3.0f;
    const std::vector<float> a = test::random_values<T>(n, 1, 0.0f, scale_by);
    const std::vector<float> b = test::random_values<T>(n, 2, 0.0f, scale_by);
    tensor<T> ta = tensor<T>::from_host({n}, a), tb = tensor<T>::from_host({n}, b), out(shape{n});
    REQUIRE(ta.to_host_float() == a);  // values are exact in T

    SUBCASE("fill") {
      out.fill(0.3f);
      for (float v : out.to_host_float()) CHECK(close<T>(v, 0.3f));
    }
    SUBCASE("transform") {
      transform(out.view(), ta.view(), square_plus_one{});
      const auto got = out.to_host_float();
      std::size_t bad = 0;
      for (std::size_t i = 0; i < n; ++i) bad += !close<T>(got[i], double(a[i]) * a[i] + 1.0);
      CHECK(bad == 0);
    }
    SUBCASE("axpby") {
      axpby(0.5f, ta.view(), -2.0f, tb.view());
      const auto got = tb.to_host_float();
      std::size_t bad = 0;
      for (std::size_t i = 0; i < n; ++i) bad += !close<T>(got[i], 0.5 * a[i] - 2.0 * b[i]);
      CHECK(bad == 0);
    }
    SUBCASE("scale in place") {
      ta.apply(ops::scale_by<float>{0.25f});
      const auto got = ta.to_host_float();
      std::size_t bad = 0;
      for (std::size_t i = 0; i < n; ++i) bad += !close<T>(got[i], 0.25 * a[i]);
      CHECK(bad == 0);
    }
    SUBCASE("cast to and from float") {
      tensor<float> wide(shape{n});
      cast(wide.view(), ta.view());
      CHECK(wide.to_host_float() == a);  // widening is exact
      tensor<T> back(shape{n});
      cast(back.view(), wide.view());
      CHECK(back.to_host_float() == a);
    }
  }

  TEST_CASE("double compute precision rounds once to the storage format") {
    // 1 + 2^-8 is the midpoint between the bfloat16 values 1 and 1 + 2^-7;
    // 2^-30 more rounds up, but only if it survives: in float it is lost and
    // the tie rounds to even (1).
    tensor<bfloat16, double> t(shape{4});
    t.fill(1.0 + std::ldexp(1.0, -8) + std::ldexp(1.0, -30));
    for (float v : t.to_host_float()) CHECK(v == 1.0f + std::ldexp(1.0f, -7));
    tensor<bfloat16, float> f(shape{4});
    f.fill(static_cast<float>(1.0 + std::ldexp(1.0, -8) + std::ldexp(1.0, -30)));
    for (float v : f.to_host_float()) CHECK(v == 1.0f);
  }

  TEST_CASE("conversion between tensors of different formats follows the policy") {
    const std::vector<float> v = {1.0f, 1000.0f, -1e6f, 0.1f};
    tensor<float> src = tensor<float>::from_host({4}, v);
    tensor<fp8_e4m3> to_nan(shape{4}), saturated(shape{4});
    cast(to_nan.view(), src.view());
    cast<overflow_saturate>(saturated.view(), src.view());
    const auto a = to_nan.to_host_float(), b = saturated.to_host_float();
    CHECK(a[0] == 1.0f);
    CHECK(std::isnan(a[1]));
    CHECK(std::isnan(a[2]));
    CHECK(b[1] == 448.0f);
    CHECK(b[2] == -448.0f);
    CHECK(b[3] == to_float(convert<fp8_e4m3>(0.1f)));
    tensor<bfloat16> sr(shape{4});
    sr.assign(src.view(), round_stochastic{3, 0});
    CHECK(std::fabs(sr.to_host_float()[3] - 0.1f) < 0.001f);
  }

  TEST_CASE("views over memory the library did not allocate") {
    thrust::device_vector<float> user(100, 2.0f);
    tensor_view<float> v(user);
    CHECK(v.size() == 100);
    scale(v.subview(10, 5), 3.0f);
    const auto host = test::to_host(user);
    CHECK(host[9] == 2.0f);
    CHECK(host[10] == 6.0f);
    CHECK(host[14] == 6.0f);
    CHECK(host[15] == 2.0f);
    CHECK(v.reshape({10, 10}).shape() == shape{10, 10});
  }

  TEST_CASE("errors name what was wrong and change nothing") {
    tensor<float> a(shape{2, 3}), b(shape{3, 2});
    a.fill(1.0f);
    b.fill(2.0f);
    SUBCASE("shape mismatch") {
      const std::string msg = test::error_message([&] { transform(a.view(), b.view(), ops::identity{}); });
      CHECK(test::contains(msg, "shape mismatch"));
      CHECK(test::contains(msg, "[2, 3]"));
      CHECK(test::contains(msg, "[3, 2]"));
      CHECK(a.to_host_float() == std::vector<float>(6, 1.0f));
    }
    SUBCASE("a view past the end") {
      const std::string msg = test::error_message([&] { (void)a.view().subview(4, 3); });
      CHECK(test::contains(msg, "past the end"));
      CHECK(test::contains(msg, "[4, 7)"));
      CHECK(test::contains(msg, "6 elements"));
    }
    SUBCASE("reshape to another size") {
      CHECK(test::contains(test::error_message([&] { (void)a.view().reshape({7}); }), "cannot reshape [2, 3]"));
    }
    SUBCASE("zero-size tensor") {
      CHECK(test::contains(test::error_message([] {
                             tensor<half> t(shape{4, 0});
                           }),
                           "zero-size tensor of shape [4, 0]"));
    }
    SUBCASE("from_host with the wrong number of values") {
      CHECK(test::contains(test::error_message([] {
                             (void)tensor<float>::from_host({2, 2}, {1.0f, 2.0f});
                           }),
                           "2 values for shape [2, 2]"));
    }
    // AddressSanitizer aborts on impossible allocations instead of throwing
    // std::bad_alloc, so this case runs in the non-sanitized builds only.
#if !defined(__SANITIZE_ADDRESS__)
    SUBCASE("allocation failure") {
      const std::string huge = test::error_message([] { tensor<float> t(shape{1ull << 20, 1ull << 20}); });
      CHECK(test::contains(huge, "cannot allocate 1099511627776 elements"));
      const std::string overflow = test::error_message([] { tensor<float> t(shape{1ull << 31, 1ull << 31}); });
      CHECK(test::contains(overflow, "overflows size_t"));
    }
#endif
  }
}
