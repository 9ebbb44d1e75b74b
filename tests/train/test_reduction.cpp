// Each reduction's policy (train/reduction.hpp) against the definition
// written out in long double here: what an element contributes, how partial
// results combine, and how a multiplier decided after the measurement
// changes the result.
#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include <mixprec/mixprec.hpp>

using namespace mixprec;
using detail::reduction_policy;

namespace {

const float nan_value = std::numeric_limits<float>::quiet_NaN();
const float inf_value = std::numeric_limits<float>::infinity();
const float half_min_normal = 6.103515625e-05f;  // 2^-14

std::vector<float> sample() { return {0.0f, -0.0f, 1.5f, -2.25f, 3e-6f, -7e-8f, 0.125f, 1024.0f, -0.3f, 6.0e-5f}; }
std::vector<float> with_non_finite() {
  std::vector<float> x = sample();
  x.insert(x.begin() + 3, inf_value);
  x.push_back(-inf_value);
  x.insert(x.begin() + 6, nan_value);
  return x;
}

// A maximum that a NaN on either side makes NaN (fmax would drop it).
long double nan_max(long double a, long double b) {
  return std::isnan(a) || std::isnan(b) ? std::numeric_limits<long double>::quiet_NaN() : std::fmax(a, b);
}

// The statistic by its definition (long double, element by element).
long double by_definition(reduction op, const std::vector<float>& x, float p) {
  long double r = 0;
  for (float v : x) {
    const long double a = std::fabs(static_cast<long double>(v));
    switch (op) {
      case reduction::sum:
        r += v;
        break;
      case reduction::power_sum:
        r = std::isinf(p) ? nan_max(r, a) : r + std::pow(a, static_cast<long double>(p));
        break;
      case reduction::max_abs:
        r = nan_max(r, a);
        break;
      case reduction::non_finite_count:
        r += std::isfinite(v) ? 0 : 1;
        break;
      case reduction::zero_count:
        r += v == 0.0f ? 1 : 0;
        break;
      case reduction::subnormal_count:
        r += (v != 0.0f && a < half_min_normal) ? 1 : 0;
        break;
    }
  }
  return r;
}

// The statistic as the engine forms it: contributions combined in order.
template <reduction Op>
double by_policy(const std::vector<float>& x, float p) {
  double r = 0.0;
  for (float v : x)
    r = detail::combine_values(r, reduction_policy<Op>::contribution(v, p, half_min_normal),
                               reduction_policy<Op>::combines_by_max(p));
  return r;
}

template <reduction Op>
void check_against_definition(float p, const std::vector<float>& x = sample()) {
  const long double want = by_definition(Op, x, p);
  const double got = by_policy<Op>(x, p);
  if (std::isnan(want)) {
    CHECK(std::isnan(got));
  } else if (std::isinf(want)) {
    CHECK(got == static_cast<double>(want));
  } else {
    CHECK(static_cast<long double>(got) ==
          doctest::Approx(static_cast<double>(want)).epsilon(4 * std::numeric_limits<double>::epsilon()));
  }
}

// stat(c * x) against scale_factor(c) * stat(x), for factors whose
// products with the sample are exact in float.
template <reduction Op>
void check_scaling(float p) {
  const std::vector<float> x = sample();
  for (const float c : {2.0f, -0.5f, 4096.0f, -0.0078125f}) {
    std::vector<float> scaled;
    for (float v : x) scaled.push_back(c * v);
    const double direct = by_policy<Op>(scaled, p);
    const double derived = by_policy<Op>(x, p) * detail::scale_factor<Op>(static_cast<double>(c), p);
    CHECK(derived == doctest::Approx(direct).epsilon(8 * std::numeric_limits<double>::epsilon()));
  }
}

}  // namespace

// (A named namespace: nvcc warns of unreferenced member templates in an unnamed one.)
namespace reduction_test {

// A uniform multiplier counting the subnormals of its own output (taken
// before its factor, which may need the count): the planner keeps its bit in
// the statistic's multipliers, and the derived scale of a count is 1.
struct count_own_subnormals {
  static constexpr const char* name = "count_own_subnormals";
  struct traits : component_traits {
    static constexpr bool uniform_multiplier = true;
  };
  struct scalars {
    float subnormals;
    float coef;
  };
  static constexpr statistic statistics[] = {{"subnormals", scope::global, reduction::subnormal_count, source::output}};
  static constexpr stat_id<statistic_index(statistics, "subnormals")> subnormals{};
  scalars initial_scalars() const { return {0.0f, 1.0f}; }
  template <class Ctx>
  MIXPREC_HOST_DEVICE void decide(scalars& s, const Ctx& ctx) const {
    s.subnormals = static_cast<float>(ctx.statistic(subnormals));
    s.coef = 0.5f;
  }
  MIXPREC_HOST_DEVICE float multiplier(const scalars& s) const { return s.coef; }
  template <class Ctx>
  MIXPREC_HOST_DEVICE float update(float u, const Ctx& ctx) const {
    return u * ctx.scalars().coef;
  }
  template <class V>
  static void visit_scalars(scalars& s, V&& v) {
    v("subnormals", s.subnormals);
    v("coef", s.coef);
  }
};

}  // namespace reduction_test

