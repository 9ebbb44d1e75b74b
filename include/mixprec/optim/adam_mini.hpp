// Adam-mini (Zhang et al. 2024, "Adam-mini: Use Fewer Learning Rates To
// Gain More"): Adam's first moment per element, but one second moment per
// block of parameters, the EMA of the block's mean of g^2:
//
//   v_b = b2 v_b + (1 - b2) mean_b(g^2)      (one value per block)
//   m   = b1 m + (1 - b1) g                  (per element)
//   w  -= lr (m / (1 - b1^t)) / (sqrt(v_b) / sqrt(1 - b2^t) + eps)
//
// with AdamW's decoupled weight decay. Blocks follow the paper's partition:
// every parameter is one block, except the parameters of the groups named
// in `row_groups` (embedding and output matrices: one block per token, a
// row of the last two dimensions). Second-moment state is one float per
// block instead of one per element.
//
//   adam_mini(o) = [decoupled_weight_decay(lr * wd), scale_by_adam_mini, scale_by_learning_rate]
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>
#include <type_traits>

#include <mixprec/component/component.hpp>
#include <mixprec/component/protocol.hpp>
#include <mixprec/core/error.hpp>
#include <mixprec/optim/schedules.hpp>
#include <mixprec/optim/stages.hpp>
#include <mixprec/train/chain.hpp>

namespace mixprec {

template <class F = float>
struct scale_by_adam_mini {
  static_assert(detail::is_state_format_v<F>, "scale_by_adam_mini: the first moment is float or bfloat16");
  static constexpr const char* name = "scale_by_adam_mini";
  static constexpr state_field state[] = {{"exp_avg", format_traits<F>::id},
                                          {"block_exp_avg_sq", format_id::f32, extent::parameter},
                                          {"row_exp_avg_sq", format_id::f32, extent::row, parameter_set::matrices}};
  static constexpr field_id<0> m{};
  static constexpr field_id<1> v_block{};
  static constexpr field_id<2> v_row{};
  static constexpr statistic statistics[] = {
      {"block_sq", scope::parameter, reduction::power_sum, source::input},
      {"row_sq", scope::row, reduction::power_sum, source::input}};
  static constexpr stat_id<0> block_sq{};
  static constexpr stat_id<1> row_sq{};

  float b1 = 0.9f, b2 = 0.999f, eps = 1e-8f;
  // Groups whose parameters are partitioned per row (comma-separated names,
  // e.g. "embedding,output"); every other parameter is one block.
  const char* row_groups = "";

