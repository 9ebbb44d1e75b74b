// The update pass of a chain with block-scaled 8-bit state
// (format/block_codes.hpp), one block at a time: a block's codes can only
// be written once its new scale, the largest magnitude of its new values,
// is known. So the block's coded fields are decoded into fp32 copies, its
// elements run update_body::run_element on those copies (the weights use
// the new values unrounded, as bitsandbytes' and torchao's 8-bit
// optimizers do), then each coded field's new scale is taken and its codes
// written. One pass over the data, as for any other chain. Tiles hold
// whole blocks (train/layout.hpp), so a block is never split between
// thread blocks or host workers.
//
// A block is cut into lanes of consecutive elements. On the GPU a warp
// takes a block, each of its 32 threads a lane of N / 32 elements with its
// copies in registers (its gradients, weights and codes moved in pieces of
// up to 16 bytes), and the scale is a warp shuffle (run_in_warp); the
// host runs those lanes one after the other and folds their maxima
// (run_as_warp: the GPU's order, under host_gpu_order, so that the tests
// run that code), or the whole block as one lane whose loops vectorise
// (run: the host's sweep). The same bits every way.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <utility>

#include <mixprec/core/config.hpp>
#include <mixprec/core/pinned_arithmetic.hpp>
#include <mixprec/detail/vector_access.hpp>
#include <mixprec/format/block_codes.hpp>
#include <mixprec/train/context.hpp>
#include <mixprec/train/passes.hpp>
#include <mixprec/train/update_groups.hpp>

MIXPREC_PINNED_BEGIN

namespace mixprec::detail {

// The larger magnitude, NaN when either is NaN.
MIXPREC_HOST_DEVICE float max_magnitude(float m, float v) {
  const float a = v < 0.0f ? -v : v;
  return a > m || a != a ? a : m;
}

template <class Body>
struct coded_blocks {
  using Env = typename Body::env_type;
  using context = typename Body::context;
  static constexpr plan_data d = Body::d;
  static constexpr std::uint32_t N = d.block;
  static constexpr std::size_t nfields = Body::nfields;
  static constexpr std::size_t ncoded = coded_slot<Env>(nfields);
  static_assert(ncoded > 0 && N > 0, "coded_blocks: a chain with 8-bit coded state");
  static constexpr std::uint32_t lanes = N < 32 ? N : 32;  // of a warp that have elements
  static constexpr std::uint32_t per = N / lanes;          // elements per warp lane

  const Body& body;

  // Block `blk` of the tile (columns [blk * N, min((blk + 1) * N, width))
  // of its only row) as one lane: the host's sweep.
  MIXPREC_HOST_DEVICE void run(const step_tile& tile, std::uint32_t blk, const context& ctx,
                               const tile_scalars<Env>& sc) const {
    float values[ncoded * N];
    float peak[ncoded];
    run_lane<N>(tile, blk, 0, ctx, sc, values);
    for (std::size_t f = 0; f < ncoded; ++f) peak[f] = lane_peak<N>(tile, blk, 0, values, f);
    store_scales(tile, blk, ctx, peak);
    encode_lane<N>(tile, blk, 0, ctx, values, peak);
  }
  // The same block in the GPU's lanes, one after the other.
  MIXPREC_HOST_DEVICE void run_as_warp(const step_tile& tile, std::uint32_t blk, const context& ctx,
                                       const tile_scalars<Env>& sc) const {
    float values[lanes][ncoded * per];
    float peak[ncoded];
    for (std::size_t f = 0; f < ncoded; ++f) peak[f] = 0.0f;
    for (std::uint32_t l = 0; l < lanes; ++l) {
      run_lane<per>(tile, blk, l, ctx, sc, values[l]);
      for (std::size_t f = 0; f < ncoded; ++f)
        peak[f] = max_magnitude(peak[f], lane_peak<per>(tile, blk, l, values[l], f));
    }
    store_scales(tile, blk, ctx, peak);
    for (std::uint32_t l = 0; l < lanes; ++l) encode_lane<per>(tile, blk, l, ctx, values[l], peak);
  }

#if defined(__CUDA_ARCH__)
  // Block `blk` by the 32 threads of a warp; `l` is this thread's lane
  // (lanes past `lanes`, when N < 32, have no elements).
  __device__ void run_in_warp(const step_tile& tile, std::uint32_t blk, std::uint32_t l, const context& ctx,
                              const tile_scalars<Env>& sc) const {
    float values[ncoded * per];
    float peak[ncoded];
    if (l < lanes) run_lane<per>(tile, blk, l, ctx, sc, values);
#pragma unroll
    for (std::size_t f = 0; f < ncoded; ++f) {
      float m = l < lanes ? lane_peak<per>(tile, blk, l, values, f) : 0.0f;
#pragma unroll
      for (int offset = 16; offset > 0; offset /= 2) m = max_magnitude(m, __shfl_xor_sync(0xffffffffu, m, offset));
      peak[f] = m;
    }
    if (l == 0) store_scales(tile, blk, ctx, peak);
    if (l < lanes) encode_lane<per>(tile, blk, l, ctx, values, peak);  // the butterfly left every lane the maxima
  }
#endif

