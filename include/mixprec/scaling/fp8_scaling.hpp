// FP8 scaling recipes, with Transformer Engine's semantics, for the tensors a
// user casts to fp8 in the forward and backward passes.
//
// A scaler holds, on the device, a scale, its inverse and an amax history.
// quantize(src, dst) writes dst = fp8(src * scale) (saturating, as TE) and
// records max |src| into the history's newest slot, in the same pass.
//
//   delayed scaling  update() after the step: amax = max of the history
//                    (or its newest entry, most_recent); the history rolls
//                    by one and its newest slot is cleared; then
//                    scale = fp8_max / amax / 2^margin, kept when amax is 0
//                    or not finite; scale_inv = 1 / scale.
//   current scaling  quantize_current(src, dst): amax of src first, the new
//                    scale from it (same rule), then the cast: two passes,
//                    no history.
//
// Formats: E4M3 (max 448), E5M2 (max 57344); the HYBRID recipe uses E4M3 for
// forward tensors and E5M2 for gradients: pick the scaler's format per tensor
// with fp8_recipe_format(recipe, is_gradient).
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <type_traits>

#include <mixprec/cast/convert.hpp>
#include <mixprec/core/pinned_arithmetic.hpp>
#include <mixprec/detail/for_each.hpp>
#include <mixprec/detail/memory.hpp>
#include <mixprec/detail/reduce.hpp>
#include <mixprec/tensor/reductions.hpp>
#include <mixprec/tensor/tensor_view.hpp>

MIXPREC_PINNED_BEGIN

namespace mixprec {

enum class fp8_recipe { e4m3, e5m2, hybrid };
enum class amax_algorithm { max, most_recent };

struct fp8_delayed_scaling {
  std::uint32_t margin = 0;
  std::uint32_t history_length = 1024;
  amax_algorithm algorithm = amax_algorithm::max;
  fp8_recipe recipe = fp8_recipe::hybrid;
};

// The storage format a tensor gets under a recipe.
enum class fp8_kind { e4m3, e5m2 };
inline fp8_kind fp8_recipe_format(fp8_recipe r, bool is_gradient) {
  if (r == fp8_recipe::e4m3) return fp8_kind::e4m3;
  if (r == fp8_recipe::e5m2) return fp8_kind::e5m2;
  return is_gradient ? fp8_kind::e5m2 : fp8_kind::e4m3;
}

namespace detail {

struct fp8_meta {
  float* history;  // [length], history[0] is the current step's amax
  float* scale;
  float* scale_inv;
  float* amax_used;
  std::uint32_t length;
};

// TE's scale rule: fp8_max / amax / 2^margin, keeping the previous scale
// when amax is zero or not finite (or the result is not finite).
MIXPREC_HOST_DEVICE float fp8_scale_from_amax(float amax, float previous, float fp8_max, std::uint32_t margin) {
  // ldexpf scales by 2^-margin exactly on every backend (exp2f is an
  // approximation on the GPU).
  const float sf = ldexpf(fp8_max / amax, -static_cast<int>(margin));
  const bool keep = !(amax > 0.0f) || !(amax - amax == 0.0f) || !(sf - sf == 0.0f);
  return keep ? previous : sf;
}

struct fp8_update_body {
  fp8_meta m;
  float fp8_max;
  std::uint32_t margin;
  bool most_recent;
  MIXPREC_HOST_DEVICE void operator()(std::size_t) const {
    float amax = m.history[0];
    if (!most_recent)
      for (std::uint32_t k = 1; k < m.length; ++k) amax = max_nan(amax, m.history[k]);
    // Roll by one toward the past; the newest slot starts the next step at 0.
    for (std::uint32_t k = m.length - 1; k > 0; --k) m.history[k] = m.history[k - 1];
    m.history[0] = 0.0f;
    *m.amax_used = amax;
    *m.scale = fp8_scale_from_amax(amax, *m.scale, fp8_max, margin);
    *m.scale_inv = 1.0f / *m.scale;
  }
};

struct fp8_current_body {
  fp8_meta m;
  const float* amax;
  float fp8_max;
  std::uint32_t margin;
  MIXPREC_HOST_DEVICE void operator()(std::size_t) const {
    *m.amax_used = *amax;
    *m.scale = fp8_scale_from_amax(*amax, *m.scale, fp8_max, margin);
    *m.scale_inv = 1.0f / *m.scale;
  }
};

template <class S, class F8>
struct fp8_quantize_op {
  using value_type = float;
  const S* src;
  F8* dst;
  const float* scale;
  MIXPREC_HOST_DEVICE float identity() const { return 0.0f; }
  MIXPREC_HOST_DEVICE void accumulate(float& acc, std::size_t i) const {
    const float x = to_float(src[i]);
    dst[i] = convert<F8, overflow_saturate>(x * *scale);
    acc = max_nan(acc, fabsf(x));
  }
  MIXPREC_HOST_DEVICE float combine(const float& a, const float& b) const { return max_nan(a, b); }
};

struct fp8_record_amax {
  float* history;
  const float* amax;
  MIXPREC_HOST_DEVICE void operator()(std::size_t) const { history[0] = max_nan(history[0], *amax); }
};

template <class F8, class D>
struct fp8_dequantize_body {
  const F8* src;
  D* dst;
  const float* scale_inv;
  MIXPREC_HOST_DEVICE void operator()(std::size_t i) const { dst[i] = convert<D>(to_float(src[i]) * *scale_inv); }
};

}  // namespace detail

// Scaling state of one fp8 tensor.
class fp8_scaler {
 public:
  fp8_scaler(fp8_kind kind, fp8_delayed_scaling recipe = {}) : kind_(kind), recipe_(recipe) {
    detail::require(recipe.history_length >= 1, "fp8_scaler: history_length must be at least 1");
    detail::require(recipe.margin < 64, "fp8_scaler: margin must be below 64 (got ", recipe.margin, ")");
    history_ = detail::allocate<float>(recipe.history_length, "an amax history");
    scalars_ = detail::allocate<float>(4, "fp8 scaling factors");  // scale, scale_inv, amax_used, amax scratch
    const float init[4] = {1.0f, 1.0f, 0.0f, 0.0f};
    detail::write_to_device(init, detail::raw(scalars_), 4);
  }

