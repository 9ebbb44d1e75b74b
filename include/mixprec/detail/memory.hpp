// Owning device memory: the Thrust device vector of the selected system.
// On the host backends "device" memory is ordinary host memory.
#pragma once

#include <cstddef>
#include <new>

#include <thrust/device_vector.h>
#include <thrust/fill.h>

#include <mixprec/core/error.hpp>

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
  try {
    return device_vector<T>(n);
  } catch (const std::bad_alloc&) {
    throw error(concat("cannot allocate ", n, " elements (", n * sizeof(T), " bytes) for ", what));
  } catch (const std::exception& e) {
    throw error(concat("cannot allocate ", n, " elements (", n * sizeof(T), " bytes) for ", what, ": ", e.what()));
  }
}

// Copies `n` elements between device (or host) locations.
template <class T>
void copy_to_host(const T* device_src, T* host_dst, std::size_t n) {
  thrust::copy_n(thrust::device_pointer_cast(device_src), n, host_dst);
}
template <class T>
void copy_to_device(const T* host_src, T* device_dst, std::size_t n) {
  thrust::copy_n(host_src, n, thrust::device_pointer_cast(device_dst));
}

}  // namespace mixprec::detail
