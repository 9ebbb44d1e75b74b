// The named optimizers, as chains of stages (Optax's alias.py in C++ types),
// with PyTorch's defaults and update order where PyTorch has the optimizer:
//
//   sgd(o)      [scale_by_constant(-1 if maximize), add_decayed_weights, trace, scale_by_learning_rate]
//   adam(o)     [scale_by_constant, add_decayed_weights (L2), scale_by_adam, scale_by_learning_rate]
//   adamw(o)    [scale_by_constant, decoupled_weight_decay, scale_by_adam, scale_by_learning_rate]
//   adagrad(o)  [scale_by_constant, add_decayed_weights, scale_by_rss, scale_by_learning_rate(inverse_time_decay)]
//   lamb(o)     [scale_by_adam, add_decayed_weights, scale_by_trust_ratio, scale_by_learning_rate]
//               (You et al. 2019; Apex FusedLAMB with bias correction and use_nvlamb: the
//               trust ratio on every parameter; no global clipping)
//   lion(o)     [scale_by_lion, add_decayed_weights, scale_by_learning_rate]
//               (Chen et al. 2023; sign(0) = 0; w -= lr * (sign(c) + wd * w))
//
// The schedule argument replaces the constant learning rate `o.lr`.
// State (moments) is float by default; pass bfloat16 as StateFormat to keep
// it in bfloat16 with stochastic rounding, its bits from Generator
// (SplitMix64 by default; adamw<bfloat16, philox_generator>(o) for
// Philox-4x32-10, cast/generator.hpp).
#pragma once

#include <mixprec/core/pinned_arithmetic.hpp>
#include <mixprec/optim/schedules.hpp>
#include <mixprec/optim/stages.hpp>
#include <mixprec/train/chain.hpp>

MIXPREC_PINNED_BEGIN

namespace mixprec {

struct sgd_options {
  float lr = 1e-3f;
  float momentum = 0.0f, dampening = 0.0f;
  bool nesterov = false;
  float weight_decay = 0.0f;
  bool maximize = false;
};
struct adam_options {
  float lr = 1e-3f;
  float beta1 = 0.9f, beta2 = 0.999f, eps = 1e-8f;
  float weight_decay = 0.0f;
  bool amsgrad = false, maximize = false;
};
struct adamw_options : adam_options {
  adamw_options() { weight_decay = 1e-2f; }
};
struct adagrad_options {
  float lr = 1e-2f;
  float lr_decay = 0.0f, weight_decay = 0.0f, initial_accumulator_value = 0.0f, eps = 1e-10f;
  bool maximize = false;
};
struct lamb_options {
  float lr = 1e-3f;
  float beta1 = 0.9f, beta2 = 0.999f, eps = 1e-6f;
  float weight_decay = 0.01f;
};
struct lion_options {
  float lr = 1e-4f;
  float beta1 = 0.9f, beta2 = 0.99f;
  float weight_decay = 0.0f;
};

template <class StateFormat = float, class Generator = default_generator, class Schedule = constant_schedule>
auto sgd(const sgd_options& o, Schedule lr) {
  trace<StateFormat, Generator> momentum;
  momentum.momentum = o.momentum;
  momentum.dampening = o.dampening;
  momentum.nesterov = o.nesterov;
  return chain(scale_by_constant{o.maximize ? -1.0f : 1.0f}, add_decayed_weights{o.weight_decay}, momentum,
               scale_by_learning_rate<Schedule>{lr})
      .named("sgd");
}
template <class StateFormat = float, class Generator = default_generator>
auto sgd(const sgd_options& o) {
  return sgd<StateFormat, Generator>(o, constant_schedule{o.lr});
}

namespace detail {
template <class StateFormat, class Generator>
scale_by_adam<StateFormat, Generator> adam_stage(const adam_options& o) {
  scale_by_adam<StateFormat, Generator> s;
  s.b1 = o.beta1;
  s.b2 = o.beta2;
  s.eps = o.eps;
  s.amsgrad = o.amsgrad;
  return s;
}
}  // namespace detail

template <class StateFormat = float, class Generator = default_generator, class Schedule = constant_schedule>
auto adam(const adam_options& o, Schedule lr) {
  return chain(scale_by_constant{o.maximize ? -1.0f : 1.0f}, add_decayed_weights{o.weight_decay},
               detail::adam_stage<StateFormat, Generator>(o), scale_by_learning_rate<Schedule>{lr})
      .named("adam");
}
template <class StateFormat = float, class Generator = default_generator>
auto adam(const adam_options& o) {
  return adam<StateFormat, Generator>(o, constant_schedule{o.lr});
}

template <class StateFormat = float, class Generator = default_generator, class Schedule = constant_schedule>
auto adamw(const adamw_options& o, Schedule lr) {
  decoupled_weight_decay<Schedule> decay;
  decay.weight_decay = o.weight_decay;
  decay.lr = lr;
  return chain(scale_by_constant{o.maximize ? -1.0f : 1.0f}, decay, detail::adam_stage<StateFormat, Generator>(o),
               scale_by_learning_rate<Schedule>{lr})
      .named("adamw");
}
template <class StateFormat = float, class Generator = default_generator>
auto adamw(const adamw_options& o) {
  return adamw<StateFormat, Generator>(o, constant_schedule{o.lr});
}

template <class StateFormat = float, class Generator = default_generator>
auto adagrad(const adagrad_options& o) {
  scale_by_rss<StateFormat, Generator> rss;
  rss.eps = o.eps;
  rss.initial_accumulator = o.initial_accumulator_value;
  return chain(scale_by_constant{o.maximize ? -1.0f : 1.0f}, add_decayed_weights{o.weight_decay}, rss,
               scale_by_learning_rate<inverse_time_decay>{inverse_time_decay{o.lr, o.lr_decay}})
      .named("adagrad");
}

template <class StateFormat = float, class Generator = default_generator, class Schedule = constant_schedule>
auto lamb(const lamb_options& o, Schedule lr) {
  scale_by_adam<StateFormat, Generator> a;
  a.b1 = o.beta1;
  a.b2 = o.beta2;
  a.eps = o.eps;
  return chain(a, add_decayed_weights{o.weight_decay}, scale_by_trust_ratio{}, scale_by_learning_rate<Schedule>{lr})
      .named("lamb");
}
template <class StateFormat = float, class Generator = default_generator>
auto lamb(const lamb_options& o) {
  return lamb<StateFormat, Generator>(o, constant_schedule{o.lr});
}

template <class StateFormat = float, class Generator = default_generator, class Schedule = constant_schedule>
auto lion(const lion_options& o, Schedule lr) {
  scale_by_lion<StateFormat, Generator> l;
  l.b1 = o.beta1;
  l.b2 = o.beta2;
  return chain(l, add_decayed_weights{o.weight_decay}, scale_by_learning_rate<Schedule>{lr}).named("lion");
}
template <class StateFormat = float, class Generator = default_generator>
auto lion(const lion_options& o) {
  return lion<StateFormat, Generator>(o, constant_schedule{o.lr});
}

}  // namespace mixprec

MIXPREC_PINNED_END
