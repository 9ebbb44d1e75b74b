// How a pass over the arena is split into tiles, on the device.
//
// A tile is a contiguous range of at most detail::tile_size elements that
// never crosses a segment (one parameter). Padding between segments is never
// part of a tile. Tiles of a segment are consecutive, so per-segment results
// combine tile partials over index ranges, in a fixed order. (The training
// step tiles the arena its own way: train/layout.hpp.)
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
};

class tiling {
 public:
  tiling() = default;

  // Tiles for segments at `offsets` with `sizes`.
  tiling(const std::vector<std::size_t>& offsets, const std::vector<std::size_t>& sizes) {
    std::vector<tile_desc> tiles;
    std::vector<std::size_t> seg_offsets{0};
    for (std::size_t k = 0; k < sizes.size(); ++k) {
      for (std::size_t b = 0; b < sizes[k]; b += detail::tile_size) {
        const std::size_t n = sizes[k] - b < detail::tile_size ? sizes[k] - b : detail::tile_size;
        tiles.push_back({offsets[k] + b, static_cast<std::uint32_t>(n), static_cast<std::uint32_t>(k)});
      }
      seg_offsets.push_back(tiles.size());
    }
    count_ = tiles.size();
    segments_ = sizes.size();
    tiles_ = upload(tiles, "a tile table");
    segment_offsets_ = upload(seg_offsets, "per-segment tile offsets");
  }

  std::size_t tile_count() const { return count_; }
  std::size_t segment_count() const { return segments_; }
  const tile_desc* tiles() const { return detail::raw(tiles_); }
  // Tiles of segment k are [segment_offsets()[k], segment_offsets()[k+1]).
  const std::size_t* segment_offsets() const { return detail::raw(segment_offsets_); }

 private:
  template <class T>
  static detail::device_buffer<T> upload(const std::vector<T>& host, const char* what) {
    detail::device_buffer<T> d = detail::allocate<T>(host.size(), what);
    detail::write_to_device(host.data(), detail::raw(d), host.size());
    return d;
  }

  std::size_t count_ = 0, segments_ = 0;
  detail::device_buffer<tile_desc> tiles_;
  detail::device_buffer<std::size_t> segment_offsets_;
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
