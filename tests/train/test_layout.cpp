// The step layout (train/layout.hpp) places each statistic scope's entries
// from its policy (train/scopes.hpp): for a few shapes, the entries of every
// scope, where each parameter's start, and the runs of rows that slices and
// matrices combine, all written out here from the shapes by hand.
#include <cstdint>
#include <vector>

#include <doctest/doctest.h>

#include <mixprec/mixprec.hpp>

using namespace mixprec;

namespace {

// [3, 4], [5], [2, 3, 4], a scalar: 12, 5, 24 and 1 elements.
detail::step_layout layout_of(bool positions, std::uint32_t block) {
  const std::vector<shape> shapes{shape{3, 4}, shape{5}, shape{2, 3, 4}, shape{}};
  const std::vector<std::size_t> offsets{0, 12, 17, 41};
  const std::vector<std::uint32_t> groups{0, 0, 0, 0};
  return detail::make_step_layout(shapes, offsets, groups, positions, false, false, block);
}

std::uint64_t entries(const detail::step_layout& L, scope s) { return detail::scope_entries(s, L); }

template <scope S>
std::vector<std::uint64_t> bases(const detail::step_layout& L) {
  std::vector<std::uint64_t> out;
  for (const detail::param_geometry& g : L.geometry) out.push_back(detail::scope_base<S>(g));
  return out;
}

struct run {
  std::uint64_t start, count, stride;
  bool operator==(const run& o) const { return start == o.start && count == o.count && stride == o.stride; }
};
std::vector<run> runs(const detail::step_layout& L, scope s) {
  const auto& d = L.runs[static_cast<std::size_t>(s)];
  std::vector<detail::strided_range> h(d.size());
  if (!h.empty()) detail::copy_to_host(detail::raw(d), h.data(), h.size());
  std::vector<run> out;
  for (const detail::strided_range& r : h) out.push_back({r.start, r.count, r.stride});
  return out;
}

}  // namespace

TEST_SUITE("train") {
  TEST_CASE("the layout gives every scope its entries and each parameter its first entry") {
    const detail::step_layout L = layout_of(true, 16);
    // Rows: 3, 1, 2 * 3, 1. Columns: 4, 5, 2 * 4, 1. Slices: 3, 1, 2, 1.
    // Matrices: 1, 1, 2, 1. Blocks of 16: 1, 1, 2, 1.
    CHECK(entries(L, scope::global) == 1);
    CHECK(entries(L, scope::parameter) == 4);
    CHECK(entries(L, scope::row) == 11);
    CHECK(entries(L, scope::column) == 18);
    CHECK(entries(L, scope::slice) == 7);
    CHECK(entries(L, scope::matrix) == 5);
    CHECK(entries(L, scope::block) == 5);
    CHECK(bases<scope::parameter>(L) == std::vector<std::uint64_t>{0, 1, 2, 3});
    CHECK(bases<scope::row>(L) == std::vector<std::uint64_t>{0, 3, 4, 10});
    CHECK(bases<scope::column>(L) == std::vector<std::uint64_t>{0, 4, 9, 17});
    CHECK(bases<scope::slice>(L) == std::vector<std::uint64_t>{0, 3, 4, 6});
    CHECK(bases<scope::matrix>(L) == std::vector<std::uint64_t>{0, 1, 2, 4});
    CHECK(bases<scope::block>(L) == std::vector<std::uint64_t>{0, 1, 2, 4});
    // The row and column state fields' entries start where the scopes' do.
    for (const detail::param_geometry& g : L.geometry) {
      CHECK(g.row_base == detail::scope_base<scope::row>(g));
      CHECK(g.column_base == detail::scope_base<scope::column>(g));
    }
  }

  TEST_CASE("slices and matrices combine the runs of rows that make them") {
    const detail::step_layout L = layout_of(true, 0);
    // [3, 4]: three one-row slices, one matrix of rows 0-2. [5]: row 3.
    // [2, 3, 4]: slices and matrices both rows 4-6 and 7-9. Scalar: row 10.
    CHECK(runs(L, scope::slice) ==
          std::vector<run>{{0, 1, 1}, {1, 1, 1}, {2, 1, 1}, {3, 1, 1}, {4, 3, 1}, {7, 3, 1}, {10, 1, 1}});
    CHECK(runs(L, scope::matrix) == std::vector<run>{{0, 3, 1}, {3, 1, 1}, {4, 3, 1}, {7, 3, 1}, {10, 1, 1}});
    for (scope s : {scope::global, scope::parameter, scope::row, scope::column, scope::block})
      CHECK(runs(L, s).empty());
    CHECK(entries(L, scope::block) == 0);  // no per-block statistics or codes
  }

  TEST_CASE("without positions the layout keeps no runs of rows") {
    const detail::step_layout L = layout_of(false, 16);
    CHECK(runs(L, scope::slice).empty());
    CHECK(runs(L, scope::matrix).empty());
    CHECK(entries(L, scope::block) == 5);
    CHECK(entries(L, scope::slice) == 7);
  }
}
