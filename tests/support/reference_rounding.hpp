// Test support: an independent reference for rounding float to a narrow
// format, by search in the table of the format's values (support/formats.hpp)
// with exact arithmetic in double. Slow and obviously correct.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "formats.hpp"

namespace test {

enum class ref_round { nearest_even, toward_zero };
enum class ref_overflow { to_infinity, saturate };

struct neighbours {
  double lo, hi;  // lo <= |x| < hi (hi may be the virtual value beyond max)
  std::uint32_t lo_bits, hi_bits;
  bool hi_is_beyond;  // hi is past the largest finite value
};

// Neighbours of a finite |x| in the format's value table.
inline neighbours bracket(const value_table& t, double ax, int mantissa_bits) {
  const auto it = std::upper_bound(t.values.begin(), t.values.end(), ax);
  const std::size_t k = static_cast<std::size_t>(it - t.values.begin()) - 1;  // values[0] == 0 <= ax
  neighbours n{};
  n.lo = t.values[k];
  n.lo_bits = t.bits[k];
  if (k + 1 < t.values.size()) {
    n.hi = t.values[k + 1];
    n.hi_bits = t.bits[k + 1];
    n.hi_is_beyond = false;
  } else {
    // One gap above the largest finite value: where IEEE overflow begins.
    int e;
    std::frexp(n.lo, &e);
    n.hi = n.lo + std::ldexp(1.0, e - 1 - mantissa_bits);
    n.hi_bits = n.lo_bits + 1;
    n.hi_is_beyond = true;
  }
  return n;
}

// Bits of x rounded to format T by the reference.
template <class T>
std::uint32_t reference_round(float x, ref_round mode, ref_overflow ov) {
  const layout L = layout_of<T>();
  const int total = 1 + L.exponent_bits + L.mantissa_bits;
  const std::uint32_t sign = (bits_from_float(x) >> 31) << (total - 1);
  const std::uint32_t nan_bits = L.ieee_specials ? ((1u << (total - 1)) - 1u) : 0x7fu;  // canonical NaN
  static const value_table table = finite_values<T>();
  const std::uint32_t max_bits = table.bits.back();
  const std::uint32_t beyond_bits = L.ieee_specials ? (((1u << L.exponent_bits) - 1u) << L.mantissa_bits) : 0x7fu;
  if (std::isnan(x)) return nan_bits;
  const double ax = std::fabs(static_cast<double>(x));
  if (std::isinf(x)) return sign | (ov == ref_overflow::saturate ? max_bits : beyond_bits);
  const neighbours n = bracket(table, ax, L.mantissa_bits);
  bool up;
  if (mode == ref_round::toward_zero) {
    up = false;
  } else {
    const double dlo = ax - n.lo, dhi = n.hi - ax;  // exact: both within a factor 2^24 of ulp
    up = dhi < dlo || (dhi == dlo && (n.lo_bits & 1u));
  }
  if (!up) return sign | n.lo_bits;
  if (!n.hi_is_beyond) return sign | n.hi_bits;
  return sign | (ov == ref_overflow::saturate ? max_bits : beyond_bits);
}

// Inputs that probe every rounding boundary of format T: each finite value,
// its float neighbours, the midpoints to the next value and their float
// neighbours, values beyond the range, both signs.
template <class T>
std::vector<float> boundary_inputs() {
  const value_table t = finite_values<T>();
  std::vector<float> out;
  auto push = [&out](double v) {
    const float f = static_cast<float>(v);
    for (float g : {f, std::nextafter(f, 0.0f), std::nextafter(f, INFINITY)}) {
      out.push_back(g);
      out.push_back(-g);
    }
  };
  for (std::size_t k = 0; k < t.values.size(); ++k) {
    push(t.values[k]);
    const double next =
        k + 1 < t.values.size() ? t.values[k + 1] : bracket(t, t.values[k], layout_of<T>().mantissa_bits).hi;
    push((t.values[k] + next) / 2);  // exact midpoint
    push(t.values[k] + (next - t.values[k]) / 4);
    push(t.values[k] + 3 * (next - t.values[k]) / 4);
  }
  for (float f : {1e30f, 3e38f, INFINITY, 1e-40f, 1e-45f}) push(f);
  return out;
}

}  // namespace test
