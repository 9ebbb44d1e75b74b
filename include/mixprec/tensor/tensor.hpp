// tensor<Storage, Compute>: an owning device tensor whose elements are
// stored in Storage (float, half, bfloat16, fp8) and computed on in Compute
// (float or double) by the element-wise operations. Memory comes from
// Thrust's device allocator; elements start at zero.
#pragma once

#include <cstddef>
#include <vector>

#include <mixprec/detail/memory.hpp>
#include <mixprec/tensor/elementwise.hpp>
#include <mixprec/tensor/tensor_view.hpp>

namespace mixprec {

template <class Storage, class Compute = float>
class tensor {
  static_assert(is_format_v<Storage>, "tensor: Storage must be float, half, bfloat16, fp8_e4m3 or fp8_e5m2");
  static_assert(detail::is_compute_v<Compute>, "tensor: Compute must be float or double");

 public:
  using storage_type = Storage;
  using compute_type = Compute;

  explicit tensor(mixprec::shape s) : shape_(s), data_(make(s)) {}

  // A tensor holding `values` rounded to Storage under `round`.
  template <class R = round_nearest_even>
  static tensor from_host(mixprec::shape s, const std::vector<float>& values, R round = {}) {
    detail::require(values.size() == s.size(), "tensor::from_host: ", values.size(), " values for shape ",
                    s.to_string(), " (", s.size(), " elements)");
    tensor t(s);
    std::vector<Storage> converted(values.size());
    for (std::size_t i = 0; i < values.size(); ++i) converted[i] = converter<Storage, R>{round}(values[i], i);
    detail::write_to_device(converted.data(), t.data(), converted.size());
    return t;
  }

  const mixprec::shape& shape() const { return shape_; }
  std::size_t size() const { return data_.size(); }
  Storage* data() { return detail::raw(data_); }
  const Storage* data() const { return detail::raw(data_); }

  tensor_view<Storage> view() { return {data(), shape_}; }
  tensor_view<const Storage> view() const { return {data(), shape_}; }
  operator tensor_view<Storage>() { return view(); }              // NOLINT: implicit on purpose
  operator tensor_view<const Storage>() const { return view(); }  // NOLINT: implicit on purpose

  // Element-wise operations in this tensor's Compute precision.
  template <class O = overflow_to_infinity, class R = round_nearest_even>
  void fill(Compute value, R round = {}, stream s = {}) {
    mixprec::fill<Compute, O>(view(), value, round, s);
  }
  template <class O = overflow_to_infinity, class F, class R = round_nearest_even>
  void apply(F f, R round = {}, stream s = {}) {
    mixprec::transform<Compute, O>(view(), view(), f, round, s);
  }
  // *this = src converted to Storage (shapes must match).
  template <class O = overflow_to_infinity, class S, class R = round_nearest_even>
  void assign(tensor_view<S> src, R round = {}, stream s = {}) {
    mixprec::cast<O>(view(), src, round, s);
  }

  std::vector<Storage> to_host(stream s = {}) const {
    std::vector<Storage> out(size());
    detail::copy_to_host(data(), out.data(), out.size(), s);
    return out;
  }
  std::vector<float> to_host_float(stream s = {}) const {
    const std::vector<Storage> raw = to_host(s);
    std::vector<float> out(raw.size());
    for (std::size_t i = 0; i < raw.size(); ++i) out[i] = to_float(raw[i]);
    return out;
  }

 private:
  static detail::device_buffer<Storage> make(const mixprec::shape& s) {
    const std::size_t n = s.size();
    if (n == 0)
      detail::require(false, "tensor: zero-size tensor of shape ", s.to_string(), " (every extent must be positive)");
    return detail::allocate<Storage>(n, "a tensor");
  }

  mixprec::shape shape_;
  detail::device_buffer<Storage> data_;
};

}  // namespace mixprec
