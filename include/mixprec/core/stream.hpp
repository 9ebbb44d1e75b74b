// The stream a call runs on. On CUDA it wraps a cudaStream_t (default: the
// legacy default stream; pass your own to overlap work or to capture a step
// in a CUDA graph). On the host backends it carries nothing: work runs
// synchronously on the calling thread and its OpenMP team.
#pragma once

#include <mixprec/core/config.hpp>
#include <mixprec/core/error.hpp>

#if defined(MIXPREC_BACKEND_CUDA)
#include <cuda_runtime_api.h>
#endif

namespace mixprec {

#if defined(MIXPREC_BACKEND_CUDA)
struct stream {
  cudaStream_t handle = nullptr;
  stream() = default;
  stream(cudaStream_t h) : handle(h) {}  // NOLINT: implicit on purpose
};
// Blocks the host until all work queued on `s` is done.
inline void synchronize(stream s) { MIXPREC_CUDA_CHECK(cudaStreamSynchronize(s.handle)); }
#else
struct stream {};
inline void synchronize(stream) {}
#endif

}  // namespace mixprec
