// Element-wise operations on tensor views: each element is loaded from its
// storage format, computed in Compute precision (float or double), and
// stored through the converter with the given rounding style and overflow
// policy. Stochastic rounding keys element i on its index i.
//
//   fill(t, v), transform(dst, src, f), transform(dst, a, b, f),
//   cast(dst, src), scale(t, alpha), axpby(alpha, x, beta, y)
//
// f is a functor with MIXPREC_HOST_DEVICE operator()(Compute[, Compute]);
// under nvcc a lambda needs --extended-lambda, a named functor does not.
#pragma once

#include <cstddef>
#include <type_traits>

#include <mixprec/cast/convert.hpp>
#include <mixprec/core/pinned_arithmetic.hpp>
#include <mixprec/detail/for_each.hpp>
#include <mixprec/tensor/tensor_view.hpp>

MIXPREC_PINNED_BEGIN

namespace mixprec {
namespace detail {

template <class Compute>
inline constexpr bool is_compute_v = std::is_same_v<Compute, float> || std::is_same_v<Compute, double>;

template <class Compute, class T>
MIXPREC_HOST_DEVICE Compute load_as(const T& x) {
  return static_cast<Compute>(to_float(x));
}

template <class D, class Compute, class F, class Conv, class... S>
struct transform_body {
  D* dst;
  F f;
  Conv conv;
  thrust::tuple<const S*...> src;
  MIXPREC_HOST_DEVICE void operator()(std::size_t i) const { apply(i, std::index_sequence_for<S...>{}); }
  template <std::size_t... K>
  MIXPREC_HOST_DEVICE void apply(std::size_t i, std::index_sequence<K...>) const {
    dst[i] = conv(f(load_as<Compute>(thrust::get<K>(src)[i])...), i);
  }
};

template <class Compute, class O, class D, class R, class F, class... S>
void transform_n(std::size_t n, D* dst, F f, R round, stream s, const S*... src) {
  static_assert(is_compute_v<Compute>, "Compute precision must be float or double");
  using conv = converter<D, R, O>;
  for_each_index(s, n, transform_body<D, Compute, F, conv, S...>{dst, f, conv{round}, thrust::make_tuple(src...)});
}

template <class Compute>
struct constant_op {
  Compute value;
  MIXPREC_HOST_DEVICE Compute operator()() const { return value; }
};

}  // namespace detail

namespace ops {
template <class Compute = float>
struct scale_by {
  Compute alpha;
  MIXPREC_HOST_DEVICE Compute operator()(Compute x) const { return alpha * x; }
};
template <class Compute = float>
struct axpby {
  Compute alpha, beta;
  MIXPREC_HOST_DEVICE Compute operator()(Compute x, Compute y) const {
    return detail::mul(alpha, x) + detail::mul(beta, y);
  }
};
struct identity {
  template <class Compute>
  MIXPREC_HOST_DEVICE Compute operator()(Compute x) const {
    return x;
  }
};
}  // namespace ops

// t[i] = value, rounded to t's format.
template <class Compute = float, class O = overflow_to_infinity, class T, class R = round_nearest_even>
void fill(tensor_view<T> t, Compute value, R round = {}, stream s = {}) {
  detail::transform_n<Compute, O>(t.size(), t.data(), detail::constant_op<Compute>{value}, round, s);
}

// dst[i] = f(src[i]).
template <class Compute = float, class O = overflow_to_infinity, class D, class S, class F,
          class R = round_nearest_even>
void transform(tensor_view<D> dst, tensor_view<S> src, F f, R round = {}, stream s = {}) {
  detail::require_same_shape(dst, src, "transform");
  detail::transform_n<Compute, O>(dst.size(), dst.data(), f, round, s,
                                  static_cast<const std::remove_const_t<S>*>(src.data()));
}

// dst[i] = f(a[i], b[i]).
template <class Compute = float, class O = overflow_to_infinity, class D, class A, class B, class F,
          class R = round_nearest_even>
void transform(tensor_view<D> dst, tensor_view<A> a, tensor_view<B> b, F f, R round = {}, stream s = {}) {
  detail::require_same_shape(dst, a, "transform");
  detail::require_same_shape(dst, b, "transform");
  detail::transform_n<Compute, O>(dst.size(), dst.data(), f, round, s,
                                  static_cast<const std::remove_const_t<A>*>(a.data()),
                                  static_cast<const std::remove_const_t<B>*>(b.data()));
}

// dst = src converted to dst's format (the same shape, any two formats).
template <class O = overflow_to_infinity, class D, class S, class R = round_nearest_even>
void cast(tensor_view<D> dst, tensor_view<S> src, R round = {}, stream s = {}) {
  transform<float, O>(dst, src, ops::identity{}, round, s);
}

// t = alpha * t.
template <class Compute = float, class O = overflow_to_infinity, class T, class R = round_nearest_even>
void scale(tensor_view<T> t, Compute alpha, R round = {}, stream s = {}) {
  transform<Compute, O>(t, t, ops::scale_by<Compute>{alpha}, round, s);
}

// y = alpha * x + beta * y.
template <class Compute = float, class O = overflow_to_infinity, class X, class Y, class R = round_nearest_even>
void axpby(Compute alpha, tensor_view<X> x, Compute beta, tensor_view<Y> y, R round = {}, stream s = {}) {
  transform<Compute, O>(y, x, y, ops::axpby<Compute>{alpha, beta}, round, s);
}

}  // namespace mixprec

MIXPREC_PINNED_END
