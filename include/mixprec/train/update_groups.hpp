// The GPU's way through a tile in the update pass (train/passes.hpp,
// update_body): groups of `group` consecutive elements of an aligned tile.
// Every role and per-element state field of the group is loaded first, 16
// bytes at a time; the elements run update_body::run_element on register
// copies; then what changed is stored 16 bytes at a time. The group's
// stochastic-rounding draws take one generator call per 2 * words (or
// words) of them. The same bits as one element at a time. The host runs it
// under host_gpu_order (train/host_strategy.hpp), so that this code is
// tested without a GPU.
#pragma once

#include <cstddef>
#include <cstdint>
#include <type_traits>
#include <utility>

#include <mixprec/cast/generator.hpp>
#include <mixprec/core/pinned_arithmetic.hpp>
#include <mixprec/detail/vector_access.hpp>
#include <mixprec/train/context.hpp>
#include <mixprec/train/passes.hpp>

MIXPREC_PINNED_BEGIN

namespace mixprec::detail {

template <class Body>
struct update_groups {
  using Env = typename Body::env_type;
  using Arena = typename Body::arena_type;
  using context = typename Body::context;
  using grad_type = typename Body::grad_type;
  using model_type = typename Body::model_type;
  using draw_type = typename Body::draw_type;
  static constexpr plan_data d = Body::d;
  static constexpr int Q = Body::Q;
  static constexpr std::size_t nfields = Body::nfields;
  static constexpr std::size_t drawn_fields = Body::drawn_fields;
  static constexpr bool writer_draws = Body::writer_draws;
  using writer_generator = typename Body::writer_generator;
  template <std::size_t G>
  using field_generator = typename Body::template field_generator<G>;
  template <class D>
  static constexpr int draw_bits = Body::template draw_bits<D>;
  static constexpr std::uint32_t group = 8;
  using lane_type = group_lane<group>;

  const Body& body;

  // A generator call's draws in stochastic_draw's layout: 2 * words slices
  // (low half of each word first) or `words` words.
  template <class D, class Block>
  MIXPREC_HOST_DEVICE static void unpack_call(const Block& blk, D* o) {
    constexpr int words = sizeof(blk.v) / sizeof(blk.v[0]);
    for (int k = 0; k < words; ++k) {
      if constexpr (std::is_same_v<D, std::uint16_t>) {
        o[2 * k] = static_cast<std::uint16_t>(blk.v[k]);
        o[2 * k + 1] = static_cast<std::uint16_t>(blk.v[k] >> 16);
      } else {
        o[k] = blk.v[k];
      }
    }
  }
  // The draws of `group` consecutive keys from key0 (a multiple of the
  // group) under `seed` at step t: group / draws_per_call calls of Gen.
  template <class Gen, class D>
  MIXPREC_HOST_DEVICE static void draw_group(std::uint64_t seed, std::uint64_t t, std::uint64_t key0, D* out) {
    constexpr std::uint64_t per = draws_per_call<Gen, draw_bits<D>>;
    static_assert(group % per == 0, "mixprec: a group holds whole generator calls");
    const typename Gen::key_type key = Gen::key(seed, t);
    for (std::uint32_t b = 0; b < group / per; ++b) unpack_call(Gen::call(key, key0 / per + b), out + b * per);
  }
  struct to_lane {
    grad_type* grads;
    float* masters;
    model_type* models;
    std::uint32_t j;
    MIXPREC_HOST_DEVICE void grad(grad_type v) const { grads[j] = v; }
    MIXPREC_HOST_DEVICE void master(float v) const { masters[j] = v; }
    MIXPREC_HOST_DEVICE void model(model_type v) const { models[j] = v; }
  };