TEST_SUITE("train") {
  TEST_CASE("reduction policies: contributions and combines agree with each reduction's definition") {
    check_against_definition<reduction::sum>(2.0f);
    for (const float p : {1.0f, 2.0f, 3.0f, 0.5f, inf_value}) check_against_definition<reduction::power_sum>(p);
    check_against_definition<reduction::max_abs>(2.0f);
    check_against_definition<reduction::non_finite_count>(2.0f);
    check_against_definition<reduction::zero_count>(2.0f);
    check_against_definition<reduction::subnormal_count>(2.0f);
    // With infinities and a NaN: sums and maxima become inf or NaN, counts count them.
    for (const float p : {1.0f, 2.0f, inf_value}) check_against_definition<reduction::power_sum>(p, with_non_finite());
    check_against_definition<reduction::sum>(2.0f, with_non_finite());
    check_against_definition<reduction::max_abs>(2.0f, with_non_finite());
    check_against_definition<reduction::non_finite_count>(2.0f, with_non_finite());
    check_against_definition<reduction::zero_count>(2.0f, with_non_finite());
    check_against_definition<reduction::subnormal_count>(2.0f, with_non_finite());

    // Non-finite values are counted, and a NaN wins a maximum from either side.
    CHECK(reduction_policy<reduction::non_finite_count>::contribution(inf_value, 2.0f, half_min_normal) == 1.0);
    CHECK(reduction_policy<reduction::non_finite_count>::contribution(-nan_value, 2.0f, half_min_normal) == 1.0);
    CHECK(std::isnan(detail::combine_values(1.0, std::nan(""), true)));
    CHECK(std::isnan(detail::combine_values(std::nan(""), 1.0, true)));
    CHECK(detail::combine_values(1.0, 3.0, true) == 3.0);
    CHECK(detail::combine_values(1.0, 3.0, false) == 4.0);
  }

  TEST_CASE("reduction policies: a statistic of scaled values is the derived factor times the measured one") {
    check_scaling<reduction::sum>(2.0f);
    for (const float p : {1.0f, 2.0f, 3.0f, inf_value}) check_scaling<reduction::power_sum>(p);
    check_scaling<reduction::max_abs>(2.0f);
    check_scaling<reduction::non_finite_count>(2.0f);
    check_scaling<reduction::zero_count>(2.0f);

    // A subnormal count has no such factor (scaling by 4096 makes 3e-6 normal
    // in fp16), so the planner measures it after the multipliers.
    const std::vector<float> x = sample();
    std::vector<float> scaled;
    for (float v : x) scaled.push_back(4096.0f * v);
    CHECK(by_policy<reduction::subnormal_count>(x, 2.0f) != by_policy<reduction::subnormal_count>(scaled, 2.0f));
    CHECK(detail::scaling_of(reduction::subnormal_count) == detail::under_scaling::remeasure);
  }

  TEST_CASE("reduction policies: a multiplier counts the subnormals of its own output before its factor") {
    parameters<half> p;
    p.add("w", {40});
    p.finalize();
    std::vector<float> g(40);
    std::size_t expect = 0;
    for (std::size_t i = 0; i < g.size(); ++i) {
      // Every third value a half subnormal (below 2^-14), the rest normal or zero.
      g[i] = i % 3 == 0 ? std::ldexp(static_cast<float>(i + 1), -24) : i % 3 == 1 ? 0.25f : 0.0f;
      expect += (g[i] != 0.0f && std::fabs(g[i]) < half_min_normal) ? 1 : 0;
    }
    p.from_host(role::grad, g);
    const auto step = chain(reduction_test::count_own_subnormals{}, sgd(sgd_options{}));
    auto state = step.init(p);
    step.apply(p, state);
    CHECK(expect == 14);
    CHECK(state.template scalars<0>().subnormals == static_cast<float>(expect));
  }

  TEST_CASE("reduction policies: the run-time view answers as the policies and names are distinct") {
    const reduction all[] = {reduction::sum,        reduction::power_sum,
                             reduction::max_abs,    reduction::non_finite_count,
                             reduction::zero_count, reduction::subnormal_count};
    CHECK(detail::combines_by_max(reduction::max_abs, 2.0f));
    CHECK(detail::combines_by_max(reduction::power_sum, inf_value));
    CHECK_FALSE(detail::combines_by_max(reduction::power_sum, 2.0f));
    CHECK_FALSE(detail::combines_by_max(reduction::sum, inf_value));
    for (const reduction a : all)
      for (const reduction b : all)
        if (a != b) CHECK(std::string(detail::reduction_name(a)) != detail::reduction_name(b));
    CHECK(std::string(detail::reduction_name(reduction::power_sum)) == "sum |x|^p");
  }

}  // TEST_SUITE
