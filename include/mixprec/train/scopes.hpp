// What each statistic scope means to the engine, in one place, as
// train/reduction.hpp does for the reductions: its name; how a measuring
// pass gathers it (a field of the tile partials; per-row or per-column
// partials; per-row values combined again over runs of rows; blocks written
// in place); how many entries each parameter has (the layout places them,
// train/layout.hpp) and which runs of rows they combine; which entry an
// element, a row rule or a column rule reads; which rules may read it. The
// plan, the passes, the combines, the layout, the allocation and describe()
// read these. A new scope is an enumerator (component/component.hpp, with
// scope_count) and its policy here, with its case in visit_scope.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include <mixprec/component/component.hpp>
#include <mixprec/core/config.hpp>
#include <mixprec/detail/memory.hpp>
#include <mixprec/train/geometry.hpp>

namespace mixprec::detail {

// How a measuring pass gathers a scope's values.
enum class scope_gather : std::uint8_t {
  tiles,     // a field of each tile's partials, combined over the tiles (of the arena or of each parameter)
  rows,      // per-row partials (one per column block), combined per row
  columns,   // per-column partials (one per row band), combined per column
  row_runs,  // per-row partials combined per row, then over runs of consecutive rows
  blocks     // each tile holds whole blocks and writes their values in place
};

// An element's place in its parameter, as the passes know it.
struct scope_place {
  std::uint64_t row, batch, col, slice;  // parameter-local row, matrix, column within it, first-axis slice
  std::uint64_t index;                   // element within the parameter
  std::uint32_t block;                   // elements per block (scope::block)
};

// Which entry rules may read a scope's entry (besides the element rule,
// which reads every scope). of_state: a statistic of state may have the
// scope (train/state_statistics.hpp maps each row or column entry to its
// scope entry with of_entry).
struct scope_readers {
  bool row, column, parameter;
};

template <scope S>
struct scope_policy;

template <>
struct scope_policy<scope::global> {
  static constexpr const char* name = "global";
  static constexpr scope_gather gather = scope_gather::tiles;
  static constexpr scope_readers readers{true, true, true};
  static constexpr bool of_state = true;
  static constexpr bool tiles_inside = false;
  static constexpr bool within_parameter = false;
  MIXPREC_HOST_DEVICE static std::uint64_t of_element(const param_geometry&, std::uint32_t, const scope_place&) {
    return 0;
  }
  MIXPREC_HOST_DEVICE static std::uint64_t of_entry(extent, const param_geometry&, std::uint32_t, std::uint64_t) {
    return 0;
  }
};
template <>
struct scope_policy<scope::parameter> {
  static constexpr const char* name = "per parameter";
  static constexpr scope_gather gather = scope_gather::tiles;
  static constexpr scope_readers readers{true, true, true};
  static constexpr bool of_state = true;
  static constexpr bool tiles_inside = false;     // tiles never cross parameters anyway
  static constexpr bool within_parameter = true;  // its entries lie within one parameter
  static std::uint64_t entries_in(const param_geometry&, std::uint32_t) { return 1; }
  MIXPREC_HOST_DEVICE static std::uint64_t of_element(const param_geometry&, std::uint32_t p, const scope_place&) {
    return p;
  }
  MIXPREC_HOST_DEVICE static std::uint64_t of_entry(extent, const param_geometry&, std::uint32_t p, std::uint64_t) {
    return p;
  }
};
template <>
struct scope_policy<scope::row> {
  static constexpr const char* name = "per row";
  static constexpr scope_gather gather = scope_gather::rows;
  static constexpr scope_readers readers{true, false, false};
  static constexpr bool of_state = false;
  static constexpr bool tiles_inside = false;
  static constexpr bool within_parameter = true;  // its entries lie within one parameter
  static std::uint64_t entries_in(const param_geometry& g, std::uint32_t) { return g.rows; }
  MIXPREC_HOST_DEVICE static std::uint64_t of_element(const param_geometry& g, std::uint32_t, const scope_place& e) {
    return scope_base<scope::row>(g) + e.row;
  }
  MIXPREC_HOST_DEVICE static std::uint64_t of_entry(extent, const param_geometry& g, std::uint32_t, std::uint64_t k) {
    return scope_base<scope::row>(g) + k;
  }
};
template <>
struct scope_policy<scope::column> {
  static constexpr const char* name = "per column";
  static constexpr scope_gather gather = scope_gather::columns;
  static constexpr scope_readers readers{false, true, false};
  static constexpr bool of_state = false;
  static constexpr bool tiles_inside = false;
  static constexpr bool within_parameter = true;  // its entries lie within one parameter
  static std::uint64_t entries_in(const param_geometry& g, std::uint32_t) { return g.batches * g.cols; }
  MIXPREC_HOST_DEVICE static std::uint64_t of_element(const param_geometry& g, std::uint32_t, const scope_place& e) {
    return scope_base<scope::column>(g) + e.batch * g.cols + e.col;
  }
  // A column entry k is batch * cols + column.
  MIXPREC_HOST_DEVICE static std::uint64_t of_entry(extent, const param_geometry& g, std::uint32_t, std::uint64_t k) {
    return scope_base<scope::column>(g) + k;
  }
};
template <>
struct scope_policy<scope::slice> {
  static constexpr const char* name = "per slice";
  static constexpr scope_gather gather = scope_gather::row_runs;
  static constexpr scope_readers readers{true, false, false};
  static constexpr bool of_state = false;
  static constexpr bool tiles_inside = true;      // the tile's value is its slice's (a rank-2 slice is a row)
  static constexpr bool within_parameter = true;  // its entries lie within one parameter
  static std::uint64_t entries_in(const param_geometry& g, std::uint32_t) { return g.slices; }
  static void add_runs(const param_geometry& g, std::vector<strided_range>& runs) {
    for (std::uint64_t sl = 0; sl < g.slices; ++sl)
      runs.push_back({g.row_base + sl * g.rows_per_slice, g.rows_per_slice, 1});
  }
  MIXPREC_HOST_DEVICE static std::uint64_t of_element(const param_geometry& g, std::uint32_t, const scope_place& e) {
    return scope_base<scope::slice>(g) + e.slice;
  }
  MIXPREC_HOST_DEVICE static std::uint64_t of_entry(extent, const param_geometry& g, std::uint32_t, std::uint64_t k) {
    return scope_base<scope::slice>(g) + (g.rows_per_slice ? k / g.rows_per_slice : 0);
  }
};
template <>
struct scope_policy<scope::matrix> {
  static constexpr const char* name = "per matrix";
  static constexpr scope_gather gather = scope_gather::row_runs;
  static constexpr scope_readers readers{true, true, false};
  static constexpr bool of_state = true;
  static constexpr bool tiles_inside = false;     // tiles of rows never cross matrices anyway
  static constexpr bool within_parameter = true;  // its entries lie within one parameter
  static std::uint64_t entries_in(const param_geometry& g, std::uint32_t) { return g.batches; }
  static void add_runs(const param_geometry& g, std::vector<strided_range>& runs) {
    for (std::uint64_t b = 0; b < g.batches; ++b) runs.push_back({g.row_base + b * g.matrix_rows, g.matrix_rows, 1});
  }
  MIXPREC_HOST_DEVICE static std::uint64_t of_element(const param_geometry& g, std::uint32_t, const scope_place& e) {
    return scope_base<scope::matrix>(g) + e.batch;
  }
  MIXPREC_HOST_DEVICE static std::uint64_t of_entry(extent x, const param_geometry& g, std::uint32_t, std::uint64_t k) {
    const std::uint64_t per = x == extent::row ? g.matrix_rows : g.cols;
    return scope_base<scope::matrix>(g) + (per ? k / per : 0);
  }
};
template <>
struct scope_policy<scope::block> {
  static constexpr const char* name = "per block";
  static constexpr scope_gather gather = scope_gather::blocks;
  static constexpr scope_readers readers{false, false, false};
  static constexpr bool of_state = false;
  static constexpr bool tiles_inside = false;     // tiles hold whole blocks (train/layout.hpp)
  static constexpr bool within_parameter = true;  // its entries lie within one parameter
  // `block`: elements per block of the chain's per-block statistics and 8-bit codes (0: none).
  static std::uint64_t entries_in(const param_geometry& g, std::uint32_t block) {
    return block == 0 ? 0 : (g.size + block - 1) / block;
  }
  MIXPREC_HOST_DEVICE static std::uint64_t of_element(const param_geometry& g, std::uint32_t, const scope_place& e) {
    return scope_base<scope::block>(g) + e.index / e.block;
  }
  MIXPREC_HOST_DEVICE static std::uint64_t of_entry(extent, const param_geometry&, std::uint32_t, std::uint64_t) {
    return 0;  // not readable there (readers)
  }
};

// The policy's answers for a scope known only at run time (the plan's
// tables, describe(), the allocation and combines after a pass).
template <class F>
constexpr auto visit_scope(scope s, F&& f) {
  switch (s) {
    case scope::global:
      return f(scope_policy<scope::global>{});
    case scope::parameter:
      return f(scope_policy<scope::parameter>{});
    case scope::row:
      return f(scope_policy<scope::row>{});
    case scope::column:
      return f(scope_policy<scope::column>{});
    case scope::slice:
      return f(scope_policy<scope::slice>{});
    case scope::matrix:
      return f(scope_policy<scope::matrix>{});
    case scope::block:
      break;
  }
  return f(scope_policy<scope::block>{});
}
constexpr const char* scope_name(scope s) {
  return visit_scope(s, [](auto policy) { return decltype(policy)::name; });
}
constexpr scope_gather gather_of(scope s) {
  return visit_scope(s, [](auto policy) { return decltype(policy)::gather; });
}
// The element rule reads the scope per element (else once per tile: the tile lies within one entry).
constexpr bool read_per_element(scope s) {
  const scope_gather g = gather_of(s);
  return g == scope_gather::rows || g == scope_gather::columns || g == scope_gather::blocks;
}
// As constants for __host__ __device__ bodies (see scaling_of_v, train/reduction.hpp).
template <scope S>
inline constexpr bool read_per_element_v = read_per_element(S);
template <scope S>
inline constexpr scope_gather gather_of_v = gather_of(S);
constexpr bool of_state(scope s) {
  return visit_scope(s, [](auto policy) { return decltype(policy)::of_state; });
}
constexpr bool tiles_inside(scope s) {
  return visit_scope(s, [](auto policy) { return decltype(policy)::tiles_inside; });
}
// A scope's entries over all parameters (within_parameter: as the layout placed them).
inline std::uint64_t scope_entries(scope s, const step_layout& L) {
  return visit_scope(s, [&](auto policy) -> std::uint64_t {
    if constexpr (decltype(policy)::within_parameter) return L.entries[static_cast<std::size_t>(s)];
    else return 1;
  });
}
// The runs of rows a row_runs scope combines (nullptr for the others).
inline const strided_range* scope_runs(scope s, const step_layout& L) {
  return visit_scope(s, [&](auto policy) -> const strided_range* {
    if constexpr (decltype(policy)::gather == scope_gather::row_runs) return raw(L.runs[static_cast<std::size_t>(s)]);
    else return nullptr;
  });
}

}  // namespace mixprec::detail