  static constexpr bool writes_model = !Body::to_gradients && (!Arena::has_master || !Arena::model_is_master);
  static constexpr bool reads_model = !Arena::has_master;
  // The roles of elements [i0, i0 + Count) into register copies, and back
  // (what the pass writes: the gradients, or the master weights and model).
  template <std::uint32_t Count, class Roles>
  MIXPREC_HOST_DEVICE static void load_roles(const Roles& a, std::uint64_t i0, grad_type* grads, float* masters,
                                             model_type* models) {
    copy_pieces<sizeof(grad_type) * Count>(a.grad + i0, grads);
    if constexpr (Arena::has_master) copy_pieces<sizeof(float) * Count>(a.master + (i0 - a.master_begin), masters);
    if constexpr (reads_model) copy_pieces<sizeof(model_type) * Count>(a.model + i0, models);
  }
  template <std::uint32_t Count, class Roles>
  MIXPREC_HOST_DEVICE static void store_roles(const Roles& a, std::uint64_t i0, const grad_type* grads,
                                              const float* masters, const model_type* models) {
    if constexpr (Body::to_gradients) {
      copy_pieces<sizeof(grad_type) * Count>(grads, a.grad + i0);
    } else {
      if constexpr (Arena::has_master) copy_pieces<sizeof(float) * Count>(masters, a.master + (i0 - a.master_begin));
      if constexpr (writes_model) copy_pieces<sizeof(model_type) * Count>(models, a.model + i0);
    }
  }
  // Per-element fields the update pass touches (those of components with an
  // element rule, and the writer's), and those it may change (not replayed
  // read-only).
  template <std::size_t G>
  static constexpr bool field_touched() {
    constexpr std::size_t K = Env::field_component(G);
    return Env::field_info(G).where == extent::element && !is_coded(Env::field_info(G).format) &&
           (has_update<component_at<Env, K>>::value || static_cast<int>(K) == d.writer);
  }
  template <std::size_t G>
  static constexpr bool field_changed() {
    constexpr int K = static_cast<int>(Env::field_component(G));
    return field_touched<G>() && (K == d.writer || !replays_in(d, K, Q));
  }
  template <std::size_t G>
  static constexpr std::size_t field_group_bytes() {
    return std::size_t{group} * entry_bytes(Env::field_info(G).format);
  }
  // The above as constants, for the __host__ __device__ bodies below (see
  // group_field_offset_v, train/context.hpp).
  template <std::size_t G>
  struct field_facts {
    static constexpr bool touched = field_touched<G>();
    static constexpr bool changed = field_changed<G>();
    static constexpr std::size_t group_bytes = field_group_bytes<G>();
    static constexpr state_field info = Env::field_info(G);
    static constexpr std::size_t bytes = entry_bytes(info.format);
    static constexpr bool drawn = Env::field_drawn(G);
  };
  // Field G's entry for element i of the tile's parameter, or null where
  // the field has no entries.
  template <std::size_t G>
  MIXPREC_HOST_DEVICE unsigned char* field_place(const context& ctx, std::uint64_t i) const {
    const field_storage& fs = body.env.fields[G];
    if (fs.data == nullptr || ctx.field_base[G] == no_entry) return nullptr;
    constexpr state_field f = field_facts<G>::info;
    const std::uint64_t at =
        f.on == parameter_set::all ? i - body.env.shard_begin : ctx.field_base[G] + (i - ctx.geometry->offset);
    return static_cast<unsigned char*>(fs.data) + at * field_facts<G>::bytes;
  }

