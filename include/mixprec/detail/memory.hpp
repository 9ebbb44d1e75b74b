// Owning device memory: the Thrust device vector of the selected system.
// On the host backends "device" memory is ordinary host memory.
#pragma once

#include <cstddef>
#include <cstring>
#include <limits>
#include <new>
#include <string>

// Before any Thrust header: it selects Thrust's device system.
#include <mixprec/core/config.hpp>

#include <thrust/device_vector.h>
#include <thrust/fill.h>

#include <mixprec/core/error.hpp>
#include <mixprec/core/stream.hpp>

namespace mixprec::detail {

template <class T>
using device_vector = thrust::device_vector<T>;

template <class T>
T* raw(device_vector<T>& v) {
  return thrust::raw_pointer_cast(v.data());
}
template <class T>
const T* raw(const device_vector<T>& v) {
  return thrust::raw_pointer_cast(v.data());
}

// Allocates `n` elements, turning allocation failures into mixprec::error.
template <class T>
device_vector<T> allocate(std::size_t n, const char* what) {
  const double bytes = static_cast<double>(n) * sizeof(T);
  // Thrust does not check n * sizeof(T) for overflow.
  require(n <= std::numeric_limits<std::size_t>::max() / sizeof(T), "cannot allocate ", n, " elements (", bytes,
          " bytes) for ", what, ": the size overflows size_t");
  try {
    return device_vector<T>(n);
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

}  // namespace mixprec::detail
