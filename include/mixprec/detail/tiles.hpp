// Tiled reductions: the launch primitive of the device reductions
// (detail/reduce.hpp, tensor/segment_reductions.hpp). The training step has
// its own passes (train/pass_runner.hpp) over its own tiles.
//
// A reduction is split into tiles (contiguous index ranges of at most
// tile_size elements, never crossing a parameter segment). On CUDA a thread
// block handles a tile, its threads striding through it; on the host a tile
// is one iteration of an OpenMP-parallel loop whose inner loop vectorises.
//
// Reductions write one partial per tile, then combine partials in a fixed
// order (a fixed-shape tree per tile, a sequential or fixed-shape block tree
// across tiles), so the result is the same bits run to run and independent
// of thread count and scheduling.
//
// A tiled reduction body R provides:
//   MIXPREC_HOST_DEVICE index_range range(std::size_t tile) const;
//   using context = ...;
//   MIXPREC_HOST_DEVICE context enter(std::size_t tile) const;
//   using value_type = ...;  (trivially copyable)
//   MIXPREC_HOST_DEVICE value_type identity() const;
//   MIXPREC_HOST_DEVICE void accumulate(value_type&, std::size_t i, const context&) const;
//   MIXPREC_HOST_DEVICE value_type combine(const value_type&, const value_type&) const;
// combine_all and combine_segments need only identity() and combine().
#pragma once

#include <cstddef>
#include <type_traits>
#include <utility>

// Before any Thrust header: it selects Thrust's device system.
#include <mixprec/core/config.hpp>

#include <thrust/for_each.h>
#include <thrust/iterator/counting_iterator.h>

#include <mixprec/core/error.hpp>
#include <mixprec/core/pinned_arithmetic.hpp>
#include <mixprec/detail/execution.hpp>
#include <mixprec/detail/lanes.hpp>

#if defined(MIXPREC_BACKEND_CUDA)
#include <cub/block/block_reduce.cuh>
#endif

MIXPREC_PINNED_BEGIN

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

#if defined(MIXPREC_BACKEND_CUDA)

template <class Body>
struct combine_op {
  const Body* body;
  template <class T>
  __device__ T operator()(const T& a, const T& b) const {
    return body->combine(a, b);
  }
};

template <class Body, class T>
__global__ void __launch_bounds__(block_threads) reduce_tiles_kernel(Body body, std::size_t ntiles, T* partials) {
  using block_reduce = cub::BlockReduce<T, block_threads>;
  __shared__ typename block_reduce::TempStorage storage;
  for (std::size_t t = blockIdx.x; t < ntiles; t += gridDim.x) {
    const index_range r = body.range(t);
    const auto ctx = body.enter(t);
    T acc = body.identity();
    for (std::size_t i = r.begin + threadIdx.x; i < r.end; i += block_threads) body.accumulate(acc, i, ctx);
    const T total = block_reduce(storage).Reduce(acc, combine_op<Body>{&body});
    if (threadIdx.x == 0) partials[t] = total;
    __syncthreads();
  }
}

