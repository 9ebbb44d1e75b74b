// Adafactor (Shazeer and Stern 2018) as torch.optim.Adafactor defines it
// (PyTorch >= 2.5), as a chain of two stages:
//
//   scale_by_factored_rms{beta2_decay, eps1}
//       second moments factored over each parameter's last two dimensions:
//       per row and per column an EMA of the mean of g^2, with weight
//       t^beta2_decay (1 at the first step); the estimate
//       V = row * col / max(mean of the rows of its matrix, eps1), and for
//       parameters of rank below 2 an unfactored per-element EMA of g^2;
//       the output is g / sqrt(max(V, eps1^2)).
//   scale_by_relative_step{lr, eps2, d}
//       the step size alpha = max(eps2, RMS(w)) * min(lr, 1 / sqrt(t)),
//       divided by max(1, RMS(u) / d) (RMS over each parameter), and the
//       sign of a descent step: the output is -alpha / denom * u.
//
//   adafactor(o) = [scale_by_constant(-1 if maximize), decoupled_weight_decay(lr * wd),
//                   scale_by_factored_rms, scale_by_relative_step]
//
// torch's order of rounding is followed where it matters (the lerp of the
// EMAs, the reciprocal square root then the product, the step size in
// double rounded once); its float32 norms are computed here in double, so
// results agree to about 1e-7 relative per step, not bit for bit. eps1
// defaults to float32's machine epsilon, as torch's None. The plan is three
// passes (the row and column sums, then RMS(u), then the update).
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <type_traits>

#include <mixprec/component/component.hpp>
#include <mixprec/component/protocol.hpp>
#include <mixprec/core/error.hpp>
#include <mixprec/core/pinned_arithmetic.hpp>
#include <mixprec/detail/square_root.hpp>
#include <mixprec/optim/schedules.hpp>
#include <mixprec/optim/stages.hpp>
#include <mixprec/train/chain.hpp>

MIXPREC_PINNED_BEGIN

namespace mixprec {

struct scale_by_factored_rms {
  static constexpr const char* name = "scale_by_factored_rms";
  static constexpr state_field state[] = {{"row_var", format_id::f32, extent::row, parameter_set::matrices},
                                          {"col_var", format_id::f32, extent::column, parameter_set::matrices},
                                          {"variance", format_id::f32, extent::element, parameter_set::vectors}};
  static constexpr field_id<field_index(state, "row_var")> row_var{};
  static constexpr field_id<field_index(state, "col_var")> col_var{};
  static constexpr field_id<field_index(state, "variance")> variance{};
  static constexpr statistic statistics[] = {{"row_sq", scope::row, reduction::power_sum, source::input},
                                             {"col_sq", scope::column, reduction::power_sum, source::input},
                                             // Each matrix's sum of its rows' EMAs, once decide_row has updated them.
                                             field_statistic("row_var_sum", scope::matrix, reduction::sum, "row_var")};
  static constexpr stat_id<statistic_index(statistics, "row_sq")> row_sq{};
  static constexpr stat_id<statistic_index(statistics, "col_sq")> col_sq{};
  static constexpr stat_id<statistic_index(statistics, "row_var_sum")> row_var_sum{};

  float beta2_decay = -0.8f;
  float eps1 = std::numeric_limits<float>::epsilon();  // torch: eps[0] = None

  struct scalars {
    float weight;  // of this step's EMA update: t^beta2_decay
  };
  scalars initial_scalars() const {
    detail::require(beta2_decay <= 0.0f && std::isfinite(beta2_decay),
                    "scale_by_factored_rms: beta2_decay must be finite and <= 0 (got ", beta2_decay, ")");
    detail::require(eps1 >= 0.0f && std::isfinite(eps1), "scale_by_factored_rms: eps1 must be finite and >= 0 (got ",
                    eps1, ")");
    return {1.0f};
  }
  // t^beta2_decay with t >= 1 and beta2_decay <= 0.
  scalars restored_scalars(const scalars& s, const scalars&, const scale_by_factored_rms&) const {
    detail::require(s.weight >= 0.0f && s.weight <= 1.0f, "scale_by_factored_rms: the checkpoint's weight ", s.weight,
                    " must lie in [0, 1]");
    return s;
  }
  template <class Ctx>
  MIXPREC_HOST_DEVICE void decide(scalars& s, const Ctx& ctx) const {
    s.weight = static_cast<float>(pow(static_cast<double>(ctx.t()), static_cast<double>(beta2_decay)));
  }
  // Per row (matrices): the EMA of the row's mean of g^2.
  template <class E>
  MIXPREC_HOST_DEVICE void decide_row(const E& e) const {
    if (!e.covers(row_var)) return;
    const float mean = static_cast<float>(e.statistic(row_sq) / static_cast<double>(e.cols()));
    const auto v = e.state(row_var);
    v.set(detail::torch_lerp(v.get(), mean, e.scalars().weight));
  }
  template <class E>
  MIXPREC_HOST_DEVICE void decide_column(const E& e) const {
    if (!e.covers(col_var)) return;
    const double rows = static_cast<double>(e.geometry().matrix_rows);
    const float mean = static_cast<float>(e.statistic(col_sq) / rows);
    const auto v = e.state(col_var);
    v.set(detail::torch_lerp(v.get(), mean, e.scalars().weight));
  }
  template <class Ctx>
  MIXPREC_HOST_DEVICE float update(float g, const Ctx& ctx) const {
    float v;
    if (ctx.rank() >= 2) {
      // max(mean of the rows of the element's matrix, eps1)
      float mean = static_cast<float>(ctx.statistic(row_var_sum) / static_cast<double>(ctx.geometry().matrix_rows));
      mean = mean > eps1 ? mean : eps1;
      v = (ctx.state(row_var).get() * ctx.state(col_var).get()) / mean;
    } else {
      v = ctx.state(variance).update([&](float old) { return detail::torch_lerp(old, g * g, ctx.scalars().weight); });
    }
    const float floor = static_cast<float>(static_cast<double>(eps1) * static_cast<double>(eps1));
    v = v > floor ? v : floor;
    return detail::mul(1.0f / detail::square_root(v), g);
  }
  template <class V>
  void visit_hyperparameters(V&& v) const {
    v("beta2_decay", beta2_decay);
    v("eps1", eps1);
  }
  template <class V>
  static void visit_scalars(scalars& s, V&& v) {
    v("weight", s.weight);
  }
};

struct scale_by_relative_step {
  static constexpr const char* name = "scale_by_relative_step";
  static constexpr statistic statistics[] = {{"update_sq", scope::parameter, reduction::power_sum, source::input},
                                             {"weight_sq", scope::parameter, reduction::power_sum, source::weights}};
  static constexpr stat_id<statistic_index(statistics, "update_sq")> update_sq{};
  static constexpr stat_id<statistic_index(statistics, "weight_sq")> weight_sq{};