  // Sizes the scaler's reduction workspace for tensors of up to `elements`
  // elements, so that quantize and quantize_current allocate nothing: call it
  // before capturing them in a CUDA graph (an allocation cannot be captured).
  void reserve(std::size_t elements) { ws_.reserve(reduction_workspace_bytes(elements)); }
  std::size_t workspace_bytes() const { return ws_.capacity(); }

  float fp8_max() const {
    return kind_ == fp8_kind::e4m3 ? format_traits<fp8_e4m3>::max() : format_traits<fp8_e5m2>::max();
  }

  // dst = fp8(src * scale), saturating; records max |src| for the next update().
  template <class S, class F8>
  void quantize(tensor_view<S> src, tensor_view<F8> dst, stream s = {}) {
    check<F8>(src, dst);
    using U = std::remove_const_t<S>;
    const detail::fp8_quantize_op<U, F8> op{src.data(), dst.data(), scale_data()};
    detail::transform_reduce(s, ws_, src.size(), op, amax_scratch());
    detail::run_single(s, detail::fp8_record_amax{detail::raw(history_), amax_scratch()});
  }

  // Delayed scaling: the new scale from the amax history (call once per step).
  void update(stream s = {}) {
    detail::run_single(s, detail::fp8_update_body{meta(), fp8_max(), recipe_.margin,
                                                  recipe_.algorithm == amax_algorithm::most_recent});
  }

  // Current scaling: amax of src, the scale from it, then the cast.
  template <class S, class F8>
  void quantize_current(tensor_view<S> src, tensor_view<F8> dst, stream s = {}) {
    check<F8>(src, dst);
    max_abs(src, amax_scratch(), ws_, s);
    detail::run_single(s, detail::fp8_current_body{meta(), amax_scratch(), fp8_max(), recipe_.margin});
    using U = std::remove_const_t<S>;
    detail::transform_reduce(s, ws_, src.size(), detail::fp8_quantize_op<U, F8>{src.data(), dst.data(), scale_data()},
                             amax_scratch());
  }

  // dst = src * scale_inv, in dst's format.
  template <class F8, class D>
  void dequantize(tensor_view<F8> src, tensor_view<D> dst, stream s = {}) const {
    detail::require_same_shape(src, dst, "fp8_scaler::dequantize");
    using U = std::remove_const_t<F8>;
    detail::for_each_index(s, src.size(), detail::fp8_dequantize_body<U, D>{src.data(), dst.data(), scale_inv_data()});
  }

  // Device values (for kernels that scale on their own) and explicit host reads.
  const float* scale_data() const { return detail::raw(scalars_); }
  const float* scale_inv_data() const { return detail::raw(scalars_) + 1; }
  float scale(stream s = {}) const { return detail::read_back(scale_data(), s); }
  float scale_inv(stream s = {}) const { return detail::read_back(scale_inv_data(), s); }
  float amax_used(stream s = {}) const { return detail::read_back(detail::raw(scalars_) + 2, s); }
  float history(std::size_t k, stream s = {}) const {
    detail::require(k < recipe_.history_length, "fp8_scaler::history: index ", k, " beyond the history length ",
                    recipe_.history_length);
    return detail::read_back(detail::raw(history_) + k, s);
  }
  // Records an amax observed elsewhere (e.g. by a user's kernel) for this step.
  void record_amax(float amax, stream s = {}) {
    detail::write_to_device(&amax, amax_scratch(), 1, s);
    detail::run_single(s, detail::fp8_record_amax{detail::raw(history_), amax_scratch()});
  }

 private:
  template <class F8, class S>
  void check(const tensor_view<S>& src, const tensor_view<F8>& dst) const {
    static_assert(std::is_same_v<F8, fp8_e4m3> || std::is_same_v<F8, fp8_e5m2>,
                  "fp8_scaler: the destination must be fp8");
    detail::require((std::is_same_v<F8, fp8_e4m3>) == (kind_ == fp8_kind::e4m3),
                    "fp8_scaler: the destination's fp8 format differs from the scaler's");
    detail::require_same_shape(src, dst, "fp8_scaler::quantize");
  }
  float* amax_scratch() { return detail::raw(scalars_) + 3; }
  detail::fp8_meta meta() {
    return {detail::raw(history_), detail::raw(scalars_), detail::raw(scalars_) + 1, detail::raw(scalars_) + 2,
            recipe_.history_length};
  }

  fp8_kind kind_;
  fp8_delayed_scaling recipe_;
  detail::device_buffer<float> history_, scalars_;
  workspace ws_;
};

}  // namespace mixprec

MIXPREC_PINNED_END
