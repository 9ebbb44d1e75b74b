// Reusable device scratch memory for the reductions (tile partials), so a
// reduction allocates nothing per call once the workspace is large enough.
// Grow it outside of CUDA graph capture: reserve() is the only allocation.
#pragma once

#include <cstddef>

#include <mixprec/detail/memory.hpp>

namespace mixprec::detail {

class workspace {
 public:
  // Ensures at least `bytes` bytes; keeps the old buffer when large enough.
  void reserve(std::size_t bytes) {
    if (bytes > buffer_.size()) buffer_ = allocate<unsigned char>(round_up(bytes), "a reduction workspace");
  }
  std::size_t capacity() const { return buffer_.size(); }

  // A typed view of the workspace starting at byte `offset` (a multiple of
  // 16), for `count` elements; reserve() the total first.
  template <class T>
  T* slice(std::size_t offset, std::size_t count) {
    require(offset % 16 == 0 && offset + count * sizeof(T) <= buffer_.size(), "workspace slice [", offset, ", +",
            count * sizeof(T), ") exceeds its ", buffer_.size(), " bytes");
    return reinterpret_cast<T*>(raw(buffer_) + offset);
  }

  static std::size_t round_up(std::size_t bytes) { return (bytes + 15) / 16 * 16; }

 private:
  device_buffer<unsigned char> buffer_;
};

}  // namespace mixprec::detail
