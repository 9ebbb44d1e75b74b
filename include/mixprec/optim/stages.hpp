// Optimizer stages: element-wise transformations of the update, composed by
// chain() (Optax's scale_by_* / add_* vocabulary). Each follows its
// reference's update order; the named optimizers in optim/optimizers.hpp are
// chains of them.
//
//   scale_by_constant{c}                  u *= c (maximize: c = -1)
//   add_decayed_weights{wd}               u += wd * w           (L2 in Adam/SGD, LAMB, Lion)
//   decoupled_weight_decay<S>{wd, lr}     w *= 1 - lr(s) * wd before the update is added (PyTorch AdamW)
//   decoupled_weight_decay_by_name<S>{wd, lr, no_decay_names}   the same, none on parameters whose
//                                         names match no_decay_names (Adam-mini's "norm,ln,bias")
//   trace<F>{momentum, dampening, nesterov}   PyTorch SGD momentum, first step buf = u
//   scale_by_adam<F>{b1, b2, eps, amsgrad}    PyTorch Adam: (m / bc1) / (sqrt(v) / sqrt(bc2) + eps)
//   scale_by_rss<F>{eps, initial}         PyTorch Adagrad: u / (sqrt(sum u^2) + eps)
//   scale_by_lion<F>{b1, b2}              Lion: sign(b1 m + (1 - b1) u), m = b2 m + (1 - b2) u
//   scale_by_trust_ratio{}                LAMB: u *= ||w|| / ||u|| per parameter (1 if either is 0)
//   scale_by_learning_rate<S>{lr}         u *= -lr(s)
//
// F is the format of the per-element state (float or bfloat16; bfloat16 is
// written with stochastic rounding, its bits from generator G, SplitMix64 by
// default: cast/generator.hpp). Weight decay and learning rate follow
// the arena's group multipliers (chain_state::set_group).
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <type_traits>

#include <mixprec/component/component.hpp>
#include <mixprec/component/protocol.hpp>
#include <mixprec/core/error.hpp>
#include <mixprec/core/pinned_arithmetic.hpp>
#include <mixprec/detail/square_root.hpp>
#include <mixprec/format/block_codes.hpp>
#include <mixprec/optim/name_patterns.hpp>
#include <mixprec/optim/schedules.hpp>

MIXPREC_PINNED_BEGIN

