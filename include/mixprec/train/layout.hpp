// Where a step's work and statistics live: the tiles of the passes, the
// rows, columns and slices of each parameter, and the tables that combine
// tile partials into per-parameter, per-row, per-column and per-slice
// statistics. Each statistic scope's entries and runs of rows come from its
// policy (train/scopes.hpp); the layout's types are in train/geometry.hpp.
//
// Rows and columns are those of a parameter's last two dimensions, as
// Adafactor factors them: a parameter [..., R, C] is B = prod(...) matrices
// of R rows and C columns, so it has B matrices, B * R rows and B * C columns; a vector
// [n] is one row of n columns, a scalar one row of one column. Slices are
// first-axis slices ([out, ...]); a parameter of rank <= 1 is one slice.
//
// Without positions (no component needs rows, columns or slices) a tile is a
// run of at most 4096 consecutive elements of one parameter, as the arena's
// own tiling. With positions a tile is a block of `height` rows by `width`
// columns of one matrix (and one slice), so an element's row and column
// come from the loop indices, and a tile's per-row and per-column partial
// sums have fixed places: row r's partials are consecutive (one per column
// block), column c's are C apart (one per row band).
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <vector>

#include <mixprec/component/component.hpp>
#include <mixprec/detail/memory.hpp>
#include <mixprec/detail/tiles.hpp>
#include <mixprec/tensor/shape.hpp>
#include <mixprec/train/geometry.hpp>
#include <mixprec/train/scopes.hpp>

