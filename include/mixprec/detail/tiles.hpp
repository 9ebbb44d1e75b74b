// Tiled passes: the one launch primitive the arena passes and reductions use.
//
// A pass is split into tiles (contiguous index ranges of at most tile_size
// elements, never crossing a parameter segment). On CUDA a thread block
// handles a tile, its threads striding through it; on the host a tile is one
// iteration of an OpenMP-parallel loop whose inner loop vectorises. Each tile
// first computes its context (per-segment scalars, loaded once), then visits
// its elements.
//
// Reductions write one partial per tile, then combine partials in a fixed
// order (a fixed-shape tree per tile, a sequential or fixed-shape block tree
// across tiles), so the result is the same bits run to run and independent
// of thread count and scheduling.
//
// A tiled body B provides:
//   MIXPREC_HOST_DEVICE index_range range(std::size_t tile) const;
//   using context = ...;
//   MIXPREC_HOST_DEVICE context enter(std::size_t tile) const;
//   MIXPREC_HOST_DEVICE void element(std::size_t i, const context&) const;
// and optionally MIXPREC_HOST_DEVICE bool active(const context&) const: a
// tile whose context is inactive (a skipped step) is left alone; checking it
// once per tile keeps the element loop free of control flow, so it vectorises.
// A tiled reduction body R provides range, context and enter, and:
//   using value_type = ...;  (trivially copyable)
//   MIXPREC_HOST_DEVICE value_type identity() const;
//   MIXPREC_HOST_DEVICE void accumulate(value_type&, std::size_t i, const context&) const;
//   MIXPREC_HOST_DEVICE value_type combine(const value_type&, const value_type&) const;
#pragma once

#include <cstddef>
#include <type_traits>
#include <utility>

#include <thrust/for_each.h>
#include <thrust/iterator/counting_iterator.h>

#include <mixprec/core/error.hpp>
#include <mixprec/detail/execution.hpp>

#if defined(MIXPREC_BACKEND_CUDA)
#include <cub/block/block_reduce.cuh>
#endif

