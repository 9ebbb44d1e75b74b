// mixprec::error, the one exception type of the library, and the checks that
// raise it: argument validation on the host and CUDA runtime errors.
//
// Every check runs before any state is modified, so a throwing call leaves
// the objects it was given as they were.
#pragma once

#include <cstddef>
#include <cstdio>
#include <sstream>
#include <stdexcept>
#include <string>
#include <type_traits>
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

// One piece of an error message: a reference to an argument of a check
// and how to write it, formatted only when the check fails. The pieces are
// trivial to make and one function formats them all, so that a check
// instantiates no formatting code of its own (compile time: each distinct
// list of argument types used to instantiate an ostringstream). Numbers read
// as a std::ostream writes them (%g, six significant digits for floating
// point); bool as 1 or 0; other types through their operator<<.
class message_part {
 public:
  message_part(const char* s) : kind_(s != nullptr ? text : null_text) { v_.text = s; }
  message_part(const std::string& s) : kind_(sized_text), size_(s.size()) { v_.text = s.data(); }
  message_part(char c) : kind_(character) { v_.signed_number = c; }
  message_part(bool b) : kind_(text) { v_.text = b ? "1" : "0"; }
  template <class T, std::enable_if_t<std::is_integral_v<T> && std::is_signed_v<T>, int> = 0>
  message_part(T v) : kind_(signed_number) {
    v_.signed_number = v;
  }
  template <class T, std::enable_if_t<std::is_integral_v<T> && !std::is_signed_v<T>, int> = 0>
  message_part(T v) : kind_(unsigned_number) {
    v_.unsigned_number = v;
  }
  template <class T, std::enable_if_t<std::is_floating_point_v<T>, int> = 0>
  message_part(T v) : kind_(real) {
    v_.real = static_cast<double>(v);
  }
  template <class T, std::enable_if_t<!std::is_arithmetic_v<T> && !std::is_convertible_v<const T&, const char*> &&
                                          !std::is_convertible_v<const T&, const std::string&>,
                                      int> = 0>
  message_part(const T& v) : kind_(streamed), write_(&write_streamed<T>) {
    v_.object = &v;
  }

  void append_to(std::string& out) const {
    char b[64];
    switch (kind_) {
      case text:
        out += v_.text;
        break;
      case null_text:
        out += "(null)";
        break;
      case sized_text:
        out.append(v_.text, size_);
        break;
      case character:
        out += static_cast<char>(v_.signed_number);
        break;
      case signed_number:
        out += std::to_string(v_.signed_number);
        break;
      case unsigned_number:
        out += std::to_string(v_.unsigned_number);
        break;
      case real:
        std::snprintf(b, sizeof b, "%g", v_.real);
        out += b;
        break;
      case streamed:
        write_(out, v_.object);
        break;
    }
  }

 private:
  enum kind : unsigned char { text, null_text, sized_text, character, signed_number, unsigned_number, real, streamed };
  template <class T>
  static void write_streamed(std::string& out, const void* v) {
    std::ostringstream os;
    os << *static_cast<const T*>(v);
    out += os.str();
  }
  kind kind_;
  union {
    const char* text;
    long long signed_number;
    unsigned long long unsigned_number;
    double real;
    const void* object;
  } v_;
  union {
    std::size_t size_ = 0;
    void (*write_)(std::string&, const void*);
  };
};

inline std::string join_message(const message_part* parts, std::size_t n) {
  std::string out;
  for (std::size_t k = 0; k < n; ++k) parts[k].append_to(out);
  return out;
}

template <class... Parts>
std::string concat(const Parts&... parts) {
  if constexpr (sizeof...(Parts) == 0) {
    return {};
  } else {
    const message_part list[] = {message_part(parts)...};
    return join_message(list, sizeof...(Parts));
  }
}

// The failing side of a check, out of the caller's way.
[[noreturn]] __attribute__((noinline, cold)) inline void fail(const message_part* parts, std::size_t n) {
  throw error(join_message(parts, n));
}

template <class... Parts>
void require(bool ok, const Parts&... parts) {
  if (!ok) {
    if constexpr (sizeof...(Parts) == 0) {
      fail(nullptr, 0);
    } else {
      const message_part list[] = {message_part(parts)...};
      fail(list, sizeof...(Parts));
    }
  }
}

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
void require(bool ok, const Parts&... parts) {
  detail::require(ok, parts...);
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
