// Allocating a chain state's buffers: each state field (its entries per
// parameter by the field's extent and parameter set, its device buffer,
// its initial values) and the step's statistics and pass buffers. What a
// field needs from its component is gathered in a field_setup by the
// chain, and the statistics are read from the plan's data, so that this
// code is compiled once per translation unit rather than once per
// component or chain (it was the largest function of a chain's setup:
// docs/performance.md).
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include <mixprec/cast/convert.hpp>
#include <mixprec/cast/convert_range.hpp>
#include <mixprec/component/component.hpp>
#include <mixprec/core/error.hpp>
#include <mixprec/core/stream.hpp>
#include <mixprec/detail/memory.hpp>
#include <mixprec/detail/workspace.hpp>
#include <mixprec/format/block_codes.hpp>
#include <mixprec/tensor/arena_layout.hpp>
#include <mixprec/tensor/arena_signature.hpp>
#include <mixprec/tensor/elementwise.hpp>
#include <mixprec/tensor/tensor_view.hpp>
#include <mixprec/train/chain_state.hpp>
#include <mixprec/train/environment.hpp>
#include <mixprec/train/layout.hpp>
#include <mixprec/train/plan.hpp>
#include <mixprec/train/scopes.hpp>

namespace mixprec::detail {

// One field as its component declares and configures it.
struct field_setup {
  state_field field;
  std::size_t index;      // the field's index among its component's fields
  const char* component;  // its name, for messages
  bool used;              // whether the component's options use the field
  float initial;          // the component's initial value of every entry
  // Where the component sets the initial value of each parameter's entries:
  // its initial_state(index, arena, p), called on `object`; else null.
  float (*per_parameter)(const void* object, std::size_t index, const arena_info& arena, std::size_t p);
  const void* object;
};

// field_setup::per_parameter for a component of type C.
template <class C>
float initial_state_of_parameter(const void* object, std::size_t index, const arena_info& arena, std::size_t p) {
  return static_cast<const C*>(object)->initial_state(index, arena, p);
}

// Sizes, allocates and fills buffer `b` for `setup` over the step's layout
// and the state's shard. Returns true when the field starts from the
// weights: the caller, which knows the arena's types, copies them.
MIXPREC_COLD inline bool allocate_field(field_buffer& b, const field_setup& setup, const arena_info& arena,
                                        const step_layout& layout, element_range shard, stream s) {
  const state_field& f = setup.field;
  b.used = setup.used;
  if (!b.used) return false;
  const auto& geo = layout.geometry;
  b.base_h.assign(geo.size(), no_entry);
  std::uint64_t next = 0;
  for (std::size_t p = 0; p < geo.size(); ++p) {
    require(f.on != parameter_set::every_matrix || geo[p].rank >= 2, setup.component, ": state field \"", f.name,
            "\" has an entry per ", f.where == extent::column ? "column" : "row",
            " of every parameter's last two dimensions, but parameter \"", arena.names[p], "\" has rank ", geo[p].rank);
    if (!field_covers(f.on, geo[p].rank)) continue;
    switch (f.where) {
      case extent::element:
        break;  // below
      case extent::row:
        b.base_h[p] = next;
        next += geo[p].rows;
        break;
      case extent::column:
        b.base_h[p] = next;
        next += geo[p].batches * geo[p].cols;
        break;
      case extent::parameter:
        b.base_h[p] = next;
        next += 1;
        break;
      case extent::scalar:
        b.base_h[p] = 0;
        next = 1;
        break;
    }
  }
  if (f.where == extent::element) {
    // Entry of element i: base + (i - offset), within the state's shard.
    const auto segments = element_segments(segment_geometry_of(geo), f.on, shard.begin, shard.end);
    for (std::size_t p = 0; p < geo.size(); ++p)
      if (f.on == parameter_set::all) b.base_h[p] = geo[p].offset - shard.begin;
    for (const element_segment& g : segments)
      for (std::size_t p = 0; p < geo.size(); ++p)
        if (f.on != parameter_set::all && g.first >= geo[p].offset && g.first < geo[p].offset + geo[p].size)
          b.base_h[p] = g.index - (g.first - geo[p].offset);
    next = entries_of(segments);
  }
  b.entries = next;
  const std::size_t width = entry_bytes(f.format);
  if (is_coded(f.format)) {
    // One byte per element, then (16-byte aligned) a float scale per
    // block of every parameter (train/layout.hpp's block numbering).
    require(setup.initial == 0.0f, setup.component, ": state field \"", f.name,
            "\" is kept in 8-bit codes, which start from 0");
    b.scale_offset = (next + 15) / 16 * 16;
    b.scales = scope_entries(scope::block, layout);
    b.bytes = allocate<std::uint8_t>(b.scale_offset + b.scales * sizeof(float), "optimizer state");
    b.base = allocate<std::uint64_t>(b.base_h.size(), "a state table");
    write_to_device(b.base_h.data(), raw(b.base), b.base_h.size(), s);
    if (f.format == format_id::dynamic8s) {  // the signed map's code of 0 (the scales start at 0)
      const std::vector<std::uint8_t> zero(next, block_code<format_id::dynamic8s>::encode(0.0f, 0.0f));
      write_to_device(zero.data(), raw(b.bytes), next, s);
    }
    return false;
  }
  b.bytes = allocate<std::uint8_t>(next * width, "optimizer state");
  b.base = allocate<std::uint64_t>(b.base_h.size(), "a state table");
  write_to_device(b.base_h.data(), raw(b.base), b.base_h.size(), s);
  if (f.from_weights) {
    require(f.where == extent::element && f.on == parameter_set::all && f.format == format_id::f32, setup.component,
            ": state field \"", f.name,
            "\" starts from the weights, so it must be a "
            "float field of every element");
    return true;
  }
  const float v = setup.initial;  // the buffer starts at zero
  if (setup.per_parameter != nullptr &&
      (f.where == extent::parameter || f.where == extent::row || f.where == extent::column)) {
    // Each parameter's entries from the component (its name, shape, group).
    std::vector<float> values(next, v);
    for (std::size_t p = 0; p < geo.size(); ++p) {
      if (b.base_h[p] == no_entry) continue;
      const std::uint64_t count = f.where == extent::parameter ? 1
                                  : f.where == extent::row     ? geo[p].rows
                                                               : geo[p].batches * geo[p].cols;
      std::fill_n(values.begin() + static_cast<std::ptrdiff_t>(b.base_h[p]), count,
                  setup.per_parameter(setup.object, setup.index, arena, p));
    }
    if (f.format == format_id::f32) {
      write_to_device(values.data(), reinterpret_cast<float*>(raw(b.bytes)), next, s);
    } else {
      std::vector<bfloat16> narrow(next);
      for (std::size_t e = 0; e < next; ++e) narrow[e] = convert<bfloat16>(values[e], round_nearest_even{});
      write_to_device(narrow.data(), reinterpret_cast<bfloat16*>(raw(b.bytes)), next, s);
    }
    return false;
  }
  if (v != 0.0f && f.format == format_id::bf16)
    fill(tensor_view<bfloat16>(reinterpret_cast<bfloat16*>(raw(b.bytes)), next), v, round_nearest_even{}, s);
  else if (v != 0.0f)
    fill(tensor_view<float>(reinterpret_cast<float*>(raw(b.bytes)), next), v, round_nearest_even{}, s);
  return false;
}

// Before a step: the arena is finalized and is the one the state was made
// for (`state` is the signature init() saw).
MIXPREC_COLD inline void require_state_arena(bool finalized, const arena_signature& params,
                                             const arena_signature& state) {
  require(finalized, "chain::apply: finalize() the parameters first");
  if (params.hash != state.hash)
    throw error(concat("chain::apply: the state was made by init() for another parameter arena: ",
                       state.difference(params), " (the state's arena first, this one second)"));
}

// A field that starts from the weights: the state's shard of them, as float.
template <class Arena>
MIXPREC_COLD void copy_weights(field_buffer& b, const Arena& params, element_range shard, stream s) {
  if constexpr (Arena::has_master)
    copy_device(params.master_data() + (shard.begin - params.master_begin()), reinterpret_cast<float*>(raw(b.bytes)),
                b.entries, s);
  else
    convert_n<float>(params.model_data() + shard.begin, b.entries, reinterpret_cast<float*>(raw(b.bytes)),
                     round_nearest_even{}, s);
}

// What the passes read of each field: its entries, table of bases, rounding
// key and 8-bit scales (null where the options do not use it).
MIXPREC_COLD inline void field_storages(std::vector<field_buffer>& fields, field_storage* out) {
  for (std::size_t f = 0; f < fields.size(); ++f) {
    field_buffer& b = fields[f];
    out[f] = {b.used ? static_cast<void*>(raw(b.bytes)) : nullptr, b.used ? raw(b.base) : nullptr, field_seed(f),
              b.used && b.scales > 0 ? reinterpret_cast<float*>(raw(b.bytes) + b.scale_offset) : nullptr};
  }
}

// The statistics' buffers (reduced values, per-row values of slices), the
// measuring passes' partials and the workspace, as the plan `d` needs them
// for an arena of `params` parameters.
MIXPREC_COLD inline void allocate_statistics(const plan_data& d, const step_layout& L, std::size_t params,
                                             std::vector<device_buffer<double>>& stats,
                                             std::vector<device_buffer<double>>& slice_rows,
                                             std::vector<pass_buffers>& passes, workspace& ws) {
  // Every vector of device buffers is sized once and filled in place.
  stats = std::vector<device_buffer<double>>(static_cast<std::size_t>(d.nstats));
  slice_rows = std::vector<device_buffer<double>>(static_cast<std::size_t>(d.nstats));
  for (int j = 0; j < d.nstats; ++j) {
    const scope w = d.stats[j].decl.where;
    const std::size_t entries = scope_entries(w, L);
    stats[j] = allocate<double>(entries > 0 ? entries : 1, "step statistics");
    // Statistics over runs of rows measured by a pass: per-row values first.
    const bool by_rows = d.stats[j].pass >= 0 && gather_of(w) == scope_gather::row_runs;
    slice_rows[j] = allocate<double>(by_rows ? (L.rows > 0 ? L.rows : 1) : 0, "per-row sums of slices or matrices");
  }
  passes = std::vector<pass_buffers>(static_cast<std::size_t>(d.npasses > 1 ? d.npasses - 1 : 0));
  std::size_t partial_bytes = 16;
  for (int q = 0; q + 1 < d.npasses; ++q) {
    const pass_entry& p = d.passes[q];
    pass_buffers& b = passes[q];
    b.rows = std::vector<device_buffer<double>>(static_cast<std::size_t>(p.row_stats));
    for (auto& r : b.rows) r = allocate<double>(L.row_partials > 0 ? L.row_partials : 1, "per-row partials");
    b.columns = std::vector<device_buffer<double>>(static_cast<std::size_t>(p.column_stats));
    for (auto& c : b.columns)
      c = allocate<double>(L.column_partials > 0 ? L.column_partials : 1, "per-column partials");
    const std::size_t value = sizeof(double) * static_cast<std::size_t>(p.fields > 0 ? p.fields : 1);
    b.field_out = allocate<std::uint8_t>(value * (1 + params), "step statistics");
    partial_bytes = std::max(partial_bytes, workspace::round_up(value * L.tile_count()) +
                                                workspace::round_up(value * combine_blocks(L.tile_count())));
  }
  ws.reserve(workspace::round_up(partial_bytes));
}

}  // namespace mixprec::detail
