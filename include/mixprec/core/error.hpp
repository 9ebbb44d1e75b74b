// mixprec::error, the one exception type of the library, and the checks that
// raise it: argument validation on the host and CUDA runtime errors.
//
// Every check runs before any state is modified, so a throwing call leaves
// the objects it was given as they were.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>

#include <mixprec/core/config.hpp>

#if defined(MIXPREC_BACKEND_CUDA)
#include <cuda_runtime_api.h>
#endif

namespace mixprec {

class error : public std::runtime_error {
 public:
  explicit error(const std::string& what) : std::runtime_error("mixprec: " + what) {}
};

namespace detail {

template <class... Parts>
std::string concat(Parts&&... parts) {
  std::ostringstream os;
  (os << ... << std::forward<Parts>(parts));
  return os.str();
}

// Throws mixprec::error built from `parts` when `ok` is false.
template <class... Parts>
void require(bool ok, Parts&&... parts) {
  if (!ok) throw error(concat(std::forward<Parts>(parts)...));
}

// Runs f() and turns any other exception it throws (thrust::system_error
// from a Thrust algorithm, std::bad_alloc, ...) into mixprec::error naming
// `what`, so that callers catch one type.
template <class F>
decltype(auto) translate_errors(const char* what, F&& f) {
  try {
    return f();
  } catch (const error&) {
    throw;
  } catch (const std::exception& e) {
    throw error(concat(what, ": ", e.what()));
  }
}

#if defined(MIXPREC_BACKEND_CUDA)
inline void check_cuda(cudaError_t status, const char* what, const char* file, int line) {
  if (status != cudaSuccess)
    throw error(concat("CUDA error in ", what, " at ", file, ":", line, ": ", cudaGetErrorName(status), ": ",
                       cudaGetErrorString(status)));
}
#endif

}  // namespace detail

// For components and other extensions: throws mixprec::error with the
// parts streamed into one message when `ok` is false, e.g. in
// initial_scalars(): require(beta >= 0, "my_stage: beta must be >= 0 (got ", beta, ")").
template <class... Parts>
void require(bool ok, Parts&&... parts) {
  detail::require(ok, std::forward<Parts>(parts)...);
}
}  // namespace mixprec

#if defined(MIXPREC_BACKEND_CUDA)
// Checks a CUDA runtime call and throws mixprec::error on failure.
#define MIXPREC_CUDA_CHECK(call) ::mixprec::detail::check_cuda((call), #call, __FILE__, __LINE__)
// Checks that the last kernel launch was accepted.
#define MIXPREC_CHECK_LAUNCH(name) ::mixprec::detail::check_cuda(cudaGetLastError(), name, __FILE__, __LINE__)
#else
#define MIXPREC_CUDA_CHECK(call) ((void)0)
#define MIXPREC_CHECK_LAUNCH(name) ((void)0)
#endif
