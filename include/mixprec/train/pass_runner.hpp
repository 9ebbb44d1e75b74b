// Launching a step's passes over its tiles (train/layout.hpp), on CUDA and
// on the host backends.
//
// A tile is a block of `height` rows by `width` columns (one row of up to
// 4096 elements without positions). CUDA: a thread block per tile. Host:
// an OpenMP iteration per tile, the column loop vectorised.
//
// Measuring passes return per-tile partials of their global and
// per-parameter statistics and write per-row and per-column partials to
// fixed places; every combination is in a fixed order, so the results are
// the same bits run to run (the CUDA and host orders differ).
#pragma once

#include <cstddef>
#include <cstdint>
#include <type_traits>

// Before any Thrust header: it selects Thrust's device system.
#include <mixprec/core/config.hpp>

#include <thrust/for_each.h>
#include <thrust/iterator/counting_iterator.h>

#include <mixprec/core/error.hpp>
#include <mixprec/core/pinned_arithmetic.hpp>
#include <mixprec/detail/execution.hpp>
#include <mixprec/detail/lanes.hpp>
#include <mixprec/detail/tiles.hpp>
#include <mixprec/train/coded_blocks.hpp>
#include <mixprec/train/host_row_draws.hpp>
#include <mixprec/train/host_strategy.hpp>
#include <mixprec/train/layout.hpp>
#include <mixprec/train/measure_groups.hpp>
#include <mixprec/train/passes.hpp>
#include <mixprec/train/update_groups.hpp>

#if defined(MIXPREC_BACKEND_CUDA)
#include <cub/block/block_reduce.cuh>
#endif

MIXPREC_PINNED_BEGIN

