// Allocating one state field of a chain: its entries per parameter (by the
// field's extent and parameter set), its device buffer and its initial
// values. What a field needs from its component is gathered in a
// field_setup by the chain, so that this code is compiled once per
// translation unit rather than once per component (it was the largest
// function of a chain's setup: docs/performance.md).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include <mixprec/cast/convert.hpp>
#include <mixprec/component/component.hpp>
#include <mixprec/core/error.hpp>
#include <mixprec/core/stream.hpp>
#include <mixprec/detail/memory.hpp>
#include <mixprec/format/block_codes.hpp>
#include <mixprec/tensor/arena_layout.hpp>
#include <mixprec/tensor/elementwise.hpp>
#include <mixprec/tensor/tensor_view.hpp>
#include <mixprec/train/chain_state.hpp>
#include <mixprec/train/environment.hpp>
#include <mixprec/train/layout.hpp>
#include <mixprec/train/scopes.hpp>

namespace mixprec::detail {

// One field as its component declares and configures it.
struct field_setup {
  state_field field;
  const char* component;  // its name, for messages
  bool used;              // whether the component's options use the field
  float initial;          // the component's initial value of every entry
  // Per parameter, where the component sets the initial value of each
  // parameter's entries (initial_state(field, arena, p)); else empty.
  std::vector<float> per_parameter;
};

// Sizes, allocates and fills buffer `b` for `setup` over the step's layout
// and the state's shard. Returns true when the field starts from the
// weights: the caller, which knows the arena's types, copies them.
MIXPREC_COLD inline bool allocate_field(field_buffer& b, const field_setup& setup,
                                        const std::vector<std::string>& names, const step_layout& layout,
                                        element_range shard, stream s) {
  const state_field& f = setup.field;
  b.used = setup.used;
  if (!b.used) return false;
  const auto& geo = layout.geometry;
  b.base_h.assign(geo.size(), no_entry);
  std::uint64_t next = 0;
  for (std::size_t p = 0; p < geo.size(); ++p) {
    require(f.on != parameter_set::every_matrix || geo[p].rank >= 2, setup.component, ": state field \"", f.name,
            "\" has an entry per ", f.where == extent::column ? "column" : "row",
            " of every parameter's last two dimensions, but parameter \"", names[p], "\" has rank ", geo[p].rank);
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
  if (!setup.per_parameter.empty() &&
      (f.where == extent::parameter || f.where == extent::row || f.where == extent::column)) {
    // Each parameter's entries from the component (its name, shape, group).
    std::vector<float> values(next, v);
    for (std::size_t p = 0; p < geo.size(); ++p) {
      if (b.base_h[p] == no_entry) continue;
      const std::uint64_t count = f.where == extent::parameter ? 1
                                  : f.where == extent::row     ? geo[p].rows
                                                               : geo[p].batches * geo[p].cols;
      std::fill_n(values.begin() + static_cast<std::ptrdiff_t>(b.base_h[p]), count, setup.per_parameter[p]);
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

}  // namespace mixprec::detail
