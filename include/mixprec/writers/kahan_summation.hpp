// kahan_summation<F>: a writer (writers/writer.hpp) for chains without
// master weights: Kahan-compensated updates of the low-precision weights,
// the low part each update lost kept in a compensation field of format F.
#pragma once

#include <type_traits>

#include <mixprec/cast/convert.hpp>
#include <mixprec/component/component.hpp>
#include <mixprec/core/pinned_arithmetic.hpp>
#include <mixprec/format/format_traits.hpp>
#include <mixprec/writers/writer.hpp>

MIXPREC_PINNED_BEGIN

namespace mixprec {

template <class F = bfloat16>
struct kahan_summation {
  static_assert(std::is_same_v<F, float> || std::is_same_v<F, bfloat16>,
                "kahan_summation: the compensation is float or bfloat16");
  static constexpr const char* name = "kahan_summation";
  using traits = writer_traits;
  static constexpr bool works_with_master = false;
  static constexpr bool needs_narrow_model = false;
  // The low part each weight lost, rounded to nearest (it is a correction).
  static constexpr state_field state[] = {
      {"compensation", format_traits<F>::id, extent::element, parameter_set::all, true, false}};
  static constexpr field_id<field_index(state, "compensation")> compensation{};
  template <class Model, class Ctx>
  MIXPREC_HOST_DEVICE Model round_weight(float v, const Ctx&) const {
    return convert<Model>(v);
  }
  template <class Model, class Ctx>
  MIXPREC_HOST_DEVICE Model write_weight(float w, float, float step, const Ctx& ctx) const {
    // Kahan: fold the carried error into the update, round, keep the new error.
    const auto carried = ctx.state(compensation);
    const float y = step - carried.get();
    const Model rounded = convert<Model>(w + y);
    carried.set((to_float(rounded) - w) - y);
    return rounded;
  }
};

}  // namespace mixprec

MIXPREC_PINNED_END
