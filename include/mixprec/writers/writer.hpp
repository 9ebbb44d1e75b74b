// Weight writers: the last element of a step, writing the updated weights
// (this folder: one writer per header; this one says what a writer is).
// At most one per chain; without one, round_model_nearest is used.
//
//   round_model_nearest     with fp32 master weights: master += update, the
//                           model copy is the master rounded to nearest even
//                           (8-bit model copies saturate instead of
//                           overflowing); without master weights: the model
//                           is rounded to nearest (small updates stall);
//   round_model_stochastic<G>  the same with stochastic rounding keyed on
//                           (seed, step, element), its bits from generator
//                           G (cast/generator.hpp; SplitMix64 by default):
//                           without master weights the model tracks the
//                           fp32 trajectory in expectation;
//   kahan_summation<F>      without master weights: Kahan-compensated
//                           updates of the low-precision weights, the lost
//                           low part kept in a compensation field of format F.
//
// A writer is a component with traits::writes_weights and two rules, both
// given the element's context (state, index, step):
//   Model round_weight<Model>(float master, ctx)                 the model copy of fp32 master weights
//   Model write_weight<Model>(float w, float updated, float step, ctx)   without master weights:
//         the new weight from the old one (w), its exact update (updated = w * decay + u)
//         and the change (step = updated - w)
// plus works_with_master (false: the arena must have no master weights) and
// needs_narrow_model (true: the model copy must be narrower than float).
#pragma once

#include <mixprec/component/component.hpp>

namespace mixprec {

struct writer_traits : component_traits {
  static constexpr bool writes_weights = true;
};

}  // namespace mixprec