namespace mixprec::detail {

static_assert(tile_size % max_block == 0, "a tile of consecutive elements holds whole blocks");

// Where a measuring pass writes its per-row and per-column partials.
template <class Body>
MIXPREC_HOST_DEVICE std::uint64_t row_partial_at(const param_geometry& g, const step_tile& t, std::uint32_t r) {
  return g.row_partial_base + static_cast<std::uint64_t>(t.row0 + r) * g.blocks + t.block;
}
template <class Body>
MIXPREC_HOST_DEVICE std::uint64_t column_partial_at(const param_geometry& g, const step_tile& t, std::uint32_t c) {
  return g.column_partial_base + (static_cast<std::uint64_t>(t.batch) * g.bands + t.band) * g.cols + t.col0 + c;
}

// The update of one tile by `threads` workers (this one is `thread`): on
// aligned tiles without positions, groups of consecutive elements
// (train/update_groups.hpp: 16-byte loads and stores), worker k
// taking groups k, k + threads, ...; then the elements left one at a time.
// A chain with 8-bit coded state runs a block per worker instead
// (train/coded_blocks.hpp). Returns the number of elements run in groups.
template <class Body, class Context, class Scalars>
MIXPREC_HOST_DEVICE std::uint32_t update_tile(const Body& body, const step_tile& tile, const Context& ctx,
                                              const Scalars& sc, std::uint32_t thread, std::uint32_t threads) {
  constexpr bool positions = Body::d.positions;
  const std::uint32_t n = tile.height * tile.width;
  std::uint32_t first = 0;
  if constexpr (Body::d.coded) {
    // 8-bit coded state (train/coded_blocks.hpp): on CUDA a block per
    // warp; on the host (host_gpu_order) the same lanes in turn.
    constexpr std::uint32_t N = Body::d.block;
    const coded_blocks<Body> blocks{body};
#if defined(__CUDA_ARCH__)
    static_assert(block_threads % 32 == 0, "whole warps");
    for (std::uint32_t b = thread / 32; b * N < tile.width; b += threads / 32)
      blocks.run_in_warp(tile, b, thread % 32, ctx, sc);
#else
    for (std::uint32_t b = thread; b * N < tile.width; b += threads) blocks.run_as_warp(tile, b, ctx, sc);
#endif
    return 0;
  } else {
    if constexpr (!positions) {
      const update_groups<Body> in_groups{body};
      if (in_groups.fits(ctx, tile.begin)) {
        constexpr std::uint32_t G = update_groups<Body>::group;
        const std::uint32_t groups = n / G;
        for (std::uint32_t k = thread; k < groups; k += threads) in_groups.run(tile.begin + k * G, k * G, ctx, sc);
        first = groups * G;
      }
    }
    for (std::uint32_t e = first + thread; e < n; e += threads) {
      const std::uint32_t r = positions ? e / tile.width : 0;
      const std::uint32_t c = positions ? e - r * tile.width : e;
      body.element(tile.begin + static_cast<std::uint64_t>(r) * tile.stride + c, r, c, ctx, sc);
    }
  }
  return first;
}

// Statistic k over elements [begin, end) of a tile's only row, in the fixed
// order of every host reduction (element j of the run in lane j mod 16, the
// lanes folded by the tree: detail/lanes.hpp), on the host and on CUDA.
template <int k, class Body, class Value>
MIXPREC_HOST_DEVICE double fold_run(const Body& b, const Value& value, std::uint32_t begin, std::uint32_t end,
                                    bool is_max) {
  double lane[interleaved_lanes];
  for (int l = 0; l < interleaved_lanes; ++l) lane[l] = 0.0;
  std::uint32_t c = begin;
  for (; c + interleaved_lanes <= end; c += interleaved_lanes)
    for (int l = 0; l < interleaved_lanes; ++l)
      lane[l] = combine_values(lane[l], b.template contribution_of<k>(value(c + l)), is_max);
  for (int l = 0; c < end; ++c, ++l) lane[l] = combine_values(lane[l], b.template contribution_of<k>(value(c)), is_max);
  return fold_lanes(lane, [is_max](double x, double y) { return combine_values(x, y, is_max); });
}

// Per-block statistic k of a tile of consecutive elements (it holds whole
// blocks: plan.hpp, layout.hpp): each block's value written in place.
template <int k, class Body, class Value>
MIXPREC_HOST_DEVICE void reduce_block(const Body& b, const step_tile& tile, const Value& value, std::uint32_t blk,
                                      bool is_max) {
  constexpr std::uint32_t N = Body::d.block;
  const param_geometry& g = b.env.geometry[tile.param];
  const std::uint32_t begin = blk * N, end = begin + N < tile.width ? begin + N : tile.width;
  b.env.stats[Body::list.s[k]][scope_base<scope::block>(g) + (tile.begin - g.offset) / N + blk] =
      fold_run<k>(b, value, begin, end, is_max);
}

#if defined(MIXPREC_BACKEND_CUDA)

// At least 2 blocks (512 threads) per SM, so at most 128 registers per
// thread (the grouped update needs 44-94 on sm_90, scripts/sass-check.py):
// AdamW with bf16 gradients keeps 112 bytes per thread in flight, 56 KiB per
// SM, over twice what HBM3e's bandwidth-latency product asks of each of
// the H200's 132 SMs (4.8 TB/s x ~0.6 us / 132 = ~22 KiB).
inline constexpr int update_min_blocks = 2;

template <class Body>
__global__ void __launch_bounds__(block_threads, update_min_blocks) update_kernel(Body body, std::size_t ntiles) {
  for (std::size_t t = blockIdx.x; t < ntiles; t += gridDim.x) {
    const step_tile tile = body.env.tiles[t];
    const auto ctx = body.enter(t);
    if (!body.active(ctx)) continue;
    const auto sc = load_scalars(body.env);
    update_tile(body, tile, ctx, sc, threadIdx.x, block_threads);
  }
}

template <class Body>
struct pass_combine_op {
  const Body* body;
  template <class T>
  __device__ T operator()(const T& a, const T& b) const {
    return body->combine(a, b);
  }
};

template <int k, class Body>
__device__ void accumulate_field(const Body& body, typename Body::value_type& acc, const float* v) {
  constexpr stat_entry e = Body::d.stats[Body::list.s[k]];
  if constexpr (e.field && !Body::template revealed<k>())
    acc.v[e.slot] = combine_values(acc.v[e.slot], body.template contribution_of<k>(v[k]), body.template is_max<k>());
}
template <class Body, int... k>
__device__ void accumulate_fields(const Body& body, typename Body::value_type& acc, const float* v,
                                  std::integer_sequence<int, k...>) {
  (accumulate_field<k>(body, acc, v), ...);
}
template <class Body, int... k>
__device__ void stage(const Body&, float* staged, std::uint32_t e, const float* v, std::integer_sequence<int, k...>) {
  int j = 0;
  ((Body::d.stats[Body::list.s[k]].field ? void() : void(staged[(j++) * tile_size + e] = v[k])), ...);
}
template <int k, class Body>
__device__ void reduce_staged_one(const Body& body, const float* staged, const step_tile& tile, int& j) {
  constexpr stat_entry e = Body::d.stats[Body::list.s[k]];
  if constexpr (!e.field) {
    const float* vals = staged + (j++) * tile_size;
    const param_geometry& g = body.env.geometry[tile.param];
    const bool is_max = body.template is_max<k>();
    if constexpr (gather_of_v<e.decl.where> == scope_gather::blocks) {
      constexpr std::uint32_t N = Body::d.block;
      for (std::uint32_t blk = threadIdx.x; blk * N < tile.width; blk += block_threads)
        reduce_block<k>(
            body, tile, [vals](std::uint32_t c) { return vals[c]; }, blk, is_max);
    } else if constexpr (gather_of_v<e.decl.where> == scope_gather::columns) {
      for (std::uint32_t c = threadIdx.x; c < tile.width; c += block_threads) {
        double a = 0.0;
        for (std::uint32_t r = 0; r < tile.height; ++r)
          a = combine_values(a, body.template contribution_of<k>(vals[r * tile.width + c]), is_max);
        body.column_partials[e.slot][column_partial_at<Body>(g, tile, c)] = a;
      }
    } else {
      for (std::uint32_t r = threadIdx.x; r < tile.height; r += block_threads) {
        double a = 0.0;
        for (std::uint32_t c = 0; c < tile.width; ++c)
          a = combine_values(a, body.template contribution_of<k>(vals[r * tile.width + c]), is_max);
        body.row_partials[e.slot][row_partial_at<Body>(g, tile, r)] = a;
      }
    }
  }
}

template <class Body, int... k>
__device__ void reduce_staged(const Body& body, const float* staged, const step_tile& tile,
                              std::integer_sequence<int, k...>) {
  int j = 0;
  (reduce_staged_one<k>(body, staged, tile, j), ...);
}
template <class Body>
__global__ void __launch_bounds__(block_threads)
    measure_kernel(Body body, std::size_t ntiles, typename Body::value_type* partials) {
  using T = typename Body::value_type;
  using block_reduce = cub::BlockReduce<T, block_threads>;
  __shared__ typename block_reduce::TempStorage storage;
  extern __shared__ float staged[];  // [row and column statistics][tile elements]
  constexpr int N = Body::nstats > 0 ? Body::nstats : 1;
  constexpr bool positions = Body::d.positions;
  for (std::size_t t = blockIdx.x; t < ntiles; t += gridDim.x) {
    const step_tile tile = body.env.tiles[t];
    const auto ctx = body.enter(t);
    T acc = body.identity();
    const bool active = body.active(ctx);
    const std::uint32_t n = tile.height * tile.width;
    if (active) {
      const auto sc = load_scalars(body.env);
      std::uint32_t first = 0;
      if constexpr (!positions && Body::NS == 0) {
        // Groups of 8 elements per thread, their gradients and weights
        // loaded 16 bytes at a time.
        const measure_groups<Body> grouped{body};
        if (grouped.fits(tile.begin)) {
          constexpr std::uint32_t G = measure_groups<Body>::group;
          const std::uint32_t groups = n / G;
          for (std::uint32_t k = threadIdx.x; k < groups; k += block_threads) {
            float v[G][N];
            grouped.values(tile.begin + k * G, k * G, ctx, sc, v);
#pragma unroll
            for (std::uint32_t j = 0; j < G; ++j)
              accumulate_fields(body, acc, v[j], std::make_integer_sequence<int, Body::nstats>{});
          }
          first = groups * G;
        }
      }
      for (std::uint32_t e = first + threadIdx.x; e < n; e += block_threads) {
        const std::uint32_t r = positions ? e / tile.width : 0;
        const std::uint32_t c = positions ? e - r * tile.width : e;
        float v[N];
        body.values(tile.begin + static_cast<std::uint64_t>(r) * tile.stride + c, r, c, ctx, sc, v);
        accumulate_fields(body, acc, v, std::make_integer_sequence<int, Body::nstats>{});
        if constexpr (Body::NS > 0) stage(body, staged, e, v, std::make_integer_sequence<int, Body::nstats>{});
      }
    }
    T total = block_reduce(storage).Reduce(acc, pass_combine_op<Body>{&body});
    if (threadIdx.x == 0) {
      if (active) body.finish(total);
      partials[t] = total;
    }
    if constexpr (Body::NS > 0) {
      __syncthreads();
      if (active) reduce_staged(body, staged, tile, std::make_integer_sequence<int, Body::nstats>{});
    }
    __syncthreads();
  }
}

#else  // host backends

template <class Body, class Strategy>
struct host_update_runner {
  Body body;
  void operator()(std::size_t t) const {
    const Body local = body;  // loop-invariant fields (see detail/tiles.hpp)
    const step_tile tile = local.env.tiles[t];
    const auto ctx = local.enter(t);
    if (!local.active(ctx)) return;
    const auto sc = load_scalars(local.env);
    if constexpr (std::is_same_v<Strategy, host_gpu_order>) {
      host_gpu_order::updated += update_tile(local, tile, ctx, sc, 0, 1);
    } else if constexpr (Body::d.coded) {
      // 8-bit coded state: a block at a time, each as one vectorised lane.
      const coded_blocks<Body> blocks{local};
      for (std::uint32_t b = 0; b * Body::d.block < tile.width; ++b) blocks.run(tile, b, ctx, sc);
    } else {
      sweep(local, tile, ctx, sc);
    }
  }
  template <class Context, class Scalars>
  static void sweep(const Body& local, const step_tile& tile, const Context& ctx, const Scalars& sc) {
    const host_row_draws<Body> rows{local};
    for (std::uint32_t r = 0; r < tile.height; ++r) {
      const std::uint64_t row = tile.begin + static_cast<std::uint64_t>(r) * tile.stride;
      const std::uint32_t w = tile.width;
      if constexpr (Body::writer_draws || Body::drawn_fields > 0) {
        // Stochastic-rounding bits of the writer and of the drawn state
        // fields: a generator call per 2 * words (or words) elements, not
        // one each (cast/generator.hpp, fill_draws). In
        // chunks, so that the hardware prefetcher streams the next
        // elements while the core computes the next chunk's draws.
        constexpr std::uint32_t chunk = draw_chunk;
        constexpr std::size_t nf = Body::drawn_fields > 0 ? Body::drawn_fields : 1;
        alignas(64) typename Body::draw_type buffer[chunk + draw_slack];
        alignas(64) std::uint16_t field_buffers[nf][chunk + draw_slack];
        const std::uint16_t* field_draws[Body::nfields > 0 ? Body::nfields : 1];
        // The element loop reads copies whose address never reaches a call
        // that is not inlined (unlike `local`, `ctx` and `sc`, which the
        // draws' calls see): otherwise GCC must assume the loop's float
        // stores may change them and reloads the step's decisions for every
        // vector (measured with bf16 moments: 190 instructions per 32
        // elements against 172, the step 1.46x the fp32-moment one against
        // 1.28x).
        const Body inner = local;
        const Context ictx = ctx;
        const Scalars isc = sc;
        for (std::uint32_t c0 = 0; c0 < w; c0 += chunk) {
          const std::uint32_t n = w - c0 < chunk ? w - c0 : chunk;
          const auto* draws = rows.fill_draws(ctx, row + c0, n, buffer) - c0;  // indexed by the row's column
          if constexpr (Body::drawn_fields > 0) rows.fill_field_draws(ctx, row + c0, c0, n, field_buffers, field_draws);
          const std::uint16_t* const* fd = Body::drawn_fields > 0 ? field_draws : nullptr;
          MIXPREC_PRAGMA_SIMD
          for (std::size_t c = c0; c < c0 + n; ++c)
            inner.template element<(Body::drawn_fields > 0), Body::writer_draws>(
                row + c, r, static_cast<std::uint32_t>(c), ictx, isc, Body::writer_draws ? draws : nullptr, fd);
        }
      } else {
        MIXPREC_PRAGMA_SIMD
        for (std::size_t c = 0; c < w; ++c) local.element(row + c, r, static_cast<std::uint32_t>(c), ctx, sc);
      }
    }
  }
};

// Adds row r of statistic k into sixteen interleaved accumulators (the
// lane loop vectorises); the row's leftover elements go to the next lanes.
template <int k, bool Max, class Body, class Value>
void sweep_row(const Body& b, const Value& value, std::size_t r, std::size_t w, double (&lanes)[interleaved_lanes],
               int& next) {
  double lane[interleaved_lanes];
  for (int l = 0; l < interleaved_lanes; ++l) lane[l] = lanes[l];
  std::size_t c = 0;  // 64-bit indices: c + l cannot wrap, so the accesses are affine
  for (; c + interleaved_lanes <= w; c += interleaved_lanes) {
    if constexpr (Max) {
      for (int l = 0; l < interleaved_lanes; ++l)
        lane[l] = combine_values(lane[l], b.template contribution_of<k>(value(r, c + l)), true);
    } else {
      MIXPREC_PRAGMA_SIMD
      for (int l = 0; l < interleaved_lanes; ++l) lane[l] = b.template add_contribution<k>(lane[l], value(r, c + l));
    }
  }
  for (; c < w; ++c, next = (next + 1) % interleaved_lanes)
    lane[next] = combine_values(lane[next], b.template contribution_of<k>(value(r, c)), Max);
  for (int l = 0; l < interleaved_lanes; ++l) lanes[l] = lane[l];
}

// Reduces statistic k of a tile from value(r, c) (its source value at row
// r, column c of the tile) into the field partial or the row and column
// partials, in a fixed order: sixteen interleaved accumulators over the
// tile in row-major order (a fixed tree combines them), each row from left
// to right, each column from top to bottom.
template <int k, class Body, class Value>
void reduce_statistic(const Body& b, const step_tile& tile, const Value& value, typename Body::value_type& out) {
  constexpr stat_entry e = Body::d.stats[Body::list.s[k]];
  const bool is_max = b.template is_max<k>();
  const std::uint32_t w = tile.width;
  if constexpr (Body::template revealed<k>()) {
    return;  // set by finish() from the sum that reveals it
  } else if constexpr (e.field) {
    double lanes[interleaved_lanes];
    for (int l = 0; l < interleaved_lanes; ++l) lanes[l] = 0.0;
    int next = 0;  // the lane of the next leftover element
    for (std::size_t r = 0; r < tile.height; ++r) {
      if (is_max) sweep_row<k, true>(b, value, r, w, lanes, next);
      else sweep_row<k, false>(b, value, r, w, lanes, next);
    }
    out.v[e.slot] = fold_lanes(lanes, [is_max](double a, double c) { return combine_values(a, c, is_max); });
  } else if constexpr (gather_of_v<e.decl.where> == scope_gather::blocks) {
    constexpr std::uint32_t N = Body::d.block;
    for (std::uint32_t blk = 0; blk * N < w; ++blk)
      reduce_block<k>(
          b, tile, [&](std::uint32_t c) { return value(0, c); }, blk, is_max);
  } else {
    const param_geometry& g = b.env.geometry[tile.param];
    if constexpr (gather_of_v<e.decl.where> == scope_gather::columns) {
      double acc[tile_size];
      for (std::size_t c = 0; c < w; ++c) acc[c] = 0.0;
      for (std::size_t r = 0; r < tile.height; ++r) {
        if (is_max) {
          for (std::size_t c = 0; c < w; ++c)
            acc[c] = combine_values(acc[c], b.template contribution_of<k>(value(r, c)), true);
        } else {
          MIXPREC_PRAGMA_SIMD
          for (std::size_t c = 0; c < w; ++c) acc[c] += b.template contribution_of<k>(value(r, c));
        }
      }
      for (std::size_t c = 0; c < w; ++c) b.column_partials[e.slot][column_partial_at<Body>(g, tile, c)] = acc[c];
    } else {
      for (std::size_t r = 0; r < tile.height; ++r) {
        double a = 0.0;
        for (std::size_t c = 0; c < w; ++c) a = combine_values(a, b.template contribution_of<k>(value(r, c)), is_max);
        b.row_partials[e.slot][row_partial_at<Body>(g, tile, r)] = a;
      }
    }
  }
}

template <class Body, class Strategy>
struct host_measure_runner {
  Body body;
  typename Body::value_type* partials;