namespace mixprec {

namespace detail {
template <class F>
inline constexpr bool is_state_format_v = std::is_same_v<F, float> || std::is_same_v<F, bfloat16>;
// Moments may also be block-scaled 8-bit codes (format/block_codes.hpp).
template <class F>
inline constexpr bool is_moment_format_v = is_state_format_v<F> || is_block_quantized_v<F>;
// A per-element moment under StateFormat F: of signed values (first
// moments, momentum) or of non-negative ones (second moments).
template <class F>
constexpr state_field moment_field(const char* name, bool non_negative = false) {
  return {name,
          non_negative ? state_format<F>::unsigned_id : state_format<F>::signed_id,
          extent::element,
          parameter_set::all,
          true,
          true,
          false,
          state_format<F>::block};
}

template <class S>
void validate_schedule(const S& s) {
  if constexpr (std::is_same_v<decltype(s.validate()), void>) s.validate();
}

// torch's lerp on float32: start + w (end - start) for |w| < 0.5, else
// end - (end - start)(1 - w), each operation rounded.
MIXPREC_HOST_DEVICE float torch_lerp(float start, float end, float w) {
  const float diff = end - start;
  return (w < 0.5f && w > -0.5f) ? start + mul(w, diff) : end - mul(diff, 1.0f - w);
}
// A checkpoint's learning rate: a schedule's value (finite, non-negative).
inline void require_learning_rate(float lr, const char* who) {
  require(std::isfinite(lr) && lr >= 0.0f, who, ": the checkpoint's learning rate ", lr,
          " must be finite and non-negative");
}
// A checkpoint's bias corrections 1 - b^t (and its root) lie in (0, 1].
inline void require_bias_corrections(float bc1, float bc2_sqrt, const char* who) {
  require(bc1 > 0.0f && bc1 <= 1.0f && bc2_sqrt > 0.0f && bc2_sqrt <= 1.0f, who, ": the checkpoint's bias corrections ",
          bc1, " and ", bc2_sqrt, " must lie in (0, 1]");
}
}  // namespace detail

struct scale_by_constant {
  static constexpr const char* name = "scale_by_constant";
  struct traits : component_traits {
    static constexpr bool before_statistics = true;
    static constexpr bool linear = true;
  };
  float factor = 1.0f;
  scale_by_constant() = default;
  explicit scale_by_constant(float c) : factor(c) {}
  no_scalars initial_scalars() const {
    detail::require(std::isfinite(factor), "scale_by_constant: the factor must be finite");
    return {};
  }
  template <class Ctx>
  MIXPREC_HOST_DEVICE float update(float u, const Ctx&) const {
    return detail::mul(u, factor);  // exact for factor 1
  }
  template <class V>
  void visit_hyperparameters(V&& v) const {
    v("factor", factor);
  }
};

struct add_decayed_weights {
  static constexpr const char* name = "add_decayed_weights";
  float weight_decay = 0.0f;
  add_decayed_weights() = default;
  explicit add_decayed_weights(float wd) : weight_decay(wd) {}
  no_scalars initial_scalars() const {
    detail::require(weight_decay >= 0 && std::isfinite(weight_decay), "add_decayed_weights: weight_decay must be >= 0");
    return {};
  }
  template <class Ctx>
  MIXPREC_HOST_DEVICE float update(float u, const Ctx& ctx) const {
    return u + detail::mul(ctx.weight(), weight_decay * ctx.group().weight_decay_scale);  // adds 0 without decay
  }
  template <class V>
  void visit_hyperparameters(V&& v) const {
    v("weight_decay", weight_decay);
  }
};

template <class Schedule = constant_schedule>
struct decoupled_weight_decay {
  static constexpr const char* name = "decoupled_weight_decay";
  struct traits : component_traits {
    static constexpr bool keeps_update = true;  // it scales the weight
  };
  float weight_decay = 0.0f;
  Schedule lr{};
  struct scalars {
    float lr;
  };
  scalars initial_scalars() const {
    detail::require(weight_decay >= 0 && std::isfinite(weight_decay),
                    "decoupled_weight_decay: weight_decay must be >= 0");
    detail::validate_schedule(lr);
    return {lr(0)};
  }
  scalars restored_scalars(const scalars& s, const scalars&, const decoupled_weight_decay&) const {
    detail::require_learning_rate(s.lr, name);
    return s;
  }
  template <class Ctx>
  MIXPREC_HOST_DEVICE void decide(scalars& s, const Ctx& ctx) const {
    s.lr = lr(ctx.t() - 1);
  }
  template <class Ctx>
  MIXPREC_HOST_DEVICE float update(float u, const Ctx& ctx) const {
    // PyTorch AdamW: param.mul_(1 - lr * weight_decay), the factor in double, applied in float.
    const double factor = 1.0 - detail::mul(static_cast<double>(ctx.scalars().lr * ctx.group().lr_scale),
                                            static_cast<double>(weight_decay * ctx.group().weight_decay_scale));
    ctx.scale_weight(static_cast<float>(factor));
    return u;
  }
  template <class V>
  void visit_hyperparameters(V&& v) const {
    v("weight_decay", weight_decay);
    lr.visit(detail::prefixed(v, "lr"));
  }
  template <class V>
  static void visit_scalars(scalars& s, V&& v) {
    v("lr", s.lr);
  }
};

// decoupled_weight_decay, but without decay for the parameters whose names
// (in lower case) contain an item of no_decay_names: the authors' Adam-mini
// gives weight decay 0 to names containing "norm", "ln" or "bias". The
// choice is made at init() from the arena's names, one flag per parameter
// (not saved: the names and the list give it again).
template <class Schedule = constant_schedule>
struct decoupled_weight_decay_by_name {
  static constexpr const char* name = "decoupled_weight_decay_by_name";
  struct traits : component_traits {
    static constexpr bool keeps_update = true;  // it scales the weight
  };
  static constexpr state_field state[] = {
      {"decays", format_id::f32, extent::parameter, parameter_set::all, /*saved=*/false}};
  static constexpr field_id<field_index(state, "decays")> decays{};
  float weight_decay = 0.0f;
  Schedule lr{};
  const char* no_decay_names = "norm,ln,bias";
  struct scalars {
    float lr;
  };
  scalars initial_scalars() const {
    detail::require(weight_decay >= 0 && std::isfinite(weight_decay),
                    "decoupled_weight_decay_by_name: weight_decay must be >= 0");
    detail::validate_schedule(lr);
    (void)detail::name_patterns(no_decay_names, name, "no_decay_names");
    return {lr(0)};
  }
  // 1 where the parameter decays, 0 where its name is in no_decay_names.
  float initial_state(std::size_t, const arena_info& arena, std::size_t p) const {
    const auto patterns = detail::name_patterns(no_decay_names, name, "no_decay_names");
    return detail::matches_any(detail::lower_case(arena.names[p]), patterns) ? 0.0f : 1.0f;
  }
  scalars restored_scalars(const scalars& s, const scalars&, const decoupled_weight_decay_by_name&) const {
    detail::require_learning_rate(s.lr, name);
    return s;
  }
  template <class Ctx>
  MIXPREC_HOST_DEVICE void decide(scalars& s, const Ctx& ctx) const {
    s.lr = lr(ctx.t() - 1);
  }
  template <class Ctx>
  MIXPREC_HOST_DEVICE float update(float u, const Ctx& ctx) const {
    // As decoupled_weight_decay; a factor of exactly 1 where the flag is 0.
    const float wd = weight_decay * ctx.group().weight_decay_scale * ctx.state(decays).get();
    const double factor =
        1.0 - detail::mul(static_cast<double>(ctx.scalars().lr * ctx.group().lr_scale), static_cast<double>(wd));
    ctx.scale_weight(static_cast<float>(factor));
    return u;
  }
  template <class V>
  void visit_hyperparameters(V&& v) const {
    v("weight_decay", weight_decay);
    lr.visit(detail::prefixed(v, "lr"));
    v("no_decay_names", detail::name_pattern_fingerprint({no_decay_names}));
  }
  template <class V>
  static void visit_scalars(scalars& s, V&& v) {
    v("lr", s.lr);
  }
};

template <class F = float, class G = default_generator>
struct trace {
  static_assert(detail::is_moment_format_v<F>,
                "trace: the momentum buffer is float, bfloat16 or block_quantized<dynamic8 or fp8_e4m3>");
  using generator = G;  // of the bfloat16 state's stochastic rounding
  static constexpr const char* name = "trace";
  static constexpr state_field state[] = {detail::moment_field<F>("momentum_buffer")};
  static constexpr field_id<field_index(state, "momentum_buffer")> buffer{};
  float momentum = 0.0f, dampening = 0.0f;
  bool nesterov = false;
  // Without momentum: no buffer and the identity (variant 0).
  static constexpr int variants = 2;
  int variant() const { return momentum != 0.0f ? 1 : 0; }
  bool uses(std::size_t) const { return momentum != 0.0f; }
  no_scalars initial_scalars() const {
    detail::require(momentum >= 0 && momentum < 1, "trace: momentum must lie in [0, 1) (got ", momentum, ")");
    detail::require(dampening >= 0 && dampening <= 1, "trace: dampening must lie in [0, 1]");
    detail::require(!nesterov || (momentum > 0 && dampening == 0),
                    "trace: Nesterov momentum requires a momentum and zero dampening");
    return {};
  }
  template <class Ctx>
  MIXPREC_HOST_DEVICE float update(float u, const Ctx& ctx) const {
    if constexpr (Ctx::variant == 0) return u;
    // PyTorch: the first step copies the gradient (no dampening).
    const bool first = ctx.t() == 1;
    const float buf = ctx.state(buffer).update(
        [&](float old) { return first ? u : detail::mul(old, momentum) + detail::mul(u, 1.0f - dampening); });
    return nesterov ? u + detail::mul(buf, momentum) : buf;
  }
  template <class V>
  void visit_hyperparameters(V&& v) const {
    v("momentum", momentum);
    v("dampening", dampening);
    v("nesterov", nesterov);
  }
};

template <class F = float, class G = default_generator>
struct scale_by_adam {
  static_assert(detail::is_moment_format_v<F>,
                "scale_by_adam: moments are float, bfloat16 or block_quantized<dynamic8 or fp8_e4m3>");
  using generator = G;  // of the bfloat16 state's stochastic rounding
  static constexpr const char* name = "scale_by_adam";
  static constexpr state_field state[] = {detail::moment_field<F>("exp_avg"),
                                          detail::moment_field<F>("exp_avg_sq", true),
                                          detail::moment_field<F>("max_exp_avg_sq", true)};
  static constexpr field_id<field_index(state, "exp_avg")> m{};
  static constexpr field_id<field_index(state, "exp_avg_sq")> v{};
  static constexpr field_id<field_index(state, "max_exp_avg_sq")> vmax{};
  float b1 = 0.9f, b2 = 0.999f, eps = 1e-8f;
  bool amsgrad = false;
  struct scalars {
    float bias_correction1, bias_correction2_sqrt;
  };
  static constexpr int variants = 2;  // amsgrad off, on
  int variant() const { return amsgrad ? 1 : 0; }
  bool uses(std::size_t k) const { return k < 2 || amsgrad; }
  scalars initial_scalars() const {
    detail::require(b1 >= 0 && b1 < 1, "scale_by_adam: b1 must lie in [0, 1) (got ", b1, ")");
    detail::require(b2 >= 0 && b2 < 1, "scale_by_adam: b2 must lie in [0, 1) (got ", b2, ")");
    // eps = 0 divides 0 by 0 where the second moment is 0 (PyTorch accepts it; we do not).
    detail::require(eps > 0 && std::isfinite(eps), "scale_by_adam: eps must be finite and positive (got ", eps,
                    "): with eps = 0 an element whose gradients were all zero becomes 0 / 0 = NaN");
    return {1.0f, 1.0f};
  }
  scalars restored_scalars(const scalars& s, const scalars&, const scale_by_adam&) const {
    detail::require_bias_corrections(s.bias_correction1, s.bias_correction2_sqrt, name);
    return s;
  }
  template <class Ctx>
  MIXPREC_HOST_DEVICE void decide(scalars& s, const Ctx& ctx) const {
    // As PyTorch: bias corrections in double (Python floats), then used in float.
    const double t = static_cast<double>(ctx.t());
    s.bias_correction1 = static_cast<float>(1.0 - pow(static_cast<double>(b1), t));
    s.bias_correction2_sqrt = static_cast<float>(sqrt(1.0 - pow(static_cast<double>(b2), t)));
  }
  template <class Ctx>
  MIXPREC_HOST_DEVICE float update(float u, const Ctx& ctx) const {
    const float mt = ctx.state(m).update([&](float old) { return detail::mul(old, b1) + detail::mul(u, 1.0f - b1); });
    const float vt =
        ctx.state(v).update([&](float old) { return detail::mul(old, b2) + detail::mul(u * u, 1.0f - b2); });
    // amsgrad: the running max of the raw second moment, as PyTorch.
    float vmaxt = vt;
    if constexpr (Ctx::variant == 1) vmaxt = ctx.state(vmax).update([&](float old) { return old > vt ? old : vt; });
    const float denom = detail::square_root(vmaxt) / ctx.scalars().bias_correction2_sqrt + eps;
    return (mt / ctx.scalars().bias_correction1) / denom;
  }
  template <class V>
  void visit_hyperparameters(V&& vis) const {
    vis("b1", b1);
    vis("b2", b2);
    vis("eps", eps);
    vis("amsgrad", amsgrad);
  }
  template <class V>
  static void visit_scalars(scalars& s, V&& vis) {
    vis("bias_correction1", s.bias_correction1);
    vis("bias_correction2_sqrt", s.bias_correction2_sqrt);
  }
};

template <class F = float, class G = default_generator>
struct scale_by_rss {
  static_assert(detail::is_state_format_v<F>, "scale_by_rss: the sum is float or bfloat16");
  using generator = G;  // of the bfloat16 state's stochastic rounding
  static constexpr const char* name = "scale_by_rss";
  static constexpr state_field state[] = {{"sum", format_traits<F>::id}};
  static constexpr field_id<field_index(state, "sum")> sum{};
  float eps = 1e-10f;
  float initial_accumulator = 0.0f;
  float initial_state(std::size_t) const { return initial_accumulator; }
  no_scalars initial_scalars() const {
    detail::require(eps > 0 && std::isfinite(eps), "scale_by_rss: eps must be finite and positive (got ", eps,
                    "): with eps = 0 an element whose gradients were all zero becomes 0 / 0 = NaN");
    detail::require(initial_accumulator >= 0 && std::isfinite(initial_accumulator),
                    "scale_by_rss: initial_accumulator must be finite and non-negative (got ", initial_accumulator,
                    ")");
    return {};
  }
  template <class Ctx>
  MIXPREC_HOST_DEVICE float update(float u, const Ctx& ctx) const {
    const float s = ctx.state(sum).update([&](float old) { return old + detail::mul(u, u); });
    return u / (detail::square_root(s) + eps);
  }
  template <class V>
  void visit_hyperparameters(V&& v) const {
    v("eps", eps);
    v("initial_accumulator", initial_accumulator);
  }
};

template <class F = float, class G = default_generator>
struct scale_by_lion {
  static_assert(detail::is_moment_format_v<F>,
                "scale_by_lion: the momentum is float, bfloat16 or block_quantized<dynamic8 or fp8_e4m3>");
  using generator = G;  // of the bfloat16 state's stochastic rounding
  static constexpr const char* name = "scale_by_lion";
  // The output uses the momentum before this step's update, so a later pass
  // cannot recompute it from the stored momentum.
  struct traits : component_traits {
    static constexpr bool replayable = false;
  };
  static constexpr state_field state[] = {detail::moment_field<F>("exp_avg")};
  static constexpr field_id<field_index(state, "exp_avg")> m{};
  float b1 = 0.9f, b2 = 0.99f;
  no_scalars initial_scalars() const {
    detail::require(b1 >= 0 && b1 <= 1 && b2 >= 0 && b2 <= 1, "scale_by_lion: b1 and b2 must lie in [0, 1]");
    return {};
  }
  // sign(0) = 0, as torch.sign and jnp.sign: a zero interpolation moves nothing.
  MIXPREC_HOST_DEVICE static float sign(float c) { return c > 0.0f ? 1.0f : (c < 0.0f ? -1.0f : c); }
  template <class Ctx>
  MIXPREC_HOST_DEVICE float update(float u, const Ctx& ctx) const {
    const auto momentum = ctx.state(m);
    const float c = detail::mul(momentum.get(), b1) + detail::mul(u, 1.0f - b1);
    momentum.update([&](float old) { return detail::mul(old, b2) + detail::mul(u, 1.0f - b2); });
    return sign(c);
  }
  template <class V>
  void visit_hyperparameters(V&& v) const {
    v("b1", b1);
    v("b2", b2);
  }
};

struct scale_by_trust_ratio {
  static constexpr const char* name = "scale_by_trust_ratio";
  static constexpr statistic statistics[] = {{"update_sq", scope::parameter, reduction::power_sum, source::input},
                                             {"weight_sq", scope::parameter, reduction::power_sum, source::weights}};
  static constexpr stat_id<statistic_index(statistics, "update_sq")> update_sq{};
  static constexpr stat_id<statistic_index(statistics, "weight_sq")> weight_sq{};
  template <class Ctx>
  MIXPREC_HOST_DEVICE float update(float u, const Ctx& ctx) const {
    const float w = static_cast<float>(sqrt(ctx.statistic(weight_sq)));
    const float n = static_cast<float>(sqrt(ctx.statistic(update_sq)));
    return detail::mul(u, (w > 0.0f && n > 0.0f) ? w / n : 1.0f);
  }
};

template <class Schedule = constant_schedule>
struct scale_by_learning_rate {
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
  scalars restored_scalars(const scalars& s, const scalars&, const scale_by_learning_rate&) const {
    detail::require_learning_rate(s.lr, name);
    return s;
  }
  template <class Ctx>
  MIXPREC_HOST_DEVICE void decide(scalars& s, const Ctx& ctx) const {
    s.lr = lr(ctx.t() - 1);
  }
  template <class Ctx>
  MIXPREC_HOST_DEVICE float update(float u, const Ctx& ctx) const {
    return detail::mul(-(ctx.scalars().lr * ctx.group().lr_scale), u);
  }
  MIXPREC_HOST_DEVICE float report(quantity q, const scalars&, const scalars& now) const {
    return q == quantity::learning_rate ? now.lr : NAN;
  }
  template <class V>
  void visit_hyperparameters(V&& v) const {
    lr.visit(detail::prefixed(v, "lr"));
  }
  template <class V>
  static void visit_scalars(scalars& s, V&& v) {
    v("lr", s.lr);
  }
};

}  // namespace mixprec

MIXPREC_PINNED_END