  // Whether run() may take the tile's groups from element
  // `begin`: every role and field at a 16-byte boundary (or the group's
  // size when smaller), and the draws' keys at a block boundary.
  MIXPREC_HOST_DEVICE bool fits(const context& ctx, std::uint64_t begin) const {
    bool ok = begin % group == 0 && (begin - body.env.shard_begin) % group == 0;
    ok = ok && piece_aligned<sizeof(grad_type) * group>(body.env.arena.grad + begin);
    if constexpr (Arena::has_master)
      ok = ok && piece_aligned<sizeof(float) * group>(body.env.arena.master + (begin - body.env.arena.master_begin));
    if constexpr (reads_model || writes_model)
      ok = ok && piece_aligned<sizeof(model_type) * group>(body.env.arena.model + begin);
    fields_fit(ctx, begin, ok, std::make_index_sequence<nfields>{});
    return ok;
  }
  template <std::size_t... G>
  MIXPREC_HOST_DEVICE void fields_fit([[maybe_unused]] const context& ctx, [[maybe_unused]] std::uint64_t begin,
                                      [[maybe_unused]] bool& ok, std::index_sequence<G...>) const {
    ((field_facts<G>::touched ? void(ok = ok && piece_aligned<field_facts<G>::group_bytes>(field_place<G>(ctx, begin)))
                              : void()),
     ...);
  }
  template <std::size_t... G>
  MIXPREC_HOST_DEVICE void move_fields([[maybe_unused]] const context& ctx, [[maybe_unused]] std::uint64_t i0,
                                       [[maybe_unused]] unsigned char* cache, [[maybe_unused]] bool store,
                                       std::index_sequence<G...>) const {
    (move_field<G>(ctx, i0, cache, store), ...);
  }
  template <std::size_t G>
  MIXPREC_HOST_DEVICE void move_field(const context& ctx, std::uint64_t i0, unsigned char* cache, bool store) const {
    if constexpr (field_facts<G>::touched) {
      if (store && !field_facts<G>::changed) return;
      unsigned char* place = field_place<G>(ctx, i0);
      if (place == nullptr) return;
      constexpr std::size_t offset = group_field_offset_v<Env, group, G>;
      unsigned char* copy = cache + offset;
      if (store) copy_pieces<field_facts<G>::group_bytes>(copy, place);
      else copy_pieces<field_facts<G>::group_bytes>(place, copy);
    }
  }
  // Each drawn field's draws of the group (keys from key0) into draws[j],
  // the j-th drawn field; at[g] points at field g's (null if not drawn).
  // (Field tables are read at compile time only: device code cannot read
  // the components' constexpr arrays at run time.)
  template <std::size_t... G>
  MIXPREC_HOST_DEVICE void draw_fields([[maybe_unused]] const context& ctx, [[maybe_unused]] std::uint64_t key0,
                                       [[maybe_unused]] std::uint16_t (*draws)[group],
                                       [[maybe_unused]] const std::uint16_t** at, std::index_sequence<G...>) const {
    [[maybe_unused]] std::size_t j = 0;
    (draw_field<G>(ctx, key0, draws, at, j), ...);
  }
  template <std::size_t G>
  MIXPREC_HOST_DEVICE void draw_field(const context& ctx, std::uint64_t key0, std::uint16_t (*draws)[group],
                                      const std::uint16_t** at, std::size_t& j) const {
    at[G] = nullptr;
    if constexpr (field_facts<G>::drawn) {
      draw_group<field_generator<G>>(body.env.fields[G].seed, ctx.t, key0, draws[j]);
      at[G] = draws[j++];
    }
  }

  // Elements [i0, i0 + group) of the tile, columns [c0, c0 + group) of its
  // only row (tiles without positions); fits() holds.
  MIXPREC_HOST_DEVICE void run(std::uint64_t i0, std::uint32_t c0, const context& ctx,
                               const tile_scalars<Env>& sc) const {
    constexpr bool hold_possible = d.holder >= 0;
    // Loads first: the whole group's gradients, weights and fields.
    alignas(16) grad_type grads[group];
    alignas(16) float masters[group];
    alignas(16) model_type models[group];
    alignas(16) unsigned char cache[group_cache_bytes_v<Env, group>];
    load_roles<group>(body.env.arena, i0, grads, masters, models);
    move_fields(ctx, i0, cache, false, std::make_index_sequence<nfields>{});
    // One generator call per 2 * words (or words) draws, keyed as stochastic_draw.
    alignas(16) draw_type draws[group];
    if constexpr (writer_draws)
      draw_group<writer_generator>(get<static_cast<std::size_t>(d.writer)>(body.env.comps).seed, ctx.t, i0, draws);
    constexpr std::size_t nd = drawn_fields > 0 ? drawn_fields : 1;
    std::uint16_t field_draw_values[nd][group];
    const std::uint16_t* field_draws[nfields > 0 ? nfields : 1];
    if constexpr (drawn_fields > 0) {
      draw_fields(ctx, i0 - body.env.shard_begin, field_draw_values, field_draws, std::make_index_sequence<nfields>{});
    }
    // The elements, on the copies.
#if defined(__CUDA_ARCH__)
#pragma unroll
#endif
    for (std::uint32_t j = 0; j < group; ++j) {
      const lane_type lane{cache, j};
      const float w = Arena::has_master ? masters[j] : to_float(models[j]);
      body.template run_element<element_access<(drawn_fields > 0), writer_draws, lane_type>>(
          i0 + j, 0, c0 + j, ctx, sc, to_float(grads[j]), w, writer_draws ? draws : nullptr,
          drawn_fields > 0 ? field_draws : nullptr, &lane, to_lane{grads, masters, models, j});
    }
    // Then the stores.
    move_fields(ctx, i0, cache, true, std::make_index_sequence<nfields>{});
    if (hold_possible && ctx.hold) return;
    store_roles<group>(body.env.arena, i0, grads, masters, models);
  }
};

}  // namespace mixprec::detail

MIXPREC_PINNED_END
