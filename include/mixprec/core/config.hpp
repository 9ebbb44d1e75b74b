// Compiler and backend configuration: the host/device function macro and the
// Thrust device system this translation unit runs on.
//
// Follows Thrust's own selection (THRUST_DEVICE_SYSTEM): compiled by nvcc with
// the CUDA system, the library launches CUDA kernels; compiled by a host
// compiler it runs on Thrust's OpenMP system (or the sequential CPP system).
#pragma once

// A host compiler with no explicit choice gets Thrust's OpenMP system when
// OpenMP is enabled (-fopenmp), else the sequential CPP system. This must be
// seen before any Thrust header; CMake's mixprec::mixprec target sets
// THRUST_DEVICE_SYSTEM explicitly.
#if !defined(THRUST_DEVICE_SYSTEM) && !defined(__CUDACC__)
#if defined(_OPENMP)
#define THRUST_DEVICE_SYSTEM THRUST_DEVICE_SYSTEM_OMP
#else
#define THRUST_DEVICE_SYSTEM THRUST_DEVICE_SYSTEM_CPP
#endif
#endif

#include <thrust/detail/config.h>

#if defined(__CUDACC__)
#define MIXPREC_HOST_DEVICE __host__ __device__ inline
#else
#define MIXPREC_HOST_DEVICE inline
#endif

#if defined(__CUDA_ARCH__)
#define MIXPREC_DEVICE_CODE 1
#else
#define MIXPREC_DEVICE_CODE 0
#endif

#if THRUST_DEVICE_SYSTEM == THRUST_DEVICE_SYSTEM_CUDA
#if !defined(__CUDACC__)
// Compile with nvcc, or include mixprec before any Thrust header, or define
// THRUST_DEVICE_SYSTEM=THRUST_DEVICE_SYSTEM_OMP.
#error "mixprec: THRUST_DEVICE_SYSTEM is CUDA but this file is not compiled by a CUDA compiler (nvcc)"
#endif
#define MIXPREC_BACKEND_CUDA 1
#elif THRUST_DEVICE_SYSTEM == THRUST_DEVICE_SYSTEM_OMP
#define MIXPREC_BACKEND_OMP 1
#elif THRUST_DEVICE_SYSTEM == THRUST_DEVICE_SYSTEM_CPP
#define MIXPREC_BACKEND_CPP 1
#else
#error "mixprec supports the CUDA, OMP and CPP Thrust device systems"
#endif

// `#pragma omp simd` asks the host compiler to vectorise the inner loops of
// the element-wise passes; without OpenMP the pragma is simply ignored.
#if defined(_OPENMP) && !defined(__CUDA_ARCH__)
#define MIXPREC_PRAGMA_SIMD _Pragma("omp simd")
#else
#define MIXPREC_PRAGMA_SIMD
#endif

// Code that runs rarely (building layouts, allocating state, checkpoint
// files): marked cold so that the host compiler optimises it for size and
// inlines less into it; every translation unit that uses it pays for its
// compilation. Only on host functions; the attribute changes no result.
#if defined(__GNUC__) || defined(__clang__)
#define MIXPREC_COLD [[gnu::cold]]
#else
#define MIXPREC_COLD
#endif

namespace mixprec {

enum class backend { cuda, omp, cpp };

#if defined(MIXPREC_BACKEND_CUDA)
inline constexpr backend current_backend = backend::cuda;
#elif defined(MIXPREC_BACKEND_OMP)
inline constexpr backend current_backend = backend::omp;
#else
inline constexpr backend current_backend = backend::cpp;
#endif

constexpr const char* backend_name(backend b) {
  return b == backend::cuda ? "cuda" : b == backend::omp ? "omp" : "cpp";
}

}  // namespace mixprec
