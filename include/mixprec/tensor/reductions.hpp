// Reductions of a tensor into device memory: sum, sum of squares, L2 norm,
// largest magnitude, count of non-finite elements. Each writes its result to
// a device location (a device_scalar or a pointer into device memory); read
// it on the host with device_scalar::get(), the explicit synchronising call.
//
// Sums accumulate in double whatever the storage format, and give the same
// bits run to run (fixed-shape tiled reduction; detail/tiles.hpp). max_abs
// returns NaN when any element is NaN.
#pragma once

#include <cmath>
#include <cstdint>
#include <type_traits>

#include <mixprec/cast/convert.hpp>
#include <mixprec/core/pinned_arithmetic.hpp>
#include <mixprec/detail/for_each.hpp>
#include <mixprec/detail/reduce.hpp>
#include <mixprec/detail/square_sum.hpp>
#include <mixprec/tensor/device_scalar.hpp>
#include <mixprec/tensor/tensor_view.hpp>

MIXPREC_PINNED_BEGIN

namespace mixprec {

// Scratch memory of the reductions; keep one per stream and reuse it.
using workspace = detail::workspace;

namespace detail {

// True when x is inf or NaN, from the exponent field alone.
template <class T>
MIXPREC_HOST_DEVICE bool is_non_finite(T x) {
  using F = format_traits<T>;
  const auto bits = to_bits(x);
  if constexpr (F::has_infinity) {
    constexpr std::uint32_t exp_mask = ((1u << F::exponent_bits) - 1u) << F::mantissa_bits;
    return (static_cast<std::uint32_t>(bits) & exp_mask) == exp_mask;
  } else {
    return (static_cast<std::uint32_t>(bits) & F::nan_bits) == F::nan_bits;  // E4M3: only NaN
  }
}

template <class T>
struct sum_op {
  using value_type = double;
  const T* p;
  MIXPREC_HOST_DEVICE double identity() const { return 0.0; }
  MIXPREC_HOST_DEVICE void accumulate(double& acc, std::size_t i) const { acc += static_cast<double>(to_float(p[i])); }
  MIXPREC_HOST_DEVICE double combine(const double& a, const double& b) const { return a + b; }
};

template <class T>
struct sum_of_squares_op {
  using value_type = double;
  const T* p;
  MIXPREC_HOST_DEVICE double identity() const { return 0.0; }
  MIXPREC_HOST_DEVICE void accumulate(double& acc, std::size_t i) const { acc = add_square(acc, to_float(p[i])); }
  MIXPREC_HOST_DEVICE double combine(const double& a, const double& b) const { return a + b; }
};

// max with NaN propagation.
MIXPREC_HOST_DEVICE float max_nan(float a, float b) { return (a != a || b != b) ? a + b : (a > b ? a : b); }

template <class T>
struct max_abs_op {
  using value_type = float;
  const T* p;
  MIXPREC_HOST_DEVICE float identity() const { return 0.0f; }
  MIXPREC_HOST_DEVICE void accumulate(float& acc, std::size_t i) const {
    acc = max_nan(acc, std::fabs(to_float(p[i])));
  }
  MIXPREC_HOST_DEVICE float combine(const float& a, const float& b) const { return max_nan(a, b); }
};

template <class T>
struct count_non_finite_op {
  using value_type = std::uint64_t;
  const T* p;
  MIXPREC_HOST_DEVICE std::uint64_t identity() const { return 0; }
  MIXPREC_HOST_DEVICE void accumulate(std::uint64_t& acc, std::size_t i) const { acc += is_non_finite(p[i]) ? 1u : 0u; }
  MIXPREC_HOST_DEVICE std::uint64_t combine(const std::uint64_t& a, const std::uint64_t& b) const { return a + b; }
};

struct sqrt_in_place {
  double* p;
  MIXPREC_HOST_DEVICE void operator()(std::size_t i) const { p[i] = sqrt(p[i]); }
};

template <template <class> class Op, class T>
void reduce_view(tensor_view<T> t, typename Op<std::remove_const_t<T>>::value_type* out, workspace& ws, stream s) {
  using U = std::remove_const_t<T>;
  transform_reduce(s, ws, t.size(), Op<U>{static_cast<const U*>(t.data())}, out);
}

}  // namespace detail

// Workspace bytes that any reduction below needs over n elements. Reserve
// them (ws.reserve(reduction_workspace_bytes(n))) before capturing a
// reduction in a CUDA graph: a workspace that is large enough allocates
// nothing.
inline std::size_t reduction_workspace_bytes(std::size_t n) {
  const std::size_t tiles = detail::tile_count(n);
  return workspace::round_up(tiles * sizeof(double)) + detail::combine_scratch_bytes<double>(tiles);
}

// *out = sum of t's elements (in double).
template <class T>
void sum(tensor_view<T> t, double* out, workspace& ws, stream s = {}) {
  detail::reduce_view<detail::sum_op>(t, out, ws, s);
}
// *out = sum of squares of t's elements (in double).
template <class T>
void sum_of_squares(tensor_view<T> t, double* out, workspace& ws, stream s = {}) {
  detail::reduce_view<detail::sum_of_squares_op>(t, out, ws, s);
}
// *out = Euclidean norm of t (in double).
template <class T>
void l2_norm(tensor_view<T> t, double* out, workspace& ws, stream s = {}) {
  sum_of_squares(t, out, ws, s);
  detail::run_single(s, detail::sqrt_in_place{out});
}
// *out = largest |t[i]| (NaN if any element is NaN).
template <class T>
void max_abs(tensor_view<T> t, float* out, workspace& ws, stream s = {}) {
  detail::reduce_view<detail::max_abs_op>(t, out, ws, s);
}
// *out = number of elements that are inf or NaN.
template <class T>
void count_non_finite(tensor_view<T> t, std::uint64_t* out, workspace& ws, stream s = {}) {
  detail::reduce_view<detail::count_non_finite_op>(t, out, ws, s);
}

// The same, into device scalars (which remember the stream for get()).
template <class T>
void sum(tensor_view<T> t, device_scalar<double>& out, workspace& ws, stream s = {}) {
  sum(t, out.data(), ws, s);
  out.written_on(s);
}
template <class T>
void sum_of_squares(tensor_view<T> t, device_scalar<double>& out, workspace& ws, stream s = {}) {
  sum_of_squares(t, out.data(), ws, s);
  out.written_on(s);
}
template <class T>
void l2_norm(tensor_view<T> t, device_scalar<double>& out, workspace& ws, stream s = {}) {
  l2_norm(t, out.data(), ws, s);
  out.written_on(s);
}
template <class T>
void max_abs(tensor_view<T> t, device_scalar<float>& out, workspace& ws, stream s = {}) {
  max_abs(t, out.data(), ws, s);
  out.written_on(s);
}
template <class T>
void count_non_finite(tensor_view<T> t, device_scalar<std::uint64_t>& out, workspace& ws, stream s = {}) {
  count_non_finite(t, out.data(), ws, s);
  out.written_on(s);
}

}  // namespace mixprec

MIXPREC_PINNED_END