// Block k combines parts[offsets[k] .. offsets[k+1]) (or, when offsets is
// null, [k * chunk, min(n, (k + 1) * chunk))) into out[k].
template <class Body, class T>
__global__ void __launch_bounds__(block_threads)
    combine_kernel(Body body, const T* parts, const std::size_t* offsets, std::size_t n, std::size_t chunk, T* out) {
  using block_reduce = cub::BlockReduce<T, block_threads>;
  __shared__ typename block_reduce::TempStorage storage;
  const std::size_t k = blockIdx.x;
  const std::size_t b = offsets ? offsets[k] : k * chunk;
  const std::size_t e = offsets ? offsets[k + 1] : (n - b < chunk ? n : b + chunk);
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

// Per tile: interleaved accumulators folded by the fixed tree (detail/lanes.hpp).
template <class Body, class T>
struct host_reduce_runner {
  Body body;
  T* partials;
  void operator()(std::size_t t) const {
    // A local copy: its fields cannot alias the arrays the loop reads, so the
    // compiler treats them as loop-invariant.
    const Body local = body;
    const index_range r = local.range(t);
    const auto ctx = local.enter(t);
    T lane[interleaved_lanes];
    for (int l = 0; l < interleaved_lanes; ++l) lane[l] = local.identity();
    std::size_t i = r.begin;
    for (; i + interleaved_lanes <= r.end; i += interleaved_lanes) {
      MIXPREC_PRAGMA_SIMD
      for (int l = 0; l < interleaved_lanes; ++l) local.accumulate(lane[l], i + l, ctx);
    }
    for (int l = 0; i < r.end; ++i, ++l) local.accumulate(lane[l], i, ctx);
    partials[t] = fold_lanes(lane, [&local](const T& a, const T& b) { return local.combine(a, b); });
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

// combine_all on CUDA in two levels when there are more than combine_chunk
// partials: a block per chunk of them (fixed chunks, so the order is the
// same on every GPU), then one block over the chunks' results, kept in
// `scratch` (combine_scratch_bytes). One block alone would read 10^5
// partials (4 x 10^8 elements) at a fraction of the device's bandwidth.
inline constexpr std::size_t combine_chunk = 16 * block_threads;
MIXPREC_HOST_DEVICE std::size_t combine_blocks(std::size_t n) {
  return n > combine_chunk ? (n + combine_chunk - 1) / combine_chunk : 0;
}
template <class T>
std::size_t combine_scratch_bytes(std::size_t n) {
  return (combine_blocks(n) * sizeof(T) + 15) / 16 * 16;
}

// *out = combination of parts[0, n) in a fixed order (identity when n ==
// 0). `scratch` has room for combine_blocks(n) values (may be null when
// that is 0; the host backends do not use it).
template <class Body, class T>
void combine_all(stream s, const Body& body, const T* parts, std::size_t n, T* out, T* scratch) {
#if defined(MIXPREC_BACKEND_CUDA)
  const std::size_t blocks = combine_blocks(n);
  const std::size_t* none = nullptr;
  if (blocks > 0) {
    require(scratch != nullptr, "combine_all: ", n, " partials need scratch for ", blocks, " chunk results");
    combine_kernel<<<static_cast<unsigned>(blocks), block_threads, 0, s.handle>>>(body, parts, none, n, combine_chunk,
                                                                                  scratch);
    MIXPREC_CHECK_LAUNCH("combine_all");
    combine_kernel<<<1, block_threads, 0, s.handle>>>(body, static_cast<const T*>(scratch), none, blocks, blocks, out);
  } else {
    combine_kernel<<<1, block_threads, 0, s.handle>>>(body, parts, none, n, n, out);
  }
  MIXPREC_CHECK_LAUNCH("combine_all");
#else
  (void)s, (void)scratch;
  T acc = body.identity();
  for (std::size_t i = 0; i < n; ++i) acc = body.combine(acc, parts[i]);
  *out = acc;
#endif
}

// out[k] = combination of parts[offsets[k], offsets[k+1]) for k < nsegments.
// `offsets` (nsegments + 1 entries) lives in device memory.
template <class Body, class T>
void combine_segments(stream s, const Body& body, const T* parts, const std::size_t* offsets, std::size_t nsegments,
                      T* out) {
  if (nsegments == 0) return;
#if defined(MIXPREC_BACKEND_CUDA)
  combine_kernel<<<static_cast<unsigned>(nsegments), block_threads, 0, s.handle>>>(body, parts, offsets, 0, 0, out);
  MIXPREC_CHECK_LAUNCH("combine_segments");
#else
  translate_errors("combine_segments", [&] {
    thrust::for_each_n(policy(s), thrust::counting_iterator<std::size_t>(0), nsegments,
                       host_combine_runner<Body, T>{body, parts, offsets, out});
  });
#endif
}

}  // namespace mixprec::detail

MIXPREC_PINNED_END
