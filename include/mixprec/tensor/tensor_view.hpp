// Non-owning views over device memory: a pointer and a shape. Views let the
// library work on memory it did not allocate (a user's cudaMalloc buffer, a
// thrust::device_vector, a segment of the parameter arena).
#pragma once

#include <cstddef>
#include <type_traits>
#include <vector>

// Before any Thrust header: it selects Thrust's device system.
#include <mixprec/core/config.hpp>

#include <thrust/device_vector.h>

#include <mixprec/cast/convert.hpp>
#include <mixprec/core/error.hpp>
#include <mixprec/detail/memory.hpp>
#include <mixprec/format/format_traits.hpp>
#include <mixprec/tensor/shape.hpp>

namespace mixprec {

template <class T>
class tensor_view {
 public:
  using value_type = std::remove_const_t<T>;
  static_assert(is_format_v<value_type>, "tensor_view: element type must be a mixprec format");

  tensor_view() = default;
  tensor_view(T* data, mixprec::shape s) : data_(data), shape_(s), size_(s.size()) {
    if (data_ == nullptr && size_ != 0)
      detail::require(false, "tensor_view: null pointer for ", shape_.to_string(), " elements");
  }
  tensor_view(T* data, std::size_t n) : tensor_view(data, mixprec::shape{n}) {}
  // A view of a whole thrust::device_vector, as a rank-1 tensor.
  template <class U, class A, class = std::enable_if_t<std::is_same_v<std::remove_const_t<U>, value_type>>>
  tensor_view(thrust::device_vector<U, A>& v)  // NOLINT: implicit on purpose
      : tensor_view(thrust::raw_pointer_cast(v.data()), v.size()) {}
  // Mutable views convert to const views.
  template <class U, class = std::enable_if_t<std::is_const_v<T> && std::is_same_v<U, value_type>>>
  tensor_view(const tensor_view<U>& other)  // NOLINT: implicit on purpose
      : data_(other.data()), shape_(other.shape()), size_(other.size()) {}

  T* data() const { return data_; }
  const mixprec::shape& shape() const { return shape_; }
  std::size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }

  // Copies between the viewed (device) memory and the host, on every
  // backend; each waits for the work queued on `s`. Values written from
  // float are rounded to nearest even (8-bit formats saturate).
  std::vector<value_type> to_host(stream s = {}) const {
    std::vector<value_type> out(size_);
    detail::copy_to_host(static_cast<const value_type*>(data_), out.data(), size_, s);
    return out;
  }
  std::vector<float> to_host_float(stream s = {}) const {
    const std::vector<value_type> raw = to_host(s);
    std::vector<float> out(raw.size());
    for (std::size_t i = 0; i < raw.size(); ++i) out[i] = to_float(raw[i]);
    return out;
  }
  void from_host(const std::vector<value_type>& values, stream s = {}) const {
    static_assert(!std::is_const_v<T>, "tensor_view::from_host: the view is read-only (const elements)");
    detail::require(values.size() == size_, "tensor_view::from_host: ", values.size(), " values for shape ",
                    shape_.to_string());
    detail::write_to_device(values.data(), data_, size_, s);
  }
  void from_host_float(const std::vector<float>& values, stream s = {}) const {
    static_assert(!std::is_const_v<T>, "tensor_view::from_host_float: the view is read-only (const elements)");
    detail::require(values.size() == size_, "tensor_view::from_host_float: ", values.size(), " values for shape ",
                    shape_.to_string());
    std::vector<value_type> narrow(size_);
    for (std::size_t i = 0; i < size_; ++i) narrow[i] = convert<value_type, weight_overflow<value_type>>(values[i]);
    detail::write_to_device(narrow.data(), data_, size_, s);
  }

  // Elements [offset, offset + count) as a rank-1 view.
  tensor_view subview(std::size_t offset, std::size_t count) const {
    if (offset > size_ || count > size_ - offset)
      detail::require(false, "view [", offset, ", ", offset + count, ") is past the end of a tensor of ", size_,
                      " elements ", shape_.to_string());
    return tensor_view(data_ + offset, mixprec::shape{count});
  }
  // The same elements under another shape of equal size.
  tensor_view reshape(mixprec::shape s) const {
    if (s.size() != size_)
      detail::require(false, "cannot reshape ", shape_.to_string(), " (", size_, " elements) to ", s.to_string(), " (",
                      s.size(), " elements)");
    return tensor_view(data_, s);
  }

 private:
  T* data_ = nullptr;
  mixprec::shape shape_{std::size_t{0}};
  std::size_t size_ = 0;
};

namespace detail {
// Throws unless a and b have equal shapes; `what` names the operation.
template <class A, class B>
void require_same_shape(const tensor_view<A>& a, const tensor_view<B>& b, const char* what) {
  if (a.shape() != b.shape())
    require(false, what, ": shape mismatch ", a.shape().to_string(), " vs ", b.shape().to_string());
}
}  // namespace detail

}  // namespace mixprec
