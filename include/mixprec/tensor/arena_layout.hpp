// Where each parameter lives in the arena, and how a pass over the arena is
// split into tiles.
//
// Segments (one per parameter) start at multiples of 16 elements, so every
// role (fp32 master, fp8/bf16 model copy, gradients) starts each segment on
// a 16-byte boundary and device code can use vector loads. The same element
// offsets serve every role. Padding is never visited: passes run over the
// tiles of a tiling (tensor/tiling.hpp), which live on the device, so one
// launch covers every parameter and per-parameter reductions combine tiles
// without a host round trip.
#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>
#include <vector>

#include <mixprec/detail/memory.hpp>
#include <mixprec/tensor/tiling.hpp>

namespace mixprec {

// Elements [begin, end) of an arena (padded indices); the default is all.
struct element_range {
  std::size_t begin = 0, end = static_cast<std::size_t>(-1);
};

class arena_layout {
 public:
  static constexpr std::size_t alignment = 16;  // elements

  arena_layout() = default;

  // Lays out segments of the given sizes and group ids.
  MIXPREC_COLD arena_layout(const std::vector<std::size_t>& sizes, const std::vector<std::uint32_t>& groups) {
    detail::require(sizes.size() == groups.size(), "arena_layout: sizes and groups differ in length");
    std::size_t offset = 0;
    for (std::size_t s : sizes) {
      offsets_.push_back(offset);
      offset += (s + alignment - 1) / alignment * alignment;
    }
    sizes_ = sizes;
    groups_ = groups;
    padded_size_ = offset;
    tiling_ = mixprec::tiling(offsets_, sizes_);
    segment_groups_ = detail::allocate<std::uint32_t>(groups.size(), "the arena's group table");
    detail::write_to_device(groups.data(), detail::raw(segment_groups_), groups.size());
  }

  // Elements an arena of these segment sizes needs, padding included.
  static std::size_t padded_size_of(const std::vector<std::size_t>& sizes) {
    std::size_t n = 0;
    for (std::size_t s : sizes) {
      detail::require(s <= std::numeric_limits<std::size_t>::max() - n - alignment,
                      "arena_layout: ", "the parameters' total size overflows size_t");
      n += (s + alignment - 1) / alignment * alignment;
    }
    return n;
  }

  // Where each segment of these sizes starts (the layout finalize() will make).
  static std::vector<std::size_t> offsets_of(const std::vector<std::size_t>& sizes) {
    std::vector<std::size_t> offsets;
    std::size_t offset = 0;
    for (std::size_t s : sizes) {
      offsets.push_back(offset);
      offset += (s + alignment - 1) / alignment * alignment;
    }
    return offsets;
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

  // Tiles of whole parameters (segment reductions).
  const mixprec::tiling& tiling() const { return tiling_; }
  std::size_t tile_count() const { return tiling_.tile_count(); }
  const std::uint32_t* segment_groups() const { return detail::raw(segment_groups_); }  // device

 private:
  std::vector<std::size_t> sizes_, offsets_;
  std::vector<std::uint32_t> groups_;
  std::size_t padded_size_ = 0;
  mixprec::tiling tiling_;
  detail::device_buffer<std::uint32_t> segment_groups_;
};

}  // namespace mixprec