 private:
  // Elements of lane l (of Per elements) in block blk: [first, first + count) of the tile's row.
  template <std::uint32_t Per>
  MIXPREC_HOST_DEVICE static std::uint32_t lane_first(std::uint32_t blk, std::uint32_t l) {
    return blk * N + l * Per;
  }
  template <std::uint32_t Per>
  MIXPREC_HOST_DEVICE static std::uint32_t lane_count(const step_tile& tile, std::uint32_t blk, std::uint32_t l) {
    const std::uint32_t c = lane_first<Per>(blk, l);
    return c >= tile.width ? 0 : (tile.width - c < Per ? tile.width - c : Per);
  }
  MIXPREC_HOST_DEVICE std::uint64_t block_index(const step_tile& tile, std::uint32_t blk, const context& ctx) const {
    return scope_base<scope::block>(*ctx.geometry) + (tile.begin + blk * N - ctx.geometry->offset) / N;
  }

  using Arena = typename Body::arena_type;
  using grad_type = typename Body::grad_type;
  using model_type = typename Body::model_type;
  using grouped = update_groups<Body>;  // its register copies' writer and which roles it moves
  // A warp lane's elements (at most 32) move between memory and registers
  // in pieces of up to 16 bytes (detail/vector_access.hpp), as the grouped
  // update pass moves its groups of 8 (train/update_groups.hpp); the host's
  // sweep, a whole block as one lane, reads memory element by element.
  template <std::uint32_t Per>
  static constexpr bool staged = Per <= 32;
  // Whether the lane's roles from element i0 sit at their pieces'
  // boundaries (a full lane of a block-aligned tile does).
  template <std::uint32_t Per>
  MIXPREC_HOST_DEVICE bool lane_fits(std::uint64_t i0) const {
    const auto& a = body.env.arena;
    bool ok = piece_aligned<sizeof(grad_type) * Per>(a.grad + i0);
    if constexpr (Arena::has_master) ok = ok && piece_aligned<sizeof(float) * Per>(a.master + (i0 - a.master_begin));
    if constexpr (grouped::reads_model || grouped::writes_model)
      ok = ok && piece_aligned<sizeof(model_type) * Per>(a.model + i0);
    return ok;
  }

