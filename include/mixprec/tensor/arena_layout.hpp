// Where each parameter lives in the arena, and how a pass over the arena is
// split into tiles.
//
// Segments (one per parameter) start at multiples of 16 elements, so every
// role (fp32 master, fp8/bf16 model copy, gradients) starts each segment on
// a 16-byte boundary and device code can use vector loads. The same element
// offsets serve every role. Padding is never visited: passes run over tiles,
// and a tile (at most detail::tile_size elements) never crosses a segment.
// The tile table and per-segment tile ranges live on the device, so one
// launch covers every parameter and per-segment reductions combine tiles
// without a host round trip.
#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>
#include <vector>

#include <mixprec/detail/memory.hpp>
#include <mixprec/detail/tiles.hpp>

namespace mixprec {

struct tile_desc {
  std::uint64_t begin;    // first element (arena index)
  std::uint32_t count;    // elements in the tile, <= detail::tile_size
  std::uint32_t segment;  // the parameter it belongs to
};

class arena_layout {
 public:
  static constexpr std::size_t alignment = 16;  // elements

  arena_layout() = default;

  // Lays out segments of the given sizes and group ids.
  arena_layout(const std::vector<std::size_t>& sizes, const std::vector<std::uint32_t>& groups) {
    detail::require(sizes.size() == groups.size(), "arena_layout: sizes and groups differ in length");
    std::vector<tile_desc> tiles;
    std::vector<std::size_t> tile_offsets{0};
    std::size_t offset = 0;
    for (std::size_t k = 0; k < sizes.size(); ++k) {
      offsets_.push_back(offset);
      for (std::size_t b = 0; b < sizes[k]; b += detail::tile_size) {
        const std::size_t n = sizes[k] - b < detail::tile_size ? sizes[k] - b : detail::tile_size;
        tiles.push_back({offset + b, static_cast<std::uint32_t>(n), static_cast<std::uint32_t>(k)});
      }
      tile_offsets.push_back(tiles.size());
      offset += (sizes[k] + alignment - 1) / alignment * alignment;
    }
    sizes_ = sizes;
    groups_ = groups;
    padded_size_ = offset;
    tile_count_ = tiles.size();
    tiles_ = to_device(tiles, "the arena's tile table");
    tile_offsets_ = to_device(tile_offsets, "the arena's tile offsets");
    segment_groups_ = to_device(groups, "the arena's group table");
  }

  // Elements an arena of these segment sizes needs, padding included.
  static std::size_t padded_size_of(const std::vector<std::size_t>& sizes) {
    std::size_t n = 0;
    for (std::size_t s : sizes) {
      detail::require(s <= std::numeric_limits<std::size_t>::max() - n - alignment, "arena_layout: ",
                      "the parameters' total size overflows size_t");
      n += (s + alignment - 1) / alignment * alignment;
    }
    return n;
  }

  std::size_t segment_count() const { return sizes_.size(); }
  std::size_t padded_size() const { return padded_size_; }
  std::size_t offset(std::size_t k) const { return offsets_.at(k); }
  std::size_t size(std::size_t k) const { return sizes_.at(k); }
  std::uint32_t group(std::size_t k) const { return groups_.at(k); }
  std::size_t element_count() const {
    std::size_t n = 0;
    for (std::size_t s : sizes_) n += s;
    return n;
  }

  // Device tables.
  std::size_t tile_count() const { return tile_count_; }
  const tile_desc* tiles() const { return detail::raw(tiles_); }
  const std::size_t* tile_offsets() const { return detail::raw(tile_offsets_); }  // segment k: [off[k], off[k+1])
  const std::uint32_t* segment_groups() const { return detail::raw(segment_groups_); }

 private:
  template <class T>
  static detail::device_vector<T> to_device(const std::vector<T>& host, const char* what) {
    detail::device_vector<T> d = detail::allocate<T>(host.size(), what);
    detail::write_to_device(host.data(), detail::raw(d), host.size());
    return d;
  }

  std::vector<std::size_t> sizes_, offsets_;
  std::vector<std::uint32_t> groups_;
  std::size_t padded_size_ = 0, tile_count_ = 0;
  detail::device_vector<tile_desc> tiles_;
  detail::device_vector<std::size_t> tile_offsets_;
  detail::device_vector<std::uint32_t> segment_groups_;
};

namespace detail {

// Tile ranges of an arena pass; the base of every arena body.
struct arena_tiling {
  const tile_desc* tiles;
  MIXPREC_HOST_DEVICE index_range range(std::size_t t) const {
    const tile_desc d = tiles[t];
    return {static_cast<std::size_t>(d.begin), static_cast<std::size_t>(d.begin) + d.count};
  }
  MIXPREC_HOST_DEVICE std::uint32_t segment(std::size_t t) const { return tiles[t].segment; }
};

}  // namespace detail
}  // namespace mixprec
