// The component protocol: what a loss scaler, a clipper, an optimizer stage
// or a schedule-driven stage provides so that train/chain.hpp can fold any
// sequence of them, at compile time, into one statistics pass, one scalar
// rule run on the device, and one update pass.
//
// Every component transforms the stream of updates (initially the gradient,
// as in Optax). A component is a small trivially copyable value type holding
// its hyperparameters; it derives from component_defaults and overrides what
// it needs:
//
//   static constexpr const char* name;          identifies it (checkpoints)
//   static constexpr rule_kind kind;             how its element rule behaves
//   static constexpr bool needs_non_finite;      wants the non-finite flag
//   static constexpr bool needs_global_norm;     wants ||input||_p (p = norm_order())
//   static constexpr bool needs_unit_norms;      wants per-unit ||input||, ||w||
//   static constexpr bool needs_segment_norms;   wants per-parameter ||input||, ||w||
//   static constexpr bool guards;                may skip the step
//   static constexpr bool linear;                elementwise rule is u -> c * u (commutes with norms)
//   static constexpr bool is_writer;             writes the weights (train/writers.hpp)
//   static constexpr bool replayable;            can recompute its output from stored state
//   static constexpr bool holds;                 may end a step early, after itself (every_k)
//   static constexpr bool can_bypass;            bypassed() (host) may switch the rule off entirely
//   struct scalars;                              its device-resident scalar state
//   scalars initial_scalars() const;             host; throws mixprec::error on bad hyperparameters
//   std::size_t state_slots() const;             per-element state arrays (moments)
//   float initial_state(std::size_t slot) const; their initial value
//   using state_format;                          their format (float or bfloat16)
//   void decide(scalars&, decide_context&) const;        the scalar rule, once per step on the device
//   float prepass(float u, const scalars&) const;        element rule in the statistics pass (kind elementwise)
//   float tile_factor(const scalars&, const tile_stats&) const;  per-tile value (unit/segment multipliers)
//   float apply(float u, element_io<...>&) const;        element rule in the update pass
//   float multiplier_of(const scalars&) const;           (kind multiplier) the decided multiplier
//
// Kinds:
//   elementwise      depends only on the element and on scalars known before
//                    this step's statistics (loss scale, clip by value): it
//                    is applied inside the statistics pass too;
//   multiplier       multiplies every element by one positive scalar decided
//                    from the statistics (clip by global norm): later norms
//                    are scaled by it instead of being measured again;
//   unit_multiplier  one positive scalar per unit (adaptive clipping);
//   stage            needs weights, per-element state or the step count
//                    (optimizer stages): runs in the update pass only.
//
// A component that needs statistics of an input produced by a stage (LAMB's
// trust ratio, clipping after Adam) splits the update pass in two: the first
// runs the stages and measures, the second replays the stages from their
// stored state (apply() is then called with io.replay set and must not write
// state) and finishes the chain.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>

#include <mixprec/cast/convert.hpp>
#include <mixprec/core/config.hpp>