  struct scalars {
    float bias_correction1, bias_correction2_sqrt;
    std::uint32_t row_group_mask;  // bit g: group g is partitioned per row (groups 0..31)
  };
  scalars initial_scalars(const arena_info& arena) const {
    detail::require(b1 >= 0 && b1 < 1, "scale_by_adam_mini: b1 must lie in [0, 1) (got ", b1, ")");
    detail::require(b2 >= 0 && b2 < 1, "scale_by_adam_mini: b2 must lie in [0, 1) (got ", b2, ")");
    detail::require(eps > 0 && std::isfinite(eps), "scale_by_adam_mini: eps must be finite and positive (got ", eps, ")");
    std::uint32_t mask = 0;
    const std::string list = row_groups ? row_groups : "";
    std::size_t at = 0;
    while (at <= list.size() && !list.empty()) {
      const std::size_t comma = list.find(',', at);
      const std::string group = list.substr(at, comma == std::string::npos ? std::string::npos : comma - at);
      bool found = false;
      for (std::size_t g = 0; g < arena.group_names.size(); ++g)
        if (arena.group_names[g] == group) {
          detail::require(g < 32, "scale_by_adam_mini: row groups must be among the arena's first 32 groups");
          mask |= 1u << g;
          found = true;
        }
      detail::require(found, "scale_by_adam_mini: the arena has no group \"", group, "\" (row_groups)");
      if (comma == std::string::npos) break;
      at = comma + 1;
    }
    for (std::size_t p = 0; p < arena.names.size(); ++p)
      detail::require(!((mask >> arena.group_of[p]) & 1u) || arena.shapes[p].size() >= 2, "scale_by_adam_mini: "
                      "parameter \"", arena.names[p], "\" is in a row group but has rank ", arena.shapes[p].size(),
                      " (rows need rank >= 2)");
    return {1.0f, 1.0f, mask};
  }
  // Bias corrections as decide() writes them; the row groups are this
  // chain's for this arena (not state).
  scalars restored_scalars(scalars s, const scalars& initial, const scale_by_adam_mini&) const {
    detail::require_bias_corrections(s.bias_correction1, s.bias_correction2_sqrt, name);
    s.row_group_mask = initial.row_group_mask;
    return s;
  }
  template <class Ctx>
  MIXPREC_HOST_DEVICE void decide(scalars& s, const Ctx& ctx) const {
    const double t = static_cast<double>(ctx.t());
    s.bias_correction1 = static_cast<float>(1.0 - pow(static_cast<double>(b1), t));
    s.bias_correction2_sqrt = static_cast<float>(sqrt(1.0 - pow(static_cast<double>(b2), t)));
  }
  template <class E>
  MIXPREC_HOST_DEVICE bool per_row(const E& e) const {
    return (e.scalars().row_group_mask >> e.geometry().group) & 1u;
  }
  template <class E>
  MIXPREC_HOST_DEVICE void decide_parameter(const E& e) const {
    if (per_row(e) || e.geometry().size == 0) return;
    const float mean = static_cast<float>(e.statistic(block_sq) / static_cast<double>(e.geometry().size));
    const auto v = e.state(v_block);
    v.set(v.get() * b2 + (1.0f - b2) * mean);
  }
  template <class E>
  MIXPREC_HOST_DEVICE void decide_row(const E& e) const {
    if (!per_row(e) || !e.covers(v_row)) return;
    const float mean = static_cast<float>(e.statistic(row_sq) / static_cast<double>(e.cols()));
    const auto v = e.state(v_row);
    v.set(v.get() * b2 + (1.0f - b2) * mean);
  }
  template <class Ctx>
  MIXPREC_HOST_DEVICE float update(float u, const Ctx& ctx) const {
    const float mt = ctx.state(m).update([&](float old) { return old * b1 + u * (1.0f - b1); });
    const bool rows = (ctx.scalars().row_group_mask >> ctx.geometry().group) & 1u;
    const float v = rows ? ctx.state(v_row).get() : ctx.state(v_block).get();
    const float h = sqrtf(v) / ctx.scalars().bias_correction2_sqrt + eps;
    return mt * ((1.0f / ctx.scalars().bias_correction1) / h);
  }
  template <class V>
  void visit_hyperparameters(V&& v) const {
    v("b1", b1);
    v("b2", b2);
    v("eps", eps);
  }
  template <class V>
  static void visit_scalars(scalars& s, V&& v) {
    v("bias_correction1", s.bias_correction1);
    v("bias_correction2_sqrt", s.bias_correction2_sqrt);
    v("row_group_mask", s.row_group_mask);
  }
};

struct adam_mini_options {
  float lr = 1e-3f;
  float beta1 = 0.9f, beta2 = 0.999f, eps = 1e-8f;
  float weight_decay = 0.0f;
  const char* row_groups = "";  // groups partitioned per row (embedding / output matrices)
};

template <class StateFormat = float>
auto adam_mini(const adam_mini_options& o) {
  decoupled_weight_decay<constant_schedule> decay;
  decay.weight_decay = o.weight_decay;
  decay.lr = constant_schedule{o.lr};
  scale_by_adam_mini<StateFormat> s;
  s.b1 = o.beta1;
  s.b2 = o.beta2;
  s.eps = o.eps;
  s.row_groups = o.row_groups;
  return chain(decay, s, scale_by_learning_rate<constant_schedule>{constant_schedule{o.lr}}).named("adam_mini");
}

}  // namespace mixprec
