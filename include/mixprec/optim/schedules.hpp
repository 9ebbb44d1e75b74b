// Learning-rate schedules: plain value types evaluated on the device, in the
// chain's scalar rule, from the device step count. A schedule maps s, the
// number of completed steps before the current one (0 for the first step),
// to a value, as Optax's and PyTorch's schedulers do.
//
//   constant_schedule{v}                     v
//   linear_schedule{from, to, steps}         from -> to linearly over `steps`, then to
//   cosine_decay{init, decay_steps, alpha}   init * ((1 - alpha) * (1 + cos(pi * min(s, D) / D)) / 2 + alpha)
//   step_decay{init, step_size, gamma}       init * gamma^floor(s / step_size)     (PyTorch StepLR)
//   exponential_decay{init, gamma}           init * gamma^s                        (PyTorch ExponentialLR)
//   inverse_time_decay{init, decay}          init / (1 + s * decay)                (PyTorch Adagrad lr_decay)
//   warmup<Then>{steps, start, then}         linear from start to then(0) over `steps`, then then(s - steps)
//                                            (steps = 0: no warm-up, then(s) from the first step)
//
// Every value a schedule can produce is a learning rate: validate() (run by
// chain::init) refuses NaN, infinite and negative values and factors, and
// decay factors (gamma) above 1, which grow the rate without bound until
// every weight is non-finite (PyTorch's StepLR and ExponentialLR accept
// them and diverge); visit(v) names each field (checkpoints save them).
#pragma once

#include <cmath>
#include <cstdint>

#include <mixprec/core/config.hpp>
#include <mixprec/core/error.hpp>
#include <mixprec/core/pinned_arithmetic.hpp>

MIXPREC_PINNED_BEGIN

namespace mixprec {

namespace detail {
// A learning rate or a value that scales one: finite and non-negative.
inline void require_rate(float v, const char* schedule, const char* field) {
  require(std::isfinite(v) && v >= 0.0f, schedule, ": ", field, " must be finite and non-negative (got ", v, ")");
}
}  // namespace detail

struct constant_schedule {
  float value = 1e-3f;
  MIXPREC_HOST_DEVICE float operator()(std::uint64_t) const { return value; }
  template <class V>
  void visit(V&& v) const {
    v("value", value);
  }
  void validate() const { detail::require_rate(value, "constant_schedule", "the learning rate"); }
};

struct linear_schedule {
  float from = 0.0f, to = 1e-3f;
  std::uint64_t steps = 1;
  template <class V>
  void visit(V&& v) const {
    v("from", from);
    v("to", to);
    v("steps", steps);
  }
  MIXPREC_HOST_DEVICE float operator()(std::uint64_t s) const {
    if (s >= steps) return to;
    const double f = static_cast<double>(s) / static_cast<double>(steps);
    return static_cast<float>(from + detail::mul(static_cast<double>(to) - from, f));
  }
  void validate() const {
    detail::require_rate(from, "linear_schedule", "from");
    detail::require_rate(to, "linear_schedule", "to");
    detail::require(steps > 0, "linear_schedule: steps must be positive");
  }
};

struct cosine_decay {
  float init = 1e-3f;
  std::uint64_t decay_steps = 1000;
  float alpha = 0.0f;  // final value as a fraction of init
  template <class V>
  void visit(V&& v) const {
    v("init", init);
    v("decay_steps", decay_steps);
    v("alpha", alpha);
  }
  MIXPREC_HOST_DEVICE float operator()(std::uint64_t s) const {
    const double t = static_cast<double>(s < decay_steps ? s : decay_steps) / static_cast<double>(decay_steps);
    const double cosine = 0.5 * (1.0 + cos(3.14159265358979323846 * t));
    return static_cast<float>(init * (detail::mul(1.0 - alpha, cosine) + alpha));
  }
  void validate() const {
    detail::require_rate(init, "cosine_decay", "init");
    detail::require(decay_steps > 0, "cosine_decay: decay_steps must be positive");
    detail::require(alpha >= 0 && alpha <= 1, "cosine_decay: alpha must lie in [0, 1]");
  }
};

struct step_decay {
  float init = 1e-3f;
  std::uint64_t step_size = 1000;
  float gamma = 0.1f;
  template <class V>
  void visit(V&& v) const {
    v("init", init);
    v("step_size", step_size);
    v("gamma", gamma);
  }
  MIXPREC_HOST_DEVICE float operator()(std::uint64_t s) const {
    return static_cast<float>(init * pow(static_cast<double>(gamma), static_cast<double>(s / step_size)));
  }
  void validate() const {
    detail::require_rate(init, "step_decay", "init");
    detail::require(gamma >= 0.0f && gamma <= 1.0f, "step_decay: gamma must lie in [0, 1] (got ", gamma,
                    "): a larger factor grows the learning rate without bound");
    detail::require(step_size > 0, "step_decay: step_size must be positive");
  }
};

struct exponential_decay {
  float init = 1e-3f;
  float gamma = 0.999f;
  template <class V>
  void visit(V&& v) const {
    v("init", init);
    v("gamma", gamma);
  }
  MIXPREC_HOST_DEVICE float operator()(std::uint64_t s) const {
    return static_cast<float>(init * pow(static_cast<double>(gamma), static_cast<double>(s)));
  }
  void validate() const {
    detail::require_rate(init, "exponential_decay", "init");
    detail::require(gamma > 0.0f && gamma <= 1.0f, "exponential_decay: gamma must lie in (0, 1] (got ", gamma,
                    "): a larger factor grows the learning rate without bound");
  }
};

struct inverse_time_decay {
  float init = 1e-2f;
  float decay = 0.0f;
  template <class V>
  void visit(V&& v) const {
    v("init", init);
    v("decay", decay);
  }
  // Adagrad's clr = lr / (1 + (step - 1) * lr_decay), in double as Python computes it.
  MIXPREC_HOST_DEVICE float operator()(std::uint64_t s) const {
    return static_cast<float>(static_cast<double>(init) /
                              (1.0 + detail::mul(static_cast<double>(s), static_cast<double>(decay))));
  }
  void validate() const {
    detail::require_rate(init, "inverse_time_decay", "init");
    detail::require_rate(decay, "inverse_time_decay", "decay");
  }
};

template <class Then>
struct warmup {
  std::uint64_t steps = 100;
  float start = 0.0f;
  Then then{};
  template <class V>
  void visit(V&& v) const {
    v("warmup_steps", steps);
    v("warmup_start", start);
    then.visit(v);
  }
  MIXPREC_HOST_DEVICE float operator()(std::uint64_t s) const {
    if (s >= steps) return then(s - steps);
    const double f = static_cast<double>(s) / static_cast<double>(steps);
    return static_cast<float>(start + detail::mul(static_cast<double>(then(0)) - start, f));
  }
  void validate() const {
    detail::require_rate(start, "warmup", "start");  // steps = 0: no warm-up (operator() never divides by it)
    then.validate();
  }
};

}  // namespace mixprec

MIXPREC_PINNED_END