  // Decodes the lane's coded entries into `values`, then runs its elements.
  template <std::uint32_t Per>
  MIXPREC_HOST_DEVICE void run_lane(const step_tile& tile, std::uint32_t blk, std::uint32_t l, const context& ctx,
                                    const tile_scalars<Env>& sc, float* values) const {
    const std::uint32_t c0 = lane_first<Per>(blk, l), n = lane_count<Per>(tile, blk, l);
    const std::uint64_t i0 = tile.begin + c0;
    using lane_type = coded_lane<Per>;
    if constexpr (staged<Per>) {
      if (n == Per && lane_fits<Per>(i0)) {
        decode_fields<Per>(i0, Per, block_index(tile, blk, ctx), values, std::make_index_sequence<nfields>{});
        run_staged<Per>(i0, c0, ctx, sc, values);
        return;
      }
    }
    decode_fields<Per>(i0, n, block_index(tile, blk, ctx), values, std::make_index_sequence<nfields>{});
    for (std::uint32_t j = 0; j < n; ++j) {
      const lane_type lane{values, j};
      const std::uint64_t i = i0 + j;
      body.template run_element<element_access<false, false, lane_type>>(
          i, 0, c0 + j, ctx, sc, to_float(body.env.arena.grad[i]), body.env.arena.weight(i), nullptr, nullptr, &lane,
          typename Body::to_memory{body.env.arena, i});
    }
  }
  // A full lane's elements on register copies of its roles: loads first,
  // the elements, then the stores.
  template <std::uint32_t Per>
  MIXPREC_HOST_DEVICE void run_staged(std::uint64_t i0, std::uint32_t c0, const context& ctx,
                                      const tile_scalars<Env>& sc, float* values) const {
    alignas(16) grad_type grads[Per];
    alignas(16) float masters[Per];
    alignas(16) model_type models[Per];
    grouped::template load_roles<Per>(body.env.arena, i0, grads, masters, models);
    using lane_type = coded_lane<Per>;
#if defined(__CUDA_ARCH__)
#pragma unroll
#endif
    for (std::uint32_t j = 0; j < Per; ++j) {
      const lane_type lane{values, j};
      const float w = Arena::has_master ? masters[j] : to_float(models[j]);
      body.template run_element<element_access<false, false, lane_type>>(
          i0 + j, 0, c0 + j, ctx, sc, to_float(grads[j]), w, nullptr, nullptr, &lane,
          typename grouped::to_lane{grads, masters, models, j});
    }
    if (d.holder >= 0 && ctx.hold) return;  // accumulated only: nothing to write
    grouped::template store_roles<Per>(body.env.arena, i0, grads, masters, models);
  }

  // The largest magnitude of coded field slot f's new values in the lane
  // (NaN if any is).
  template <std::uint32_t Per>
  MIXPREC_HOST_DEVICE float lane_peak(const step_tile& tile, std::uint32_t blk, std::uint32_t l, const float* values,
                                      std::size_t f) const {
    const std::uint32_t n = lane_count<Per>(tile, blk, l);
    const float* v = values + f * Per;
    // The largest magnitude's bits: magnitudes order as their bits do, and
    // a NaN's bits are above every other's.
    std::uint32_t m = 0;
    for (std::uint32_t j = 0; j < n; ++j) {
      const std::uint32_t a = bit_cast<std::uint32_t>(v[j]) & 0x7fffffffu;
      m = a > m ? a : m;
    }
    return m > 0x7f800000u ? NAN : bit_cast<float>(m);
  }
  MIXPREC_HOST_DEVICE void store_scales(const step_tile& tile, std::uint32_t blk, const context& ctx,
                                        const float* peak) const {
    scale_fields(block_index(tile, blk, ctx), ctx, peak, std::make_index_sequence<nfields>{});
  }
  template <std::uint32_t Per>
  MIXPREC_HOST_DEVICE void encode_lane(const step_tile& tile, std::uint32_t blk, std::uint32_t l, const context& ctx,
                                       const float* values, const float* peak) const {
    encode_fields<Per>(tile.begin + lane_first<Per>(blk, l), lane_count<Per>(tile, blk, l), ctx, values, peak,
                       std::make_index_sequence<nfields>{});
  }

