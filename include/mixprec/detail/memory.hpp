// Owning device memory: the library's arrays of trivially copyable values,
// held in a Thrust device vector of 64-bit words of the selected system. On the
// host backends "device" memory is ordinary host memory.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <new>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

// Before any Thrust header: it selects Thrust's device system.
#include <mixprec/core/config.hpp>

#include <thrust/device_vector.h>

#include <mixprec/core/error.hpp>
#include <mixprec/core/stream.hpp>

namespace mixprec::detail {

// Stream-ordered copies between host and device memory. copy_to_host
// waits for the stream, so the host sees every result queued before it.
template <class T>
void copy_to_host(const T* device_src, T* host_dst, std::size_t n, stream s = {}) {
  if (n == 0) return;
#if defined(MIXPREC_BACKEND_CUDA)
  MIXPREC_CUDA_CHECK(cudaMemcpyAsync(host_dst, device_src, n * sizeof(T), cudaMemcpyDeviceToHost, s.handle));
  MIXPREC_CUDA_CHECK(cudaStreamSynchronize(s.handle));
#else
  (void)s;
  std::memcpy(static_cast<void*>(host_dst), static_cast<const void*>(device_src), n * sizeof(T));
#endif
}

template <class T>
void write_to_device(const T* host_src, T* device_dst, std::size_t n, stream s = {}) {
  if (n == 0) return;
#if defined(MIXPREC_BACKEND_CUDA)
  MIXPREC_CUDA_CHECK(cudaMemcpyAsync(device_dst, host_src, n * sizeof(T), cudaMemcpyHostToDevice, s.handle));
  MIXPREC_CUDA_CHECK(cudaStreamSynchronize(s.handle));  // the host buffer may go away after return
#else
  (void)s;
  std::memcpy(static_cast<void*>(device_dst), static_cast<const void*>(host_src), n * sizeof(T));
#endif
}

// Device-to-device copy, in stream order.
template <class T>
void copy_device(const T* src, T* dst, std::size_t n, stream s = {}) {
  if (n == 0) return;
#if defined(MIXPREC_BACKEND_CUDA)
  MIXPREC_CUDA_CHECK(cudaMemcpyAsync(dst, src, n * sizeof(T), cudaMemcpyDeviceToDevice, s.handle));
#else
  (void)s;
  std::memcpy(static_cast<void*>(dst), static_cast<const void*>(src), n * sizeof(T));
#endif
}

template <class T>
T read_back(const T* device_src, stream s = {}) {
  T v;
  copy_to_host(device_src, &v, 1, s);
  return v;
}

// The storage of every device_buffer: bytes in a vector of 64-bit words
// of the device system. Everything here is independent of the element
// type, so that it is compiled once per translation unit, not once per
// type of buffer (a chain's state has a dozen).
class device_words {
 public:
  device_words() = default;
  // `bytes` bytes, zero, or `n` copies of the `size` bytes at `value`
  // (bytes = n * size) when value is not null.
  MIXPREC_COLD device_words(std::size_t n, std::size_t size, const void* value)
      : words_(n * size / 8 + (n * size % 8 != 0)) {
    if (value == nullptr || n == 0) return;
    std::vector<unsigned char> copies(n * size);
    for (std::size_t k = 0; k < n; ++k) std::memcpy(copies.data() + k * size, value, size);
    write_to_device(copies.data(), static_cast<unsigned char*>(get()), copies.size());
  }
  device_words(const device_words&) = default;
  device_words& operator=(const device_words&) = default;
  // A moved-from vector of words is empty.
  device_words(device_words&& o) noexcept { words_.swap(o.words_); }
  device_words& operator=(device_words&& o) noexcept {
    device_words taken(std::move(o));
    words_.swap(taken.words_);  // taken frees the old memory
    return *this;
  }
  void* get() { return thrust::raw_pointer_cast(words_.data()); }
  const void* get() const { return thrust::raw_pointer_cast(words_.data()); }

