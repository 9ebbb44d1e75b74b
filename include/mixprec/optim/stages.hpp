// Optimizer stages: element-wise transformations of the update, composed by
// chain() (Optax's scale_by_* / add_* vocabulary). Each follows its
// reference's update order; the named optimizers in optim/optimizers.hpp are
// chains of them.
//
//   scale_by_constant{c}                  u *= c (maximize: c = -1)
//   add_decayed_weights{wd}               u += wd * w           (L2 in Adam/SGD, LAMB, Lion)
//   decoupled_weight_decay<S>{wd, lr}     w *= 1 - lr(s) * wd before the update is added (PyTorch AdamW)
//   trace<F>{momentum, dampening, nesterov}   PyTorch SGD momentum, first step buf = u
//   scale_by_adam<F>{b1, b2, eps, amsgrad}    PyTorch Adam: (m / bc1) / (sqrt(v) / sqrt(bc2) + eps)
//   scale_by_rss<F>{eps, initial}         PyTorch Adagrad: u / (sqrt(sum u^2) + eps)
//   scale_by_lion<F>{b1, b2}              Lion: sign(b1 m + (1 - b1) u), m = b2 m + (1 - b2) u
//   scale_by_trust_ratio{}                LAMB: u *= ||w|| / ||u|| per parameter (1 if either is 0)
//   scale_by_learning_rate<S>{lr}         u *= -lr(s)
//
// F is the format of the per-element state (float or bfloat16; bfloat16 is
// written with stochastic rounding). Weight decay and learning rate follow
// the arena's group multipliers (chain_state::set_group).
#pragma once

#include <cmath>
#include <cstdint>
#include <type_traits>

#include <mixprec/component/component.hpp>
#include <mixprec/core/error.hpp>
#include <mixprec/optim/schedules.hpp>

