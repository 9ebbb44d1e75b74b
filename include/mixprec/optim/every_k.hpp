// Gradient accumulation over k micro-batches, as a chain component (Optax's
// MultiSteps): each apply() with a micro-batch's gradients runs the chain up
// to every_k, which adds the update so far (e.g. the unscaled gradient) to an
// fp32 accumulator and ends the step there; the k-th accepted micro-batch
// passes the mean of the k on to the rest of the chain (clipping, optimizer),
// which then updates the weights once.
//
// Components before every_k act per micro-batch: a loss scaler unscales each
// micro-batch with its own scale, so a scale change between micro-batches
// (after an overflow) is handled; an overflowing micro-batch is skipped and
// not counted. The step count advances only on the k-th micro-batch.
//
// The other way to accumulate needs no component: let the backward pass add
// N micro-batches' scaled gradients into the arena and call apply() once.
#pragma once

#include <cstdint>

#include <mixprec/component/component.hpp>
#include <mixprec/core/error.hpp>
#include <mixprec/core/pinned_arithmetic.hpp>

MIXPREC_PINNED_BEGIN

namespace mixprec {

struct every_k {
  static constexpr const char* name = "every_k";
  struct traits : component_traits {
    static constexpr bool may_hold = true;
  };
  static constexpr state_field state[] = {{"accumulator", format_id::f32}};
  static constexpr field_id<field_index(state, "accumulator")> accumulator{};

  std::uint32_t k = 1;

  every_k() = default;
  explicit every_k(std::uint32_t steps) : k(steps) {}

  struct scalars {
    std::uint32_t phase;  // position of this micro-batch in its group, 1..k
  };
  scalars initial_scalars() const {
    detail::require(k >= 1, "every_k: k must be at least 1");
    return {0};
  }
  // A checkpoint's phase is at most the k it was saved with. With another
  // k, a checkpoint saved at the end of a group (or before the first)
  // starts a new group; one saved in the middle of a group is refused: its
  // accumulator holds a partial sum over the old k.
  scalars restored_scalars(scalars s, const scalars&, const every_k& saved_with) const {
    detail::require(s.phase <= saved_with.k, "every_k: the checkpoint's micro-batch ", s.phase,
                    " of a group of k = ", saved_with.k, " is past the group's end");
    if (saved_with.k == k) return s;
    detail::require(s.phase == 0 || s.phase == saved_with.k, "every_k: the checkpoint was saved after micro-batch ",
                    s.phase, " of a group of ", saved_with.k, "; it cannot continue with k = ", k,
                    ": load it with k = ", saved_with.k, ", or save at the end of a group");
    s.phase = 0;
    return s;
  }
  template <class Ctx>
  MIXPREC_HOST_DEVICE void decide(scalars& s, const Ctx& ctx) const {
    if (ctx.skipped()) return;  // a skipped micro-batch does not count
    s.phase = s.phase % k + 1;
    if (s.phase != k) ctx.hold();
  }
  template <class Ctx>
  MIXPREC_HOST_DEVICE float update(float u, const Ctx& ctx) const {
    const std::uint32_t phase = ctx.scalars().phase;
    // The running total; on the k-th micro-batch the mean (kept, so that a
    // later pass of the same step reads it back).
    const float acc = ctx.state(accumulator).update([&](float old) {
      const float total = (phase == 1 ? 0.0f : old) + u;
      return phase == k ? total / static_cast<float>(k) : total;
    });
    return phase == k ? acc : 0.0f;
  }
  template <class V>
  void visit_hyperparameters(V&& v) const {
    v("k", k);
  }
  template <class V>
  static void visit_scalars(scalars& s, V&& v) {
    v("phase", s.phase);
  }
};

}  // namespace mixprec

MIXPREC_PINNED_END
