// A tuple that is trivially copyable on host and device: per-component
// scalars and hyperparameters live in device memory and travel into kernels
// by value, which needs plain aggregates.
#pragma once

#include <cstddef>
#include <type_traits>

#include <mixprec/core/config.hpp>

namespace mixprec::detail {

template <class... T>
struct pod_tuple {};

template <class H, class... T>
struct pod_tuple<H, T...> {
  H head;
  pod_tuple<T...> tail;
};

template <std::size_t K, class Tuple>
struct pod_tuple_element;
template <class H, class... T>
struct pod_tuple_element<0, pod_tuple<H, T...>> {
  using type = H;
};
template <std::size_t K, class H, class... T>
struct pod_tuple_element<K, pod_tuple<H, T...>> : pod_tuple_element<K - 1, pod_tuple<T...>> {};

template <std::size_t K, class... T>
MIXPREC_HOST_DEVICE typename pod_tuple_element<K, pod_tuple<T...>>::type& get(pod_tuple<T...>& t) {
  if constexpr (K == 0) return t.head;
  else return get<K - 1>(t.tail);
}
template <std::size_t K, class... T>
MIXPREC_HOST_DEVICE const typename pod_tuple_element<K, pod_tuple<T...>>::type& get(const pod_tuple<T...>& t) {
  if constexpr (K == 0) return t.head;
  else return get<K - 1>(t.tail);
}

template <class... T>
pod_tuple<T...> make_pod_tuple(const T&... v);
template <>
inline pod_tuple<> make_pod_tuple() {
  return {};
}
template <class H, class... T>
pod_tuple<H, T...> make_pod_tuple(const H& h, const T&... t) {
  return {h, make_pod_tuple<T...>(t...)};
}

}  // namespace mixprec::detail