namespace mixprec {

enum class rule_kind { elementwise, multiplier, unit_multiplier, stage };

// The order p of a norm: any p >= 1, or infinity_norm.
inline constexpr float infinity_norm = std::numeric_limits<float>::infinity();

// Chain-level per-step state, on the device.
struct step_scalars {
  std::uint64_t count = 0;          // completed updates (not skipped, not held)
  std::uint64_t skipped_total = 0;  // steps skipped so far
  std::uint32_t skip = 0;           // this step is skipped (set by guards)
  std::uint32_t non_finite = 0;     // this step's statistics saw inf or NaN
  std::uint32_t hold = 0;           // this step only accumulates (every_k before the update)
  std::uint32_t reserved = 0;
};

// Per-group multipliers of the hyperparameters (e.g. no weight decay on biases).
struct group_hyper {
  float lr_scale = 1.0f;
  float weight_decay_scale = 1.0f;
};

// What a component's scalar rule sees.
struct decide_context {
  step_scalars* step;  // guards set step->skip
  std::uint64_t t;     // the number of this step if it completes (count + 1)
  double norm;         // the component's measured global norm of its input (if it asked)
  bool non_finite;     // a gradient element or a measured norm is inf/NaN this step
};

// What tile_factor() sees: per-unit and per-segment sums of squares of the
// component's input and of the weights, when the component asked for them.
struct tile_stats {
  double unit_input_sq, unit_weight_sq;
  double segment_input_sq, segment_weight_sq;
  std::uint32_t segment, unit;
};

// Per-element state of a component: up to 4 arrays of F in the arena layout.
template <class F>
struct state_arrays {
  F* slot[4];
  std::uint64_t seed;  // stochastic rounding key of narrow state formats
};

// One element's view of its component's state. Narrow formats (bfloat16
// moments) are written with stochastic rounding keyed on (seed + slot, step,
// index); store() returns the value as stored, so later arithmetic sees
// exactly what the next step will load.
template <class F>
struct state_ref {
  const state_arrays<F>* arrays;
  std::size_t index;
  std::uint64_t stream;
  MIXPREC_HOST_DEVICE float load(int k) const { return to_float(arrays->slot[k][index]); }
  MIXPREC_HOST_DEVICE float store(int k, float v) const {
    if constexpr (std::is_same_v<F, float>) {
      arrays->slot[k][index] = v;
      return v;
    } else {
      const F r = convert<F>(v, round_stochastic{arrays->seed + static_cast<std::uint64_t>(k), stream}, index);
      arrays->slot[k][index] = r;
      return to_float(r);
    }
  }
};

// What a component's element rule sees in the update pass.
template <class Scalars, class F>
struct element_io {
  const Scalars& scalars;     // the component's decided scalars
  state_ref<F> state;         // its per-element state
  std::size_t index;          // arena index of the element
  float weight;               // current weight (fp32 master, or the model value)
  float tile_factor;          // the component's tile_factor() for this tile
  const group_hyper& group;   // the element's group multipliers
  std::uint64_t t;            // the number of the step being applied (1 for the first)
  bool replay;                // recomputing the output from stored state: write nothing
  float* weight_factor;       // the weight is multiplied by this before the update is added
};

// Defaults for every protocol member; components derive and override.
struct component_defaults {
  struct scalars {
    std::uint32_t unused = 0;
  };
  static constexpr rule_kind kind = rule_kind::elementwise;
  static constexpr bool needs_non_finite = false;
  static constexpr bool needs_global_norm = false;
  static constexpr bool needs_unit_norms = false;
  static constexpr bool needs_segment_norms = false;
  static constexpr bool guards = false;
  static constexpr bool linear = true;
  static constexpr bool is_writer = false;
  static constexpr bool replayable = true;  // apply() in replay mode reproduces its output
  static constexpr bool holds = false;
  static constexpr bool can_bypass = false;  // see bypassed()
  using state_format = float;

  MIXPREC_HOST_DEVICE float norm_order() const { return 2.0f; }
  std::size_t state_slots() const { return 0; }
  float initial_state(std::size_t) const { return 0.0f; }
  // True when the options make the element rule the identity (SGD without
  // momentum): the update pass is then instantiated without it, so that no
  // element loop branches on an option (host loops vectorise).
  bool bypassed() const { return false; }

  template <class S>
  MIXPREC_HOST_DEVICE void decide(S&, decide_context&) const {}
  template <class S>
  MIXPREC_HOST_DEVICE float prepass(float u, const S&) const { return u; }
  template <class S>
  MIXPREC_HOST_DEVICE float tile_factor(const S&, const tile_stats&) const { return 1.0f; }
  template <class S>
  MIXPREC_HOST_DEVICE float multiplier_of(const S&) const { return 1.0f; }
};

namespace detail {

// Inverse scale as PyTorch computes it: the reciprocal in double, rounded to float.
MIXPREC_HOST_DEVICE float reciprocal_as_pytorch(float scale) {
  return static_cast<float>(1.0 / static_cast<double>(scale));
}

MIXPREC_HOST_DEVICE bool finite(double x) { return x - x == 0.0; }

}  // namespace detail
}  // namespace mixprec
