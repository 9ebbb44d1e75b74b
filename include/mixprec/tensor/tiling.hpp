// How a pass over the arena is split into tiles, on the device.
//
// A tile is a contiguous range of at most detail::tile_size elements that
// never crosses a segment (one parameter) or a unit (a slice of a parameter
// whose statistics are wanted separately, e.g. one output row for unit-wise
// clipping). Padding between segments is never part of a tile. Tiles of a
// segment are consecutive, and so are tiles of a unit, so per-segment and
// per-unit results combine tile partials over index ranges, in a fixed order.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include <mixprec/detail/memory.hpp>
#include <mixprec/detail/tiles.hpp>

namespace mixprec {

struct tile_desc {
  std::uint64_t begin;    // first element (arena index)
  std::uint32_t count;    // elements, <= detail::tile_size
  std::uint32_t segment;  // the parameter
  std::uint32_t unit;     // the unit (equal to segment when units are whole parameters)
  std::uint32_t reserved;
};

class tiling {
 public:
  tiling() = default;

  // Tiles for segments at `offsets` with `sizes`; segment k is split into
  // units of `unit_lengths[k]` elements (0: the whole segment is one unit).
  tiling(const std::vector<std::size_t>& offsets, const std::vector<std::size_t>& sizes,
         const std::vector<std::size_t>& unit_lengths) {
    std::vector<tile_desc> tiles;
    std::vector<std::size_t> seg_offsets{0}, unit_offsets{0};
    std::uint32_t unit = 0;
    for (std::size_t k = 0; k < sizes.size(); ++k) {
      const std::size_t len = unit_lengths[k] == 0 || unit_lengths[k] > sizes[k] ? sizes[k] : unit_lengths[k];
      for (std::size_t u = 0; u < sizes[k]; u += len, ++unit) {
        const std::size_t end = u + len;
        for (std::size_t b = u; b < end; b += detail::tile_size) {
          const std::size_t n = end - b < detail::tile_size ? end - b : detail::tile_size;
          tiles.push_back({offsets[k] + b, static_cast<std::uint32_t>(n), static_cast<std::uint32_t>(k), unit, 0});
        }
        unit_offsets.push_back(tiles.size());
      }
      seg_offsets.push_back(tiles.size());
    }
    count_ = tiles.size();
    units_ = unit;
    segments_ = sizes.size();
    tiles_ = upload(tiles, "a tile table");
    segment_offsets_ = upload(seg_offsets, "per-segment tile offsets");
    unit_offsets_ = upload(unit_offsets, "per-unit tile offsets");
  }

  std::size_t tile_count() const { return count_; }
  std::size_t segment_count() const { return segments_; }
  std::size_t unit_count() const { return units_; }
  const tile_desc* tiles() const { return detail::raw(tiles_); }
  // Tiles of segment k are [segment_offsets()[k], segment_offsets()[k+1]); likewise for units.
  const std::size_t* segment_offsets() const { return detail::raw(segment_offsets_); }
  const std::size_t* unit_offsets() const { return detail::raw(unit_offsets_); }

 private:
  template <class T>
  static detail::device_vector<T> upload(const std::vector<T>& host, const char* what) {
    detail::device_vector<T> d = detail::allocate<T>(host.size(), what);
    detail::write_to_device(host.data(), detail::raw(d), host.size());
    return d;
  }

  std::size_t count_ = 0, units_ = 0, segments_ = 0;
  detail::device_vector<tile_desc> tiles_;
  detail::device_vector<std::size_t> segment_offsets_, unit_offsets_;
};

namespace detail {

// The range and identity of a tile: the base of every arena body.
struct tiled {
  const tile_desc* tiles;
  MIXPREC_HOST_DEVICE index_range range(std::size_t t) const {
    const tile_desc d = tiles[t];
    return {static_cast<std::size_t>(d.begin), static_cast<std::size_t>(d.begin) + d.count};
  }
};

}  // namespace detail
}  // namespace mixprec