namespace mixprec::detail {

inline constexpr std::uint32_t narrow_column_block = 64;  // columns per tile when column statistics are kept

// Whether a state field on parameter set `on` has entries for a parameter of this rank.
constexpr bool field_covers(parameter_set on, std::uint32_t rank) {
  return on == parameter_set::all || (on == parameter_set::vectors ? rank < 2 : rank >= 2);
}

// Where a per-element state field keeps elements [first, first + count):
// entries [index, index + count). A field of every element is laid out as
// the arena from the range's first element; a field of a subset of the
// parameters holds their elements in the range, one after another.
struct element_segment {
  std::uint64_t first, count, index;
};
struct segment_geometry {
  std::uint64_t offset, size;
  std::uint32_t rank;
};
inline std::vector<element_segment> element_segments(const std::vector<segment_geometry>& params, parameter_set on,
                                                     std::uint64_t begin, std::uint64_t end) {
  if (on == parameter_set::all) return {{begin, end - begin, 0}};
  std::vector<element_segment> out;
  std::uint64_t next = 0;
  for (const segment_geometry& p : params) {
    if (!field_covers(on, p.rank)) continue;
    const std::uint64_t lo = std::max(begin, p.offset), hi = std::min(end, p.offset + p.size);
    if (lo >= hi) continue;
    out.push_back({lo, hi - lo, next});
    next += hi - lo;
  }
  return out;
}
inline std::vector<segment_geometry> segment_geometry_of(const std::vector<param_geometry>& geo) {
  std::vector<segment_geometry> out;
  for (const param_geometry& g : geo) out.push_back({g.offset, g.size, g.rank});
  return out;
}
inline std::uint64_t entries_of(const std::vector<element_segment>& segments) {
  std::uint64_t n = 0;
  for (const element_segment& g : segments) n = std::max(n, g.index + g.count);
  return n;
}

// shapes, offsets and groups of the parameters; `positions`: tiles of rows;
// `column_stats`: keep tiles narrow so column partials stay small;
// `slices`: tiles never cross a first-axis slice; `block`: elements per
// block of the per-block statistics (0: none; tiles then hold whole
// blocks). Tiles cover only elements [shard_begin, shard_end) (a rank's
// shard: mixprec/dist), which with positions must begin and end at row
// boundaries, and with blocks at block boundaries.
MIXPREC_COLD inline step_layout make_step_layout(const std::vector<shape>& shapes,
                                                 const std::vector<std::size_t>& offsets,
                                                 const std::vector<std::uint32_t>& groups, bool positions,
                                                 bool column_stats, bool slices, std::uint32_t block = 0,
                                                 std::size_t shard_begin = 0,
                                                 std::size_t shard_end = static_cast<std::size_t>(-1)) {
  step_layout L;
  L.positions = positions;
  std::vector<std::size_t> tile_offsets{0};
  std::vector<strided_range> row_ranges, column_ranges, runs[scope_count];
  for (std::size_t p = 0; p < shapes.size(); ++p) {
    const shape& s = shapes[p];
    param_geometry g{};
    g.offset = offsets[p];
    g.size = s.size();
    g.rank = static_cast<std::uint32_t>(s.rank());
    g.group = groups[p];
    for (std::size_t a = 0; a < s.rank(); ++a) g.extents[a] = s[a];
    const std::size_t r = s.rank();
    g.cols = r == 0 ? 1 : s[r - 1];
    g.matrix_rows = r <= 1 ? 1 : s[r - 2];
    g.batches = 1;
    for (std::size_t a = 0; a + 2 < r; ++a) g.batches *= s[a];
    g.rows = g.batches * g.matrix_rows;
    g.slices = r <= 1 ? 1 : s[0];
    g.rows_per_slice = g.slices == 0 ? 0 : g.rows / g.slices;
    g.row_base = L.rows;
    g.column_base = L.columns;
    L.rows += g.rows;
    L.columns += g.batches * g.cols;
    for (std::size_t k = 0; k < scope_count; ++k)
      visit_scope(static_cast<scope>(k), [&](auto policy) {
        g.base[k] = L.entries[k];
        if constexpr (decltype(policy)::within_parameter) L.entries[k] += decltype(policy)::entries_in(g, block);
      });

    // The part of this parameter in the shard, as element indices within it.
    const std::uint64_t lo = std::min<std::uint64_t>(g.size, shard_begin > g.offset ? shard_begin - g.offset : 0);
    const std::uint64_t hi = std::min<std::uint64_t>(g.size, shard_end > g.offset ? shard_end - g.offset : 0);
    if (!positions) {
      require(block == 0 || lo >= hi || (lo % block == 0 && (hi % block == 0 || hi == g.size)), "a shard of parameter ",
              p, " does not begin and end at a boundary of the ", block, "-element blocks of its statistics");
      // Runs of up to tile_size elements.
      for (std::uint64_t b = lo; b < hi; b += tile_size) {
        const std::uint64_t n = std::min<std::uint64_t>(tile_size, hi - b);
        L.tiles_h.push_back({g.offset + b, 1, static_cast<std::uint32_t>(n), static_cast<std::uint32_t>(n),
                             static_cast<std::uint32_t>(p), 0, static_cast<std::uint32_t>(b), 0, 0, 0, 0});
      }
    } else if (lo < hi) {
      require(lo % g.cols == 0 && (hi % g.cols == 0 || hi == g.size), "a shard of parameter ", p,
              " does not begin and end at row boundaries");
      // Blocks of rows x columns within one matrix (and one slice).
      std::uint64_t width, height;
      if (g.rows == 1) {
        width = std::min<std::uint64_t>(g.cols, tile_size);
        height = 1;
      } else if (column_stats) {
        width = std::min<std::uint64_t>(g.cols, narrow_column_block);
        height = std::max<std::uint64_t>(1, tile_size / width);
      } else {
        width = std::min<std::uint64_t>(g.cols, tile_size);
        height = std::max<std::uint64_t>(1, tile_size / width);
      }
      if (slices && r == 2) height = 1;  // a slice is a row
      g.blocks = (g.cols + width - 1) / width;
      g.bands = (g.matrix_rows + height - 1) / height;
      g.row_partial_base = L.row_partials;
      g.column_partial_base = L.column_partials;
      L.row_partials += g.rows * g.blocks;
      L.column_partials += g.batches * g.bands * g.cols;
      const std::uint64_t first_row = lo / g.cols, end_row = (hi + g.cols - 1) / g.cols;
      for (std::uint64_t b = 0; b < g.batches; ++b)
        for (std::uint64_t band = 0; band < g.bands; ++band) {
          const std::uint64_t mr0 = band * height;
          const std::uint64_t full = std::min(height, g.matrix_rows - mr0);
          // The band's rows within the shard.
          const std::uint64_t band_lo = std::max(b * g.matrix_rows + mr0, first_row);
          const std::uint64_t band_hi = std::min(b * g.matrix_rows + mr0 + full, end_row);
          if (band_lo >= band_hi) continue;
          const std::uint64_t h = band_hi - band_lo;
          const std::uint64_t row0 = band_lo;
          for (std::uint64_t blk = 0; blk < g.blocks; ++blk) {
            const std::uint64_t c0 = blk * width;
            const std::uint64_t w = std::min(width, g.cols - c0);
            const std::uint64_t slice = g.rows_per_slice == 0 ? 0 : row0 / g.rows_per_slice;
            L.tiles_h.push_back(
                {g.offset + row0 * g.cols + c0, static_cast<std::uint32_t>(h), static_cast<std::uint32_t>(w),
                 static_cast<std::uint32_t>(g.cols), static_cast<std::uint32_t>(p), static_cast<std::uint32_t>(row0),
                 static_cast<std::uint32_t>(c0), static_cast<std::uint32_t>(b), static_cast<std::uint32_t>(slice),
                 static_cast<std::uint32_t>(blk), static_cast<std::uint32_t>(band)});
          }
        }
    }
    if (positions) {
      for (std::uint64_t row = 0; row < g.rows; ++row)
        row_ranges.push_back({g.row_partial_base + row * g.blocks, g.size > 0 ? g.blocks : 0, 1});
      for (std::uint64_t b = 0; b < g.batches; ++b)
        for (std::uint64_t c = 0; c < g.cols; ++c)
          column_ranges.push_back({g.column_partial_base + b * g.bands * g.cols + c, g.size > 0 ? g.bands : 0, g.cols});
      for (std::size_t k = 0; k < scope_count; ++k)
        visit_scope(static_cast<scope>(k), [&](auto policy) {
          if constexpr (decltype(policy)::gather == scope_gather::row_runs) decltype(policy)::add_runs(g, runs[k]);
        });
    }
    tile_offsets.push_back(L.tiles_h.size());
    L.geometry.push_back(g);
  }
  auto upload = [](const auto& host, const char* what) {
    using T = typename std::decay_t<decltype(host)>::value_type;
    device_buffer<T> d = allocate<T>(host.size(), what);
    write_to_device(host.data(), raw(d), host.size());
    return d;
  };
  L.geometry_d = upload(L.geometry, "parameter geometry");
  L.tiles = upload(L.tiles_h, "a tile table");
  L.param_tile_offsets = upload(tile_offsets, "per-parameter tile offsets");
  L.row_ranges = upload(row_ranges, "row ranges");
  L.column_ranges = upload(column_ranges, "column ranges");
  for (std::size_t k = 0; k < scope_count; ++k) L.runs[k] = upload(runs[k], "runs of rows of a statistic scope");
  return L;
}

}  // namespace mixprec::detail
