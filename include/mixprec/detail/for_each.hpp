// Element-wise launch primitives: for_each_index runs f(i) for every i in
// [0, n); for_each_zipped runs f(a[i], b[i], ...) over raw device pointers.
//
// Both are index-based on purpose: on the host backend, a functor over a
// counting iterator that holds raw pointers vectorises, while Thrust's zip
// iterators cost 4-7x (docs/design.md). On the host backends the loop is the
// library's own (Thrust's OpenMP for_each is the same parallel for): GCC
// would not inline the library's functors into a loop compiled outside the
// library's pinned arithmetic (core/pinned_arithmetic.hpp).
#pragma once

#include <cstddef>

// Before any Thrust header: it selects Thrust's device system.
#include <mixprec/core/config.hpp>

#include <thrust/for_each.h>
#include <thrust/iterator/counting_iterator.h>

#include <mixprec/core/error.hpp>
#include <mixprec/core/pinned_arithmetic.hpp>
#include <mixprec/detail/execution.hpp>

MIXPREC_PINNED_BEGIN

namespace mixprec::detail {

template <class F>
void for_each_index(stream s, std::size_t n, F f) {
  if (n == 0) return;
  translate_errors("for_each_index", [&] {
#if defined(MIXPREC_BACKEND_CUDA)
    thrust::for_each_n(policy(s), thrust::counting_iterator<std::size_t>(0), n, f);
#else
    (void)s;
    const std::ptrdiff_t count = static_cast<std::ptrdiff_t>(n);
#if defined(MIXPREC_BACKEND_OMP)
#pragma omp parallel for
#endif
    for (std::ptrdiff_t i = 0; i < count; ++i) f(static_cast<std::size_t>(i));
#endif
  });
  MIXPREC_CHECK_LAUNCH("for_each_index");
}

// Runs f(0) once, in stream order: a one-thread kernel on CUDA, a plain call
// on the host backends (no parallel region for a scalar rule).
template <class F>
void run_single(stream s, F f) {
#if defined(MIXPREC_BACKEND_CUDA)
  for_each_index(s, 1, f);
#else
  (void)s;
  f(std::size_t{0});
#endif
}

template <class F, class... Ptrs>
struct zipped_body {
  F f;
  thrust::tuple<Ptrs...> ptrs;
  MIXPREC_HOST_DEVICE void operator()(std::size_t i) const { call(i, std::index_sequence_for<Ptrs...>{}); }
  template <std::size_t... K>
  MIXPREC_HOST_DEVICE void call(std::size_t i, std::index_sequence<K...>) const {
    f(thrust::get<K>(ptrs)[i]...);
  }
};

// Calls f(p0[i], p1[i], ...) for i in [0, n); f receives element references.
template <class F, class... Ptrs>
void for_each_zipped(stream s, std::size_t n, F f, Ptrs... ptrs) {
  for_each_index(s, n, zipped_body<F, Ptrs...>{f, thrust::make_tuple(ptrs...)});
}

}  // namespace mixprec::detail

MIXPREC_PINNED_END
