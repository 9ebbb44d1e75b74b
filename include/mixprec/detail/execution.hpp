// The Thrust execution policy for a stream, per backend. The CUDA policy is
// par_nosync: Thrust algorithms then never synchronise the host, which keeps
// a step free of host round trips and capturable in a CUDA graph.
#pragma once

#include <mixprec/core/config.hpp>
#include <mixprec/core/stream.hpp>

#if defined(MIXPREC_BACKEND_CUDA)
#include <thrust/system/cuda/execution_policy.h>
#elif defined(MIXPREC_BACKEND_OMP)
#include <thrust/system/omp/execution_policy.h>
#else
#include <thrust/system/cpp/execution_policy.h>
#endif

namespace mixprec::detail {

inline auto policy(stream s) {
#if defined(MIXPREC_BACKEND_CUDA)
  return thrust::cuda::par_nosync.on(s.handle);
#elif defined(MIXPREC_BACKEND_OMP)
  (void)s;
  return thrust::omp::par;
#else
  (void)s;
  return thrust::cpp::par;
#endif
}

}  // namespace mixprec::detail
