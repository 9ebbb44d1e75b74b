// What each reduction means, in one place: the value an element
// contributes, how two partial results combine, how a multiplier decided
// after the measurement applies to the result, and its name. Every pass,
// every combine (tiles, segments, rows, ranks) and describe() read these.
#pragma once

#include <cmath>
#include <cstdint>

#include <mixprec/component/component.hpp>
#include <mixprec/core/bit.hpp>
#include <mixprec/core/config.hpp>
#include <mixprec/core/pinned_arithmetic.hpp>

MIXPREC_PINNED_BEGIN

namespace mixprec::detail {

// How a statistic measured before some multipliers relates to the same
// statistic of the scaled values, for a combined factor c.
enum class under_scaling : std::uint8_t {
  abs_power,  // |c|^p (sum of |x|^p; |c| when p is infinite)
  abs,        // |c| (max |x|)
  linear,     // c (sum)
  unchanged,  // 1: the count is the same for every non-zero finite factor
  remeasure,  // no formula: measure it after the multipliers are decided
};

template <reduction Op>
struct reduction_policy;

template <>
struct reduction_policy<reduction::sum> {
  static constexpr const char* name = "sum";
  static constexpr under_scaling scaling = under_scaling::linear;
  MIXPREC_HOST_DEVICE static constexpr bool combines_by_max(float) { return false; }
  MIXPREC_HOST_DEVICE static double contribution(float v, float, float) { return static_cast<double>(v); }
};
template <>
struct reduction_policy<reduction::power_sum> {
  static constexpr const char* name = "sum |x|^p";
  static constexpr under_scaling scaling = under_scaling::abs_power;
  // The infinity norm is a maximum of |x|.
  MIXPREC_HOST_DEVICE static constexpr bool combines_by_max(float p) { return p == infinity_norm; }
  MIXPREC_HOST_DEVICE static double contribution(float v, float p, float) {
    const double a = fabs(static_cast<double>(v));
    if (p == 2.0f) return mul(a, a);  // not fused into the sum it feeds (exact either way)
    if (p == 1.0f || p == infinity_norm) return a;
    return pow(a, static_cast<double>(p));
  }
};
template <>
struct reduction_policy<reduction::max_abs> {
  static constexpr const char* name = "max |x|";
  static constexpr under_scaling scaling = under_scaling::abs;
  MIXPREC_HOST_DEVICE static constexpr bool combines_by_max(float) { return true; }
  MIXPREC_HOST_DEVICE static double contribution(float v, float, float) { return fabs(static_cast<double>(v)); }
};
template <>
struct reduction_policy<reduction::non_finite_count> {
  static constexpr const char* name = "non-finite count";
  static constexpr under_scaling scaling = under_scaling::unchanged;
  MIXPREC_HOST_DEVICE static constexpr bool combines_by_max(float) { return false; }
  MIXPREC_HOST_DEVICE static double contribution(float v, float, float) {
    return (bit_cast<std::uint32_t>(v) & 0x7f800000u) == 0x7f800000u ? 1.0 : 0.0;
  }
};
template <>
struct reduction_policy<reduction::zero_count> {
  static constexpr const char* name = "zero count";
  static constexpr under_scaling scaling = under_scaling::unchanged;
  MIXPREC_HOST_DEVICE static constexpr bool combines_by_max(float) { return false; }
  MIXPREC_HOST_DEVICE static double contribution(float v, float, float) { return v == 0.0f ? 1.0 : 0.0; }
};
template <>
struct reduction_policy<reduction::subnormal_count> {
  static constexpr const char* name = "subnormal count";
  // A factor moves values across the smallest normal.
  static constexpr under_scaling scaling = under_scaling::remeasure;
  MIXPREC_HOST_DEVICE static constexpr bool combines_by_max(float) { return false; }
  MIXPREC_HOST_DEVICE static double contribution(float v, float, float min_normal) {
    return (v != 0.0f && fabsf(v) < min_normal) ? 1.0 : 0.0;
  }
};

// The policy's answers for an operation known only at run time (the plan's
// tables, describe(), the combines after a pass).
template <class F>
constexpr auto visit_reduction(reduction op, F&& f) {
  switch (op) {
    case reduction::sum:
      return f(reduction_policy<reduction::sum>{});
    case reduction::power_sum:
      return f(reduction_policy<reduction::power_sum>{});
    case reduction::max_abs:
      return f(reduction_policy<reduction::max_abs>{});
    case reduction::non_finite_count:
      return f(reduction_policy<reduction::non_finite_count>{});
    case reduction::zero_count:
      return f(reduction_policy<reduction::zero_count>{});
    case reduction::subnormal_count:
      break;
  }
  return f(reduction_policy<reduction::subnormal_count>{});
}
constexpr bool combines_by_max(reduction op, float p) {
  return visit_reduction(op, [p](auto policy) { return decltype(policy)::combines_by_max(p); });
}
constexpr under_scaling scaling_of(reduction op) {
  return visit_reduction(op, [](auto policy) { return decltype(policy)::scaling; });
}
// As a constant for __host__ __device__ bodies (nvcc warns about calls of
// constexpr host functions there, not in these initialisers).
template <reduction Op>
inline constexpr under_scaling scaling_of_v = scaling_of(Op);
constexpr const char* reduction_name(reduction op) {
  return visit_reduction(op, [](auto policy) { return decltype(policy)::name; });
}

// The one combine of partial results: a sum, or a maximum in which a NaN on
// either side wins.
MIXPREC_HOST_DEVICE double combine_values(double a, double b, bool by_max) {
  if (!by_max) return a + b;
  return ((b > a) | (b != b)) ? b : a;
}

// The factor a statistic measured before multipliers with product c is
// multiplied by to give the statistic of the scaled values.
template <reduction Op>
MIXPREC_HOST_DEVICE double scale_factor(double c, float p) {
  constexpr under_scaling how = reduction_policy<Op>::scaling;
  static_assert(how != under_scaling::remeasure, "the planner measures this statistic after its multipliers");
  if constexpr (how == under_scaling::abs_power) {
    const double a = fabs(c);
    if (p == infinity_norm) return a;
    return p == 2.0f ? mul(a, a) : pow(a, static_cast<double>(p));
  } else if constexpr (how == under_scaling::abs) {
    return fabs(c);
  } else if constexpr (how == under_scaling::linear) {
    return c;
  } else {
    (void)c, (void)p;
    return 1.0;
  }
}

}  // namespace mixprec::detail

MIXPREC_PINNED_END
