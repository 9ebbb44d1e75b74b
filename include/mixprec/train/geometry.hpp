// The data of a step's layout (train/layout.hpp builds it): its tiles, the
// shape facts of each parameter, and where the entries of each statistic
// scope (train/scopes.hpp) start. Apart from layout.hpp so that the scope
// policies can read it and the layout can be built from them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include <mixprec/component/component.hpp>
#include <mixprec/core/config.hpp>
#include <mixprec/detail/memory.hpp>
#include <mixprec/tensor/shape.hpp>

namespace mixprec::detail {

struct step_tile {
  std::uint64_t begin;   // arena index of element (0, 0)
  std::uint32_t height;  // rows
  std::uint32_t width;   // columns; element (r, c) is begin + r * stride + c
  std::uint32_t stride;
  std::uint32_t param;
  std::uint32_t row0;   // parameter-local row of r = 0
  std::uint32_t col0;   // column of c = 0
  std::uint32_t batch;  // which matrix of the leading dimensions
  std::uint32_t slice;  // parameter-local first-axis slice
  std::uint32_t block;  // column block (row partials)
  std::uint32_t band;   // row band within its matrix (column partials)
};

// The shape facts of a parameter that passes and rules read.
struct param_geometry {
  std::uint64_t offset, size;
  std::uint32_t rank, group;
  std::uint64_t extents[shape::max_rank];
  std::uint64_t rows, cols, matrix_rows, batches;  // rows = B * R, cols = C (per matrix), matrix_rows = R
  std::uint64_t row_base, column_base;  // first global row / column (the entries of row and column state fields)
  std::uint64_t slices, rows_per_slice;
  std::uint64_t blocks, bands;  // column blocks per row, row bands per matrix
  std::uint64_t row_partial_base, column_partial_base;
  std::uint64_t base[scope_count];  // first global entry of each statistic scope (scope_base below)
};

// A combination: out[e] = combine of parts[start + k * stride], k < count.
struct strided_range {
  std::uint64_t start, count, stride;
};

struct step_layout {
  bool positions = false;
  std::vector<param_geometry> geometry;  // host copy
  device_buffer<param_geometry> geometry_d;
  std::vector<step_tile> tiles_h;
  device_buffer<step_tile> tiles;
  device_buffer<std::size_t> param_tile_offsets;  // tiles of parameter p: [offsets[p], offsets[p + 1])
  std::uint64_t rows = 0, columns = 0, row_partials = 0, column_partials = 0;
  device_buffer<strided_range> row_ranges, column_ranges;  // per row / column: its partials
  // Per statistic scope (indexed by the enumerator): its entries in all
  // parameters, and for a scope combined over runs of rows those runs.
  std::uint64_t entries[scope_count] = {};
  device_buffer<strided_range> runs[scope_count];

  std::size_t tile_count() const { return tiles_h.size(); }
};

// The first entry of scope S in the parameter of geometry g.
template <scope S>
MIXPREC_HOST_DEVICE std::uint64_t scope_base(const param_geometry& g) {
  static_assert(static_cast<std::size_t>(S) < scope_count,
                "mixprec: scope_count (component/component.hpp) must count every scope");
  return g.base[static_cast<std::size_t>(S)];
}

}  // namespace mixprec::detail