  float lr = 1e-2f;
  float eps2 = 1e-3f;
  float d = 1.0f;

  struct scalars {
    double rho;  // min(lr, 1 / sqrt(t))
  };
  scalars initial_scalars() const {
    detail::require_rate(lr, "scale_by_relative_step", "lr");
    detail::require(eps2 >= 0.0f && std::isfinite(eps2), "scale_by_relative_step: eps2 must be finite and >= 0");
    detail::require(d >= 1.0f && std::isfinite(d), "scale_by_relative_step: d must be finite and >= 1 (got ", d, ")");
    return {static_cast<double>(lr)};
  }
  scalars restored_scalars(const scalars& s, const scalars&, const scale_by_relative_step&) const {
    detail::require(std::isfinite(s.rho) && s.rho >= 0.0, "scale_by_relative_step: the checkpoint's step size ", s.rho,
                    " must be finite and non-negative");
    return s;
  }
  template <class Ctx>
  MIXPREC_HOST_DEVICE void decide(scalars& s, const Ctx& ctx) const {
    const double inv_sqrt_t = 1.0 / pow(static_cast<double>(ctx.t()), 0.5);
    s.rho = static_cast<double>(lr) < inv_sqrt_t ? static_cast<double>(lr) : inv_sqrt_t;
  }
  // The step size of the element's parameter (the same for the whole tile).
  template <class Ctx>
  MIXPREC_HOST_DEVICE float update(float u, const Ctx& ctx) const {
    const double root_n = pow(static_cast<double>(ctx.geometry().size), 0.5);
    const double rms_w = sqrt(ctx.statistic(weight_sq)) / root_n;
    const double alpha = (static_cast<double>(eps2) > rms_w ? static_cast<double>(eps2) : rms_w) * ctx.scalars().rho;
    const double rms_u = sqrt(ctx.statistic(update_sq)) / (root_n * static_cast<double>(d));
    const double denom = rms_u > 1.0 ? rms_u : 1.0;
    return detail::mul(static_cast<float>(-alpha / denom), u);
  }
  template <class V>
  void visit_hyperparameters(V&& v) const {
    v("lr", lr);
    v("eps2", eps2);
    v("d", d);
  }
  template <class V>
  static void visit_scalars(scalars& s, V&& v) {
    v("rho", s.rho);
  }
};

struct adafactor_options {
  float lr = 1e-2f;
  float beta2_decay = -0.8f;
  float eps1 = std::numeric_limits<float>::epsilon();  // torch's eps[0] = None
  float eps2 = 1e-3f;
  float d = 1.0f;
  float weight_decay = 0.0f;
  bool maximize = false;
};

// A template only so that a translation unit that never calls it does not
// instantiate its chain: a non-template body, or a call whose arguments do
// not depend on the template parameter, is compiled wherever the header is
// included. `rms_stage` is that dependence.
template <class Options = adafactor_options>
auto adafactor(const Options& o) {
  static_assert(std::is_same_v<Options, adafactor_options>, "adafactor() takes an adafactor_options");
  using rms_stage = std::conditional_t<std::is_same_v<Options, adafactor_options>, scale_by_factored_rms, void>;
  decoupled_weight_decay<constant_schedule> decay;
  decay.weight_decay = o.weight_decay;
  decay.lr = constant_schedule{o.lr};
  rms_stage rms;
  rms.beta2_decay = o.beta2_decay;
  rms.eps1 = o.eps1;
  scale_by_relative_step step;
  step.lr = o.lr;
  step.eps2 = o.eps2;
  step.d = o.d;
  return chain(scale_by_constant{o.maximize ? -1.0f : 1.0f}, decay, rms, step).named("adafactor");
}

}  // namespace mixprec

MIXPREC_PINNED_END