  void operator()(std::size_t t) const {
    using T = typename Body::value_type;
    const Body local = body;  // loop-invariant fields (see detail/tiles.hpp)
    const step_tile tile = local.env.tiles[t];
    const auto ctx = local.enter(t);
    T out = local.identity();
    if (local.active(ctx)) {
      const auto sc = load_scalars(local.env);
      constexpr bool gpu_order = std::is_same_v<Strategy, host_gpu_order>;
      constexpr bool sweeps = Body::pure && !gpu_order;  // the GPU's order: measure_groups into the buffer below
      if constexpr (sweeps) {
        // No stage runs (the statistics pass): each statistic sweeps the
        // tile itself, recomputing the few rules before it; the values of
        // the other statistics are dead code there, and each sweep is one
        // vectorised loop.
        reduce_each(
            local, tile, out,
            [&](auto k, std::size_t r, std::size_t c) {
              return local.template value<decltype(k)::value>(tile.begin + r * tile.stride + c,
                                                              static_cast<std::uint32_t>(r),
                                                              static_cast<std::uint32_t>(c), ctx, sc);
            },
            std::make_integer_sequence<int, Body::nstats>{});
      } else {
        // Stages write their state: one sweep runs the components into a
        // buffer per statistic, then each statistic is reduced from it.
        constexpr int N = Body::nstats > 0 ? Body::nstats : 1;
        float values[N][tile_size];
        const std::uint32_t w = tile.width;
        std::uint32_t first = 0;  // elements of row 0 done in groups
        if constexpr (gpu_order && !Body::d.positions && Body::NS == 0) {
          const measure_groups<Body> grouped{local};
          if (grouped.fits(tile.begin)) {
            constexpr std::uint32_t G = measure_groups<Body>::group;
            for (std::uint32_t c0 = 0; c0 + G <= w; c0 += G) {
              float v[G][N];
              grouped.values(tile.begin + c0, c0, ctx, sc, v);
              for (std::uint32_t j = 0; j < G; ++j)
                for (int k = 0; k < N; ++k) values[k][c0 + j] = v[j][k];
            }
            first = w / G * G;
            host_gpu_order::measured += first;
          }
        }
        for (std::size_t r = 0; r < tile.height; ++r) {
          const std::uint64_t row = tile.begin + static_cast<std::uint64_t>(r) * tile.stride;
          MIXPREC_PRAGMA_SIMD
          for (std::size_t c = r == 0 ? first : 0; c < w; ++c) {
            float v[N];
            local.values(row + c, r, c, ctx, sc, v);
            for (int k = 0; k < N; ++k) values[k][r * w + c] = v[k];
          }
        }
        reduce_each(
            local, tile, out,
            [&](auto k, std::size_t r, std::size_t c) { return values[decltype(k)::value][r * w + c]; },
            std::make_integer_sequence<int, Body::nstats>{});
      }
      local.finish(out);
    }
    partials[t] = out;
  }