  // Coded field G's storage when it is used and this pass changes it (a
  // held step stops after the holder: later components keep their state).
  template <std::size_t G>
  MIXPREC_HOST_DEVICE const field_storage* written(const context& ctx) const {
    constexpr int K = static_cast<int>(field_component_v<Env, G>);
    const field_storage& fs = body.env.fields[G];
    if (fs.data == nullptr) return nullptr;  // not used under these options
    if (d.holder >= 0 && K > d.holder && ctx.hold) return nullptr;
    return &fs;
  }
  MIXPREC_HOST_DEVICE std::uint8_t* codes_at(const field_storage& fs, std::uint64_t i) const {
    return static_cast<std::uint8_t*>(fs.data) + (i - body.env.shard_begin);
  }

  template <std::uint32_t Per, std::size_t... G>
  MIXPREC_HOST_DEVICE void decode_fields(std::uint64_t i0, std::uint32_t n, std::uint64_t b, float* values,
                                         std::index_sequence<G...>) const {
    (decode_field<Per, G>(i0, n, b, values), ...);
  }
  template <std::uint32_t Per, std::size_t G>
  MIXPREC_HOST_DEVICE void decode_field(std::uint64_t i0, std::uint32_t n, std::uint64_t b, float* values) const {
    constexpr state_field f = field_info_v<Env, G>;
    if constexpr (is_coded(f.format)) {
      const field_storage& fs = body.env.fields[G];
      if (fs.data == nullptr) return;
      const std::uint8_t* codes = codes_at(fs, i0);
      const float scale = fs.scale[b];
      float* v = values + coded_slot_v<Env, G> * Per;
      if constexpr (staged<Per>) {
        if (n == Per && piece_aligned<Per>(codes)) {
          alignas(16) std::uint8_t c[Per];
          copy_pieces<Per>(codes, c);
          for (std::uint32_t j = 0; j < Per; ++j) v[j] = block_code<f.format>::decode(c[j], scale);
          return;
        }
      }
      block_code<f.format>::decode_n(codes, n, scale, v);
    }
  }
  template <std::size_t... G>
  MIXPREC_HOST_DEVICE void scale_fields(std::uint64_t b, const context& ctx, const float* peak,
                                        std::index_sequence<G...>) const {
    (scale_field<G>(b, ctx, peak), ...);
  }
  template <std::size_t G>
  MIXPREC_HOST_DEVICE void scale_field(std::uint64_t b, const context& ctx, const float* peak) const {
    constexpr state_field f = field_info_v<Env, G>;
    if constexpr (is_coded(f.format)) {
      if (const field_storage* fs = written<G>(ctx))
        fs->scale[b] = block_code<f.format>::scale_of(peak[coded_slot_v<Env, G>]);
    }
  }
  template <std::uint32_t Per, std::size_t... G>
  MIXPREC_HOST_DEVICE void encode_fields(std::uint64_t i0, std::uint32_t n, const context& ctx, const float* values,
                                         const float* peak, std::index_sequence<G...>) const {
    (encode_field<Per, G>(i0, n, ctx, values, peak), ...);
  }
  template <std::uint32_t Per, std::size_t G>
  MIXPREC_HOST_DEVICE void encode_field(std::uint64_t i0, std::uint32_t n, const context& ctx, const float* values,
                                        const float* peak) const {
    constexpr state_field f = field_info_v<Env, G>;
    if constexpr (is_coded(f.format)) {
      if (const field_storage* fs = written<G>(ctx)) {
        std::uint8_t* codes = codes_at(*fs, i0);
        const float* v = values + coded_slot_v<Env, G> * Per;
        const float scale = block_code<f.format>::scale_of(peak[coded_slot_v<Env, G>]);
        if constexpr (staged<Per>) {
          if (n == Per && piece_aligned<Per>(codes)) {
            alignas(16) std::uint8_t c[Per];
            block_code<f.format>::encode_n(v, Per, scale, c);
            copy_pieces<Per>(c, codes);
            return;
          }
        }
        block_code<f.format>::encode_n(v, n, scale, codes);
      }
    }
  }
};

}  // namespace mixprec::detail

MIXPREC_PINNED_END