namespace mixprec {

namespace detail {
template <class F>
inline constexpr bool is_state_format_v = std::is_same_v<F, float> || std::is_same_v<F, bfloat16>;

template <class S>
void validate_schedule(const S& s) {
  if constexpr (std::is_same_v<decltype(s.validate()), void>) s.validate();
}
}  // namespace detail

struct stage_defaults : component_defaults {
  static constexpr rule_kind kind = rule_kind::stage;
};

struct scale_by_constant : stage_defaults {
  static constexpr const char* name = "scale_by_constant";
  float factor = 1.0f;
  scale_by_constant() = default;
  explicit scale_by_constant(float c) : factor(c) {}
  scalars initial_scalars() const {
    detail::require(std::isfinite(factor), "scale_by_constant: the factor must be finite");
    return {};
  }
  template <class IO>
  MIXPREC_HOST_DEVICE float apply(float u, IO&) const { return u * factor; }  // exact for factor 1
};

struct add_decayed_weights : stage_defaults {
  static constexpr const char* name = "add_decayed_weights";
  float weight_decay = 0.0f;
  add_decayed_weights() = default;
  explicit add_decayed_weights(float wd) : weight_decay(wd) {}
  scalars initial_scalars() const {
    detail::require(weight_decay >= 0 && std::isfinite(weight_decay), "add_decayed_weights: weight_decay must be >= 0");
    return {};
  }
  template <class IO>
  MIXPREC_HOST_DEVICE float apply(float u, IO& io) const {
    return u + io.weight * (weight_decay * io.group.weight_decay_scale);  // adds 0 without decay
  }
};

template <class Schedule = constant_schedule>
struct decoupled_weight_decay : stage_defaults {
  static constexpr const char* name = "decoupled_weight_decay";
  float weight_decay = 0.0f;
  Schedule lr{};
  struct scalars {
    float lr;
  };
  scalars initial_scalars() const {
    detail::require(weight_decay >= 0 && std::isfinite(weight_decay), "decoupled_weight_decay: weight_decay must be >= 0");
    detail::validate_schedule(lr);
    return {lr(0)};
  }
  MIXPREC_HOST_DEVICE void decide(scalars& s, decide_context& ctx) const { s.lr = lr(ctx.t - 1); }
  template <class IO>
  MIXPREC_HOST_DEVICE float apply(float u, IO& io) const {
    // PyTorch AdamW: param.mul_(1 - lr * weight_decay), the factor in double, applied in float.
    const double factor = 1.0 - static_cast<double>(io.scalars.lr * io.group.lr_scale) *
                                    static_cast<double>(weight_decay * io.group.weight_decay_scale);
    *io.weight_factor *= static_cast<float>(factor);
    return u;
  }
};

template <class F = float>
struct trace : stage_defaults {
  static_assert(detail::is_state_format_v<F>, "trace: the momentum buffer is float or bfloat16");
  static constexpr const char* name = "trace";
  using state_format = F;
  float momentum = 0.0f, dampening = 0.0f;
  bool nesterov = false;
  std::size_t state_slots() const { return momentum != 0.0f ? 1 : 0; }
  scalars initial_scalars() const {
    detail::require(momentum >= 0 && momentum < 1, "trace: momentum must lie in [0, 1) (got ", momentum, ")");
    detail::require(dampening >= 0 && dampening <= 1, "trace: dampening must lie in [0, 1]");
    detail::require(!nesterov || (momentum > 0 && dampening == 0), "trace: Nesterov momentum requires a momentum and zero dampening");
    return {};
  }
  // Without momentum there is no buffer and no rule.
  static constexpr bool can_bypass = true;
  bool bypassed() const { return momentum == 0.0f; }
  template <class IO>
  MIXPREC_HOST_DEVICE float apply(float u, IO& io) const {
    const float old = io.state.load(0);
    // PyTorch: the first step copies the gradient (no dampening).
    float buf = io.replay ? old : (io.t == 1 ? u : old * momentum + u * (1.0f - dampening));
    if (!io.replay) buf = io.state.store(0, buf);
    return nesterov ? u + buf * momentum : buf;
  }
};

template <class F = float>
struct scale_by_adam : stage_defaults {
  static_assert(detail::is_state_format_v<F>, "scale_by_adam: moments are float or bfloat16");
  static constexpr const char* name = "scale_by_adam";
  using state_format = F;
  float b1 = 0.9f, b2 = 0.999f, eps = 1e-8f;
  bool amsgrad = false;
  struct scalars {
    float bias_correction1, bias_correction2_sqrt;
  };
  std::size_t state_slots() const { return amsgrad ? 3 : 2; }
  scalars initial_scalars() const {
    detail::require(b1 >= 0 && b1 < 1, "scale_by_adam: b1 must lie in [0, 1) (got ", b1, ")");
    detail::require(b2 >= 0 && b2 < 1, "scale_by_adam: b2 must lie in [0, 1) (got ", b2, ")");
    // eps = 0 divides 0 by 0 where the second moment is 0 (PyTorch accepts it; we do not).
    detail::require(eps > 0 && std::isfinite(eps), "scale_by_adam: eps must be finite and positive (got ", eps,
                    "): with eps = 0 an element whose gradients were all zero becomes 0 / 0 = NaN");
    return {1.0f, 1.0f};
  }
  MIXPREC_HOST_DEVICE void decide(scalars& s, decide_context& ctx) const {
    // As PyTorch: bias corrections in double (Python floats), then used in float.
    const double t = static_cast<double>(ctx.t);
    s.bias_correction1 = static_cast<float>(1.0 - pow(static_cast<double>(b1), t));
    s.bias_correction2_sqrt = static_cast<float>(sqrt(1.0 - pow(static_cast<double>(b2), t)));
  }
  template <class IO>
  MIXPREC_HOST_DEVICE float apply(float u, IO& io) const {
    float m = io.state.load(0), v = io.state.load(1);
    if (!io.replay) {
      m = io.state.store(0, m * b1 + u * (1.0f - b1));
      v = io.state.store(1, v * b2 + u * u * (1.0f - b2));
    }
    // amsgrad: the running max of the raw second moment, as PyTorch. Without
    // amsgrad the max slot is the second moment itself (see state_alias), so
    // this is branch-free and the element loop vectorises either way.
    const int k = amsgrad ? 2 : 1;
    float vmax = io.state.load(k);
    vmax = vmax > v ? vmax : v;
    if (!io.replay) vmax = io.state.store(k, vmax);
    const float denom = sqrtf(vmax) / io.scalars.bias_correction2_sqrt + eps;
    return (m / io.scalars.bias_correction1) / denom;
  }
};

template <class F = float>
struct scale_by_rss : stage_defaults {
  static_assert(detail::is_state_format_v<F>, "scale_by_rss: the sum is float or bfloat16");
  static constexpr const char* name = "scale_by_rss";
  using state_format = F;
  float eps = 1e-10f;
  float initial_accumulator = 0.0f;
  std::size_t state_slots() const { return 1; }
  float initial_state(std::size_t) const { return initial_accumulator; }
  scalars initial_scalars() const {
    detail::require(eps > 0 && std::isfinite(eps), "scale_by_rss: eps must be finite and positive (got ", eps,
                    "): with eps = 0 an element whose gradients were all zero becomes 0 / 0 = NaN");
    detail::require(initial_accumulator >= 0 && std::isfinite(initial_accumulator),
                    "scale_by_rss: initial_accumulator must be finite and non-negative (got ", initial_accumulator, ")");
    return {};
  }
  template <class IO>
  MIXPREC_HOST_DEVICE float apply(float u, IO& io) const {
    float sum = io.state.load(0);
    if (!io.replay) sum = io.state.store(0, sum + u * u);
    return u / (sqrtf(sum) + eps);
  }
};

template <class F = float>
struct scale_by_lion : stage_defaults {
  static_assert(detail::is_state_format_v<F>, "scale_by_lion: the momentum is float or bfloat16");
  static constexpr const char* name = "scale_by_lion";
  using state_format = F;
  float b1 = 0.9f, b2 = 0.99f;
  std::size_t state_slots() const { return 1; }
  scalars initial_scalars() const {
    detail::require(b1 >= 0 && b1 <= 1 && b2 >= 0 && b2 <= 1, "scale_by_lion: b1 and b2 must lie in [0, 1]");
    return {};
  }
  // sign(0) = 0, as torch.sign and jnp.sign: a zero interpolation moves nothing.
  MIXPREC_HOST_DEVICE static float sign(float c) { return c > 0.0f ? 1.0f : (c < 0.0f ? -1.0f : c); }
  template <class IO>
  MIXPREC_HOST_DEVICE float apply(float u, IO& io) const {
    // The output uses the momentum before this step's update; in replay mode
    // the stored momentum is already updated, so the output cannot be
    // recomputed: Lion is not supported before a split (statically rejected).
    const float m = io.state.load(0);
    const float c = m * b1 + u * (1.0f - b1);
    if (!io.replay) io.state.store(0, m * b2 + u * (1.0f - b2));
    return sign(c);
  }
  static constexpr bool replayable = false;
};

struct scale_by_trust_ratio : stage_defaults {
  static constexpr const char* name = "scale_by_trust_ratio";
  static constexpr bool needs_segment_norms = true;
  scalars initial_scalars() const { return {}; }
  MIXPREC_HOST_DEVICE float tile_factor(const scalars&, const tile_stats& t) const {
    const float w = static_cast<float>(sqrt(t.segment_weight_sq));
    const float u = static_cast<float>(sqrt(t.segment_input_sq));
    return (w > 0.0f && u > 0.0f) ? w / u : 1.0f;
  }
  template <class IO>
  MIXPREC_HOST_DEVICE float apply(float u, IO& io) const { return u * io.tile_factor; }
};

template <class Schedule = constant_schedule>
struct scale_by_learning_rate : stage_defaults {
  static constexpr const char* name = "scale_by_learning_rate";
  Schedule lr{};
  scale_by_learning_rate() = default;
  explicit scale_by_learning_rate(Schedule s) : lr(s) {}
  struct scalars {
    float lr;
  };
  scalars initial_scalars() const {
    detail::validate_schedule(lr);
    return {lr(0)};
  }
  MIXPREC_HOST_DEVICE void decide(scalars& s, decide_context& ctx) const { s.lr = lr(ctx.t - 1); }
  template <class IO>
  MIXPREC_HOST_DEVICE float apply(float u, IO& io) const { return -(io.scalars.lr * io.group.lr_scale) * u; }
};

}  // namespace mixprec