  template <class Source, int... k>
  static void reduce_each(const Body& b, const step_tile& tile, typename Body::value_type& out, const Source& source,
                          std::integer_sequence<int, k...>) {
    (reduce_statistic<k>(
         b, tile, [&](std::size_t r, std::size_t c) { return source(std::integral_constant<int, k>{}, r, c); }, out),
     ...);
  }
};

#endif

// The update pass over every tile.
template <class Body>
void run_update(stream s, std::size_t ntiles, const Body& body) {
  if (ntiles == 0) return;
#if defined(MIXPREC_BACKEND_CUDA)
  update_kernel<<<grid_for(ntiles), block_threads, 0, s.handle>>>(body, ntiles);
  MIXPREC_CHECK_LAUNCH("update pass");
#else
  translate_errors("update pass", [&] {
    using runner = host_update_runner<Body, typename host_strategy<Body>::type>;
    thrust::for_each_n(policy(s), thrust::counting_iterator<std::size_t>(0), ntiles, runner{body});
  });
#endif
}

// A measuring pass: one partial per tile into partials[0, ntiles).
template <class Body>
void run_measure(stream s, std::size_t ntiles, const Body& body, typename Body::value_type* partials) {
  if (ntiles == 0) return;
#if defined(MIXPREC_BACKEND_CUDA)
  constexpr std::size_t staged = static_cast<std::size_t>(Body::NS) * tile_size * sizeof(float);
  if constexpr (staged > 48 * 1024) {
    MIXPREC_CUDA_CHECK(cudaFuncSetAttribute(measure_kernel<Body>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                            static_cast<int>(staged)));
  }
  measure_kernel<<<grid_for(ntiles), block_threads, staged, s.handle>>>(body, ntiles, partials);
  MIXPREC_CHECK_LAUNCH("measuring pass");
#else
  translate_errors("measuring pass", [&] {
    thrust::for_each_n(policy(s), thrust::counting_iterator<std::size_t>(0), ntiles,
                       host_measure_runner<Body, typename host_strategy<Body>::type>{body, partials});
  });
#endif
}

struct zero_entries {
  double* out;
  MIXPREC_HOST_DEVICE void operator()(std::size_t e) const { out[e] = 0.0; }
};

// out[e] = combination (in order) of parts[r.start + k * r.stride], k < r.count.
struct strided_combine {
  const double* parts;
  const strided_range* ranges;
  double* out;
  bool is_max;
  MIXPREC_HOST_DEVICE void operator()(std::size_t e) const {
    const strided_range r = ranges[e];
    double a = 0.0;
    for (std::uint64_t k = 0; k < r.count; ++k) a = combine_values(a, parts[r.start + k * r.stride], is_max);
    out[e] = a;
  }
};

}  // namespace mixprec::detail

MIXPREC_PINNED_END
