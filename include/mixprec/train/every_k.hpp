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

namespace mixprec {

struct every_k : component_defaults {
  static constexpr const char* name = "every_k";
  static constexpr rule_kind kind = rule_kind::stage;
  static constexpr bool holds = true;

  std::uint32_t k = 1;

  every_k() = default;
  explicit every_k(std::uint32_t steps) : k(steps) {}

  struct scalars {
    std::uint32_t phase;  // position of this micro-batch in its group, 1..k
  };
  std::size_t state_slots() const { return 1; }
  scalars initial_scalars() const {
    detail::require(k >= 1, "every_k: k must be at least 1");
    return {0};
  }
  MIXPREC_HOST_DEVICE void decide(scalars& s, decide_context& ctx) const {
    if (ctx.step->skip) return;  // a skipped micro-batch does not count
    s.phase = s.phase % k + 1;
    ctx.step->hold = s.phase != k ? 1u : 0u;
  }
  template <class IO>
  MIXPREC_HOST_DEVICE float apply(float u, IO& io) const {
    const std::uint32_t phase = io.scalars.phase;
    if (io.replay) return phase == k ? io.state.load(0) : 0.0f;
    const float total = (phase == 1 ? 0.0f : io.state.load(0)) + u;
    if (phase != k) {
      io.state.store(0, total);
      return 0.0f;
    }
    // Keep the mean: a replaying pass after a split reads it back.
    return io.state.store(0, total / static_cast<float>(k));
  }
};

}  // namespace mixprec
