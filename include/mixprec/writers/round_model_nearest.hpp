// round_model_nearest: the default writer (writers/writer.hpp). With fp32
// master weights, master += update and the model copy is the master rounded
// to nearest even (8-bit model copies saturate instead of overflowing);
// without master weights the model is rounded to nearest (small updates stall).
#pragma once

#include <mixprec/cast/convert.hpp>
#include <mixprec/core/pinned_arithmetic.hpp>
#include <mixprec/writers/writer.hpp>

MIXPREC_PINNED_BEGIN

namespace mixprec {

struct round_model_nearest {
  static constexpr const char* name = "round_model_nearest";
  using traits = writer_traits;
  static constexpr bool works_with_master = true;
  static constexpr bool needs_narrow_model = false;
  template <class Model, class Ctx>
  MIXPREC_HOST_DEVICE Model round_weight(float v, const Ctx&) const {
    return convert<Model, weight_overflow<Model>>(v);
  }
  template <class Model, class Ctx>
  MIXPREC_HOST_DEVICE Model write_weight(float, float updated, float, const Ctx&) const {
    return convert<Model, weight_overflow<Model>>(updated);
  }
};

}  // namespace mixprec

MIXPREC_PINNED_END