 private:
  thrust::device_vector<std::uint64_t> words_;
};

// Whether all `size` bytes at p are zero.
inline bool all_zero_bytes(const void* p, std::size_t size) {
  const auto* b = static_cast<const unsigned char*>(p);
  for (std::size_t k = 0; k < size; ++k)
    if (b[k] != 0) return false;
  return true;
}

// n values of T in device memory, value-initialised like
// thrust::device_vector<T>(n), which it replaces inside the library: every
// element type of a thrust::device_vector instantiates Thrust's vector,
// allocator and fill code anew (about 0.1 s of g++ -O3 each, and a chain's
// state has a dozen types: docs/performance.md), while these arrays all
// share one vector of 64-bit words (whose zero fill runs as fast as
// float's; a vector of bytes took 1.6x as long on the host). Its move is
// noexcept, so std::vector grows a vector of them by moving.
template <class T>
class device_buffer {
  static_assert(std::is_trivially_copyable_v<T>, "device_buffer holds trivially copyable values");
  static_assert(alignof(T) <= 16, "device_buffer: the allocation is aligned to 16 bytes");

 public:
  using value_type = T;
  device_buffer() = default;
  explicit device_buffer(std::size_t n) : device_buffer(n, T{}) {}
  // Adopts words that hold n values of T.
  device_buffer(device_words&& w, std::size_t n) : words_(std::move(w)), n_(n) {}
  device_buffer(const device_buffer&) = default;
  device_buffer& operator=(const device_buffer&) = default;
  // A moved-from buffer is empty.
  device_buffer(device_buffer&& o) noexcept : words_(std::move(o.words_)), n_(o.n_) { o.n_ = 0; }
  device_buffer& operator=(device_buffer&& o) noexcept {  // a self-move keeps the buffer
    const std::size_t n = o.n_;
    words_ = std::move(o.words_);
    o.n_ = 0;
    n_ = n;
    return *this;
  }

  std::size_t size() const { return n_; }
  bool empty() const { return n_ == 0; }
  T* get() { return static_cast<T*>(words_.get()); }
  const T* get() const { return static_cast<const T*>(words_.get()); }
  // Device pointers, so that Thrust algorithms given them run on the device system.
  thrust::device_ptr<T> data() { return thrust::device_pointer_cast(get()); }
  thrust::device_ptr<const T> data() const { return thrust::device_pointer_cast(get()); }
  thrust::device_ptr<T> begin() { return data(); }
  thrust::device_ptr<T> end() { return data() + size(); }
  thrust::device_ptr<const T> begin() const { return data(); }
  thrust::device_ptr<const T> end() const { return data() + size(); }

 private:
  // `v` is T's value-initialised value: copied only where a type has
  // default member initialisers (its bytes are not all zero).
  device_buffer(std::size_t n, const T& v)
      : words_(n, sizeof(T), all_zero_bytes(&v, sizeof(T)) ? nullptr : &v), n_(n) {}
  device_words words_;
  std::size_t n_ = 0;
};

template <class T>
T* raw(device_buffer<T>& v) {
  return v.get();
}
template <class T>
const T* raw(const device_buffer<T>& v) {
  return v.get();
}

// Allocates n values of `size` bytes (zero, or copies of `value` when it
// is not null), turning allocation failures into mixprec::error.
MIXPREC_COLD inline device_words allocate_words(std::size_t n, std::size_t size, const void* value, const char* what) {
  const double bytes = static_cast<double>(n) * static_cast<double>(size);
  // Thrust does not check n * size for overflow.
  require(n <= std::numeric_limits<std::size_t>::max() / size, "cannot allocate ", n, " elements (", bytes,
          " bytes) for ", what, ": the size overflows size_t");
  try {
    return device_words(n, size, value);
  } catch (const std::bad_alloc& e) {
    throw error(
        concat("cannot allocate ", n, " elements (", bytes, " bytes) for ", what, ": out of memory (", e.what(), ")"));
  } catch (const std::exception& e) {
    // Not an allocation failure (Thrust's bad_alloc derives from
    // std::bad_alloc): on CUDA typically a fault of an earlier kernel that
    // surfaced at this synchronising call.
    throw error(concat("error while allocating ", n, " elements (", bytes, " bytes) for ", what,
                       current_backend == backend::cuda ? " (it may come from an earlier kernel): " : ": ", e.what()));
  }
}

// Allocates `n` elements, turning allocation failures into mixprec::error.
template <class T>
device_buffer<T> allocate(std::size_t n, const char* what) {
  const T v{};
  return device_buffer<T>(allocate_words(n, sizeof(T), all_zero_bytes(&v, sizeof(T)) ? nullptr : &v, what), n);
}

}  // namespace mixprec::detail