namespace mixprec::detail {

struct index_range {
  std::size_t begin = 0, end = 0;
};

// Elements per tile: large enough to amortise the per-tile context and the
// partial it writes, small enough to balance 2 cores or 132 SMs.
inline constexpr std::size_t tile_size = 4096;
inline constexpr int block_threads = 256;

MIXPREC_HOST_DEVICE std::size_t tile_count(std::size_t n) { return (n + tile_size - 1) / tile_size; }

// The uniform tiling of [0, n): tile t covers [t * tile_size, ...).
struct uniform_tiling {
  std::size_t n = 0;
  MIXPREC_HOST_DEVICE index_range range(std::size_t t) const {
    const std::size_t b = t * tile_size;
    const std::size_t e = b + tile_size < n ? b + tile_size : n;
    return {b, e};
  }
};

struct no_context {};

template <class Body, class Ctx, class = void>
struct has_active : std::false_type {};
template <class Body, class Ctx>
struct has_active<Body, Ctx, std::void_t<decltype(std::declval<const Body&>().active(std::declval<const Ctx&>()))>>
    : std::true_type {};

template <class Body, class Ctx>
MIXPREC_HOST_DEVICE bool tile_active(const Body& body, const Ctx& ctx) {
  if constexpr (has_active<Body, Ctx>::value) return body.active(ctx);
  else return true;
}

// Reduction bodies whose value type is made of `fields` doubles
// (double v[fields]) provide, instead of accumulate(),
//   value_type contribution(std::size_t i, const context&) const;
//   static constexpr bool additive;            every field adds
//   static constexpr bool pure_contribution;   contribution() has no side effects; if not,
//     void step_values(i, ctx, float& a, float& b) const   (the side effects, once)
//     value_type from_values(float a, float b) const       (pure)
//   bool field_is_max(std::size_t f) const;    (not additive) the field takes the max
// On the host each field keeps its 16 lanes contiguous (structure of arrays)
// and the lane loop vectorises; on the device a thread combines the
// contributions into its accumulator.
template <class T, class = void>
struct is_field_struct : std::false_type {};
template <class T>
struct is_field_struct<T, std::void_t<decltype(T::fields), decltype(std::declval<T&>().v[0])>> : std::true_type {};

template <class Body, class = void>
struct has_unused_field : std::false_type {};
template <class Body>
struct has_unused_field<Body, std::void_t<decltype(Body::unused_field(std::size_t{0}))>> : std::true_type {};

MIXPREC_HOST_DEVICE double add_or_max(double acc, double x, bool is_max) {
  const double m = ((x > acc) | (x != x)) ? x : acc;  // max; a NaN on either side wins
  return is_max ? m : acc + x;
}

template <class Body, class T, class Ctx>
MIXPREC_HOST_DEVICE void accumulate_into(const Body& body, T& acc, std::size_t i, const Ctx& ctx) {
  if constexpr (is_field_struct<T>::value) {
    const T c = body.contribution(i, ctx);
    for (std::size_t f = 0; f < T::fields; ++f) acc.v[f] = add_or_max(acc.v[f], c.v[f], body.field_is_max(f));
  } else {
    body.accumulate(acc, i, ctx);
  }
}

#if defined(MIXPREC_BACKEND_CUDA)

template <class Body>
__global__ void __launch_bounds__(block_threads) tile_kernel(Body body, std::size_t ntiles) {
  for (std::size_t t = blockIdx.x; t < ntiles; t += gridDim.x) {
    const index_range r = body.range(t);
    const auto ctx = body.enter(t);
    if (!tile_active(body, ctx)) continue;
    for (std::size_t i = r.begin + threadIdx.x; i < r.end; i += block_threads) body.element(i, ctx);
  }
}

template <class Body>
struct combine_op {
  const Body* body;
  template <class T>
  __device__ T operator()(const T& a, const T& b) const { return body->combine(a, b); }
};

template <class Body, class T>
__global__ void __launch_bounds__(block_threads) reduce_tiles_kernel(Body body, std::size_t ntiles, T* partials) {
  using block_reduce = cub::BlockReduce<T, block_threads>;
  __shared__ typename block_reduce::TempStorage storage;
  for (std::size_t t = blockIdx.x; t < ntiles; t += gridDim.x) {
    const index_range r = body.range(t);
    const auto ctx = body.enter(t);
    T acc = body.identity();
    if (tile_active(body, ctx))
      for (std::size_t i = r.begin + threadIdx.x; i < r.end; i += block_threads) accumulate_into(body, acc, i, ctx);
    const T total = block_reduce(storage).Reduce(acc, combine_op<Body>{&body});
    if (threadIdx.x == 0) partials[t] = total;
    __syncthreads();
  }
}

// Block k combines parts[offsets[k] .. offsets[k+1]) (or [0, n) when
// offsets is null) into out[k].
template <class Body, class T>
__global__ void __launch_bounds__(block_threads)
    combine_kernel(Body body, const T* parts, const std::size_t* offsets, std::size_t n, T* out) {
  using block_reduce = cub::BlockReduce<T, block_threads>;
  __shared__ typename block_reduce::TempStorage storage;
  const std::size_t k = blockIdx.x;
  const std::size_t b = offsets ? offsets[k] : 0, e = offsets ? offsets[k + 1] : n;
  T acc = body.identity();
  for (std::size_t i = b + threadIdx.x; i < e; i += block_threads) acc = body.combine(acc, parts[i]);
  const T total = block_reduce(storage).Reduce(acc, combine_op<Body>{&body});
  if (threadIdx.x == 0) out[k] = total;
}

inline unsigned grid_for(std::size_t ntiles) {
  constexpr std::size_t max_grid = 1u << 30;
  return static_cast<unsigned>(ntiles < max_grid ? ntiles : max_grid);
}

#else  // host backends

template <class Body>
struct host_tile_runner {
  Body body;
  void operator()(std::size_t t) const {
    // A local copy: its fields (hyperparameters, pointers) cannot alias the
    // arrays the loop writes, so the compiler treats them as loop-invariant
    // (and unswitches on uniform options such as amsgrad).
    const Body local = body;
    const index_range r = local.range(t);
    const auto ctx = local.enter(t);
    if (!tile_active(local, ctx)) return;
    const std::size_t b = r.begin, e = r.end;
    MIXPREC_PRAGMA_SIMD
    for (std::size_t i = b; i < e; ++i) local.element(i, ctx);
  }
};

// Sixteen interleaved accumulators per tile: independent chains, so the
// lane loop vectorises (two AVX2 vectors of doubles, say) without
// reassociating any sum; combined by a fixed tree.
inline constexpr int host_lanes = 16;

template <class Body, class Ctx, std::size_t F, std::size_t f>
void sum_field(const Body& body, const Ctx& ctx, index_range r, double (&lanes)[F][host_lanes]) {
  if constexpr (has_unused_field<Body>::value) {
    if (Body::unused_field(f)) return;  // a field the body never fills
  }
  std::size_t i = r.begin;
  double lane[host_lanes];
  for (int l = 0; l < host_lanes; ++l) lane[l] = lanes[f][l];
  for (; i + host_lanes <= r.end; i += host_lanes) {
    MIXPREC_PRAGMA_SIMD
    for (int l = 0; l < host_lanes; ++l) lane[l] += body.contribution(i + l, ctx).v[f];
  }
  for (int l = 0; i < r.end; ++i, ++l) lane[l] += body.contribution(i, ctx).v[f];
  for (int l = 0; l < host_lanes; ++l) lanes[f][l] = lane[l];
}
template <class Body, class Ctx, std::size_t F, std::size_t... f>
void sum_fields(const Body& body, const Ctx& ctx, index_range r, double (&lanes)[F][host_lanes],
                std::index_sequence<f...>) {
  (sum_field<Body, Ctx, F, f>(body, ctx, r, lanes), ...);
}

template <class Body, std::size_t F, std::size_t f>
void sum_value_field(const Body& body, const float* first, const float* second, std::size_t n,
                     double (&lanes)[F][host_lanes]) {
  double lane[host_lanes];
  for (int l = 0; l < host_lanes; ++l) lane[l] = lanes[f][l];
  std::size_t k = 0;
  for (; k + host_lanes <= n; k += host_lanes) {
    MIXPREC_PRAGMA_SIMD
    for (int l = 0; l < host_lanes; ++l) lane[l] += body.from_values(first[k + l], second[k + l]).v[f];
  }
  for (int l = 0; k < n; ++k, ++l) lane[l] += body.from_values(first[k], second[k]).v[f];
  for (int l = 0; l < host_lanes; ++l) lanes[f][l] = lane[l];
}
template <class Body, std::size_t F, std::size_t... f>
void sum_value_fields(const Body& body, const float* first, const float* second, std::size_t n,
                      double (&lanes)[F][host_lanes], std::index_sequence<f...>) {
  (sum_value_field<Body, F, f>(body, first, second, n, lanes), ...);
}

template <class Body, class T>
struct host_reduce_runner {
  Body body;
  T* partials;
  void operator()(std::size_t t) const {
    const Body local = body;  // loop-invariant fields, as in host_tile_runner
    const index_range r = local.range(t);
    const auto ctx = local.enter(t);
    if constexpr (is_field_struct<T>::value) {
      constexpr std::size_t F = T::fields;
      const T init = local.identity();
      double lanes[F][host_lanes];
      for (std::size_t f = 0; f < F; ++f)
        for (int l = 0; l < host_lanes; ++l) lanes[f][l] = init.v[f];
      if (tile_active(local, ctx)) {
        std::size_t i = r.begin;
        if constexpr (Body::additive && Body::pure_contribution) {
          // One sweep of the tile per field, each the proven 16-lane double
          // sum; the other fields of a contribution are dead code there.
          // (A single sweep with a struct per element does not vectorise.)
          sum_fields(local, ctx, r, lanes, std::make_index_sequence<F>{});
        } else if constexpr (Body::additive) {
          // Bodies whose elements write state (the stages of a measuring
          // pass) give two values per element: one vectorised sweep runs the
          // stages into a tile buffer, then the fields are summed from it.
          float first[tile_size], second[tile_size];
          const std::size_t n = r.end - r.begin;
          MIXPREC_PRAGMA_SIMD
          for (std::size_t k = 0; k < n; ++k) local.step_values(r.begin + k, ctx, first[k], second[k]);
          sum_value_fields(local, first, second, n, lanes, std::make_index_sequence<F>{});
        } else {
          bool is_max[F];
          for (std::size_t f = 0; f < F; ++f) is_max[f] = local.field_is_max(f);
          for (int l = 0; i < r.end; ++i, l = (l + 1) % host_lanes) {
            const T c = local.contribution(i, ctx);
            for (std::size_t f = 0; f < F; ++f) lanes[f][l] = add_or_max(lanes[f][l], c.v[f], is_max[f]);
          }
        }
      }
      T lane[host_lanes];
      for (int l = 0; l < host_lanes; ++l)
        for (std::size_t f = 0; f < F; ++f) lane[l].v[f] = lanes[f][l];
      for (int width = host_lanes / 2; width > 0; width /= 2)
        for (int l = 0; l < width; ++l) lane[l] = local.combine(lane[l], lane[l + width]);
      partials[t] = lane[0];
    } else {
      T lane[host_lanes];
      for (int l = 0; l < host_lanes; ++l) lane[l] = local.identity();
      if (tile_active(local, ctx)) {
        std::size_t i = r.begin;
        for (; i + host_lanes <= r.end; i += host_lanes) {
          MIXPREC_PRAGMA_SIMD
          for (int l = 0; l < host_lanes; ++l) local.accumulate(lane[l], i + l, ctx);
        }
        for (int l = 0; i < r.end; ++i, ++l) local.accumulate(lane[l], i, ctx);
      }
      for (int width = host_lanes / 2; width > 0; width /= 2)
        for (int l = 0; l < width; ++l) lane[l] = local.combine(lane[l], lane[l + width]);
      partials[t] = lane[0];
    }
  }
};

template <class Body, class T>
struct host_combine_runner {
  Body body;
  const T* parts;
  const std::size_t* offsets;
  T* out;
  void operator()(std::size_t k) const {
    T acc = body.identity();
    for (std::size_t i = offsets[k]; i < offsets[k + 1]; ++i) acc = body.combine(acc, parts[i]);
    out[k] = acc;
  }
};

#endif

// Runs body over tiles [0, ntiles).
template <class Body>
void for_each_tile(stream s, std::size_t ntiles, const Body& body) {
  if (ntiles == 0) return;
#if defined(MIXPREC_BACKEND_CUDA)
  tile_kernel<<<grid_for(ntiles), block_threads, 0, s.handle>>>(body, ntiles);
  MIXPREC_CHECK_LAUNCH("for_each_tile");
#else
  translate_errors("for_each_tile", [&] {
    thrust::for_each_n(policy(s), thrust::counting_iterator<std::size_t>(0), ntiles, host_tile_runner<Body>{body});
  });
#endif
}

// Writes one partial per tile to partials[0, ntiles) (device memory).
template <class Body, class T = typename Body::value_type>
void reduce_tiles(stream s, std::size_t ntiles, const Body& body, T* partials) {
  if (ntiles == 0) return;
#if defined(MIXPREC_BACKEND_CUDA)
  reduce_tiles_kernel<<<grid_for(ntiles), block_threads, 0, s.handle>>>(body, ntiles, partials);
  MIXPREC_CHECK_LAUNCH("reduce_tiles");
#else
  translate_errors("reduce_tiles", [&] {
    thrust::for_each_n(policy(s), thrust::counting_iterator<std::size_t>(0), ntiles,
                       host_reduce_runner<Body, T>{body, partials});
  });
#endif
}

// *out = combination of parts[0, n) in a fixed order (identity when n == 0).
template <class Body, class T>
void combine_all(stream s, const Body& body, const T* parts, std::size_t n, T* out) {
#if defined(MIXPREC_BACKEND_CUDA)
  combine_kernel<<<1, block_threads, 0, s.handle>>>(body, parts, static_cast<const std::size_t*>(nullptr), n, out);
  MIXPREC_CHECK_LAUNCH("combine_all");
#else
  (void)s;
  T acc = body.identity();
  for (std::size_t i = 0; i < n; ++i) acc = body.combine(acc, parts[i]);
  *out = acc;
#endif
}

// out[k] = combination of parts[offsets[k], offsets[k+1]) for k < nsegments.
// `offsets` (nsegments + 1 entries) lives in device memory.
template <class Body, class T>
void combine_segments(stream s, const Body& body, const T* parts, const std::size_t* offsets,
                      std::size_t nsegments, T* out) {
  if (nsegments == 0) return;
#if defined(MIXPREC_BACKEND_CUDA)
  combine_kernel<<<static_cast<unsigned>(nsegments), block_threads, 0, s.handle>>>(body, parts, offsets, 0, out);
  MIXPREC_CHECK_LAUNCH("combine_segments");
#else
  translate_errors("combine_segments", [&] {
    thrust::for_each_n(policy(s), thrust::counting_iterator<std::size_t>(0), nsegments,
                       host_combine_runner<Body, T>{body, parts, offsets, out});
  });
#endif
}

}  // namespace mixprec::detail
