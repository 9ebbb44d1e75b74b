// A single value in device memory: where reductions and step decisions
// (loss scale, skip flag, norms) live, so that nothing reaches the host
// unless it is asked for. get() is the explicit, synchronising read-back.
#pragma once

#include <mixprec/core/stream.hpp>
#include <mixprec/detail/memory.hpp>

namespace mixprec {

template <class T>
class device_scalar {
 public:
  explicit device_scalar(T initial = T{}) : value_(detail::allocate<T>(1, "a device scalar")) { set(initial); }

  T* data() { return detail::raw(value_); }
  const T* data() const { return detail::raw(value_); }

  // Copies the value to the host after the work queued on `s` finishes;
  // without a stream, after the work on the stream of the library call
  // that last wrote it (a reduction, set()).
  T get() const { return get(last_); }
  T get(stream s) const { return detail::read_back(data(), s); }
  void set(T v, stream s = {}) {
    detail::write_to_device(&v, data(), 1, s);
    last_ = s;
  }
  // Records that work on `s` writes the value (the reductions call it).
  void written_on(stream s) { last_ = s; }

 private:
  detail::device_buffer<T> value_;
  stream last_{};
};

}  // namespace mixprec
