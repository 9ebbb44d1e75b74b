// Adam-mini (Zhang et al. 2024, "Adam-mini: Use Fewer Learning Rates To
// Gain More"), partitioned as the authors' implementation (PyPI `adam-mini`
// 1.1.1, Adam_mini) partitions it: Adam's first moment per element, and
// one second moment per block of parameters, the EMA of the block's mean
// of g^2:
//
//   v_b = b2 v_b + (1 - b2) mean_b(g^2)      (one value per block)
//   m   = lerp(m, g, 1 - b1)                 (per element)
//   w  -= lr m (1 / (sqrt(v_b) / sqrt(1 - b2^t) + eps)) / (1 - b1^t)
//
// The blocks follow each parameter's name, in lower case, and its shape;
// the first list that matches decides (items are substrings):
//
//   element_names  "bias": one block per element (plain Adam). Kept for
//                  parameters of rank < 2 only (init() refuses a matching
//                  matrix, which the authors' code accepts: take it out
//                  of the list or rename it).
//   head_names     "k_proj,q_proj,wq,wk,query,key": one block per attention
//                  head, dim * dim / n_heads consecutive elements (the
//                  authors' grad.view(-1, dim * dim / n_heads); a key of
//                  grouped-query attention, [n_kv_heads * head_dim, dim],
//                  has n_kv_heads of them). A head must be whole rows of
//                  the parameter's last dimension, and a vector at most
//                  one head (init() refuses the rest; the authors' code
//                  splits any multiple of a head).
//   row_names      "embed,embd,wte,lm_head,output,final_layer,v_proj,wv,
//                  value,o_proj,wo,attn.proj,feed_forward,linear,mlp":
//                  one block per row of a matrix (per token of an
//                  embedding or output layer, per output neuron of the
//                  value, attention-output and MLP matrices). The authors'
//                  code fails on anything but a matrix here; a vector is
//                  one block (one row), a parameter of rank > 2 is refused.
//   otherwise      one block per parameter (norms).
//
// and decoupled weight decay w *= 1 - lr * wd, none for names containing
// "norm", "ln" or "bias" (no_decay_names). The lists are options, with the
// authors' sets as defaults (their embd/output/v/attn_proj/mlp sets, which
// all get one block per row, are one list here). Declared shapes are not
// changed: initialisers, checkpoints and safetensors see the parameters as
// added. The order of rounding is the authors' (the lerp, the reciprocal
// of h times the bias correction's, the bias corrections in double rounded
// once); block means are reduced in double, so results agree with theirs
// to about 1e-7 relative per step, not bit for bit.
//
// State: the first moment per element (float or bfloat16), the second
// moments in float: one per element of the element blocks, one per row of
// a matrix split in heads or rows (each row of a head holds the head's
// value), one per parameter otherwise.
//
//   adam_mini(o) = [decoupled_weight_decay_by_name(lr * wd), scale_by_adam_mini, scale_by_learning_rate]
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>
#include <type_traits>
#include <vector>

#include <mixprec/component/component.hpp>
#include <mixprec/component/protocol.hpp>
#include <mixprec/core/error.hpp>
#include <mixprec/core/pinned_arithmetic.hpp>
#include <mixprec/detail/square_root.hpp>
#include <mixprec/optim/name_patterns.hpp>
#include <mixprec/optim/schedules.hpp>
#include <mixprec/optim/stages.hpp>
#include <mixprec/train/chain.hpp>

MIXPREC_PINNED_BEGIN

namespace mixprec {

// The authors' defaults (Adam_mini's name sets and its dim / n_heads defaults).
namespace adam_mini_defaults {
inline constexpr const char* element_names = "bias";
inline constexpr const char* head_names = "k_proj,q_proj,wq,wk,query,key";
inline constexpr const char* row_names =
    "embed,embd,wte,lm_head,output,final_layer,v_proj,wv,value,o_proj,wo,attn.proj,feed_forward,linear,mlp";
inline constexpr const char* no_decay_names = "norm,ln,bias";
inline constexpr std::uint32_t dim = 2048, n_heads = 32;
}  // namespace adam_mini_defaults

template <class F = float, class G = default_generator>
struct scale_by_adam_mini {
  static_assert(detail::is_state_format_v<F>, "scale_by_adam_mini: the first moment is float or bfloat16");
  using generator = G;  // of a bfloat16 first moment's stochastic rounding
  static constexpr const char* name = "scale_by_adam_mini";
  static constexpr state_field state[] = {
      {"exp_avg", format_traits<F>::id},
      {"block_exp_avg_sq", format_id::f32, extent::parameter},
      {"row_exp_avg_sq", format_id::f32, extent::row, parameter_set::matrices},
      {"exp_avg_sq", format_id::f32, extent::element, parameter_set::vectors},
      // The partition of each parameter, from its name and shape at init():
      // -1 one block per element, 0 one block, k >= 1 blocks of k rows.
      {"block_rows", format_id::f32, extent::parameter, parameter_set::all, /*saved=*/false}};
  static constexpr field_id<field_index(state, "exp_avg")> m{};
  static constexpr field_id<field_index(state, "block_exp_avg_sq")> v_block{};
  static constexpr field_id<field_index(state, "row_exp_avg_sq")> v_row{};
  static constexpr field_id<field_index(state, "exp_avg_sq")> v_element{};
  static constexpr field_id<field_index(state, "block_rows")> block_rows{};
  static constexpr statistic statistics[] = {{"block_sq", scope::parameter, reduction::power_sum, source::input},
                                             {"row_sq", scope::row, reduction::power_sum, source::input}};
  static constexpr stat_id<statistic_index(statistics, "block_sq")> block_sq{};
  static constexpr stat_id<statistic_index(statistics, "row_sq")> row_sq{};

  float b1 = 0.9f, b2 = 0.999f, eps = 1e-8f;
  std::uint32_t dim = adam_mini_defaults::dim, n_heads = adam_mini_defaults::n_heads;
  std::uint32_t n_kv_heads = 0;  // 0: n_heads (the authors' None); must divide n_heads
  const char* element_names = adam_mini_defaults::element_names;
  const char* head_names = adam_mini_defaults::head_names;
  const char* row_names = adam_mini_defaults::row_names;

  struct scalars {
    float inverse_bias_correction1;  // 1 / (1 - b1^t) in double, rounded once
    float bias_correction2_sqrt;
  };
  scalars initial_scalars(const arena_info& arena) const {
    detail::require(b1 >= 0 && b1 < 1, "scale_by_adam_mini: b1 must lie in [0, 1) (got ", b1, ")");
    detail::require(b2 >= 0 && b2 < 1, "scale_by_adam_mini: b2 must lie in [0, 1) (got ", b2, ")");
    detail::require(eps > 0 && std::isfinite(eps), "scale_by_adam_mini: eps must be finite and positive (got ", eps,
                    ")");
    detail::require(dim > 0 && n_heads > 0, "scale_by_adam_mini: dim and n_heads must be positive (got ", dim, " and ",
                    n_heads, ")");
    detail::require(n_kv_heads == 0 || n_heads % n_kv_heads == 0, "scale_by_adam_mini: n_kv_heads (", n_kv_heads,
                    ") must divide n_heads (", n_heads, ")");
    for (std::size_t p = 0; p < arena.names.size(); ++p) (void)partition(arena, p);  // refuses what it cannot split
    return {1.0f, 1.0f};
  }
  float initial_state(std::size_t field, const arena_info& arena, std::size_t p) const {
    return field == block_rows.index ? partition(arena, p) : 0.0f;
  }

  // Bias corrections as decide() writes them: 1 / (1 - b1^t) >= 1, sqrt(1 - b2^t) in (0, 1].
  scalars restored_scalars(scalars s, const scalars&, const scale_by_adam_mini&) const {
    detail::require(std::isfinite(s.inverse_bias_correction1) && s.inverse_bias_correction1 >= 1.0f, name,
                    ": the checkpoint's inverse bias correction ", s.inverse_bias_correction1,
                    " must be finite and at least 1");
    detail::require(s.bias_correction2_sqrt > 0.0f && s.bias_correction2_sqrt <= 1.0f, name,
                    ": the checkpoint's bias correction ", s.bias_correction2_sqrt, " must lie in (0, 1]");
    return s;
  }
  template <class Ctx>
  MIXPREC_HOST_DEVICE void decide(scalars& s, const Ctx& ctx) const {
    // As the authors' code: bias corrections in double (Python floats), then used in float.
    const double t = static_cast<double>(ctx.t());
    s.inverse_bias_correction1 = static_cast<float>(1.0 / (1.0 - pow(static_cast<double>(b1), t)));
    s.bias_correction2_sqrt = static_cast<float>(sqrt(1.0 - pow(static_cast<double>(b2), t)));
  }
  // One block per parameter.
  template <class E>
  MIXPREC_HOST_DEVICE void decide_parameter(const E& e) const {
    if (e.state(block_rows).get() != 0.0f || e.geometry().size == 0) return;
    const float mean = static_cast<float>(e.statistic(block_sq) / static_cast<double>(e.geometry().size));
    const auto v = e.state(v_block);
    v.set(detail::mul(v.get(), b2) + detail::mul(1.0f - b2, mean));
  }
  // Blocks of k rows: every row of a block sums the block's rows in the same
  // order and keeps the same value.
  template <class E>
  MIXPREC_HOST_DEVICE void decide_row(const E& e) const {
    if (!e.covers(v_row)) return;
    const float k = e.state(block_rows).get();
    if (!(k >= 1.0f)) return;
    const std::uint64_t rows = static_cast<std::uint64_t>(k);
    const std::uint64_t first = e.index() / rows * rows;
    double sum = 0.0;
    for (std::uint64_t r = 0; r < rows; ++r) sum += e.statistic_of_row(row_sq, first + r);
    const float mean = static_cast<float>(sum / static_cast<double>(rows * e.cols()));
    const auto v = e.state(v_row);
    v.set(detail::mul(v.get(), b2) + detail::mul(1.0f - b2, mean));
  }
  template <class Ctx>
  MIXPREC_HOST_DEVICE float update(float u, const Ctx& ctx) const {
    const float mt = ctx.state(m).update([&](float old) { return detail::torch_lerp(old, u, 1.0f - b1); });
    const float k = ctx.state(block_rows).get();
    const float correction2 = ctx.scalars().bias_correction2_sqrt;
    if (k < 0.0f) {
      // Per element, as the authors' Adam branch: v*b2 + ((1 - b2) g) g.
      const float vt = ctx.state(v_element).update(
          [&](float old) { return detail::mul(old, b2) + detail::mul((1.0f - b2) * u, u); });
      const float h = detail::square_root(vt) / correction2 + eps;
      return (ctx.scalars().inverse_bias_correction1 * mt) / h;
    }
    const float v = k > 0.0f ? ctx.state(v_row).get() : ctx.state(v_block).get();
    const float h = detail::square_root(v) / correction2 + eps;
    return detail::mul(mt, (1.0f / h) * ctx.scalars().inverse_bias_correction1);
  }
  template <class V>
  void visit_hyperparameters(V&& v) const {
    v("b1", b1);
    v("b2", b2);
    v("eps", eps);
    v("dim", dim);
    v("n_heads", n_heads);
    v("n_kv_heads", n_kv_heads);
    v("name_lists", detail::name_pattern_fingerprint({element_names, head_names, row_names}));
  }
  template <class V>
  static void visit_scalars(scalars& s, V&& v) {
    v("inverse_bias_correction1", s.inverse_bias_correction1);
    v("bias_correction2_sqrt", s.bias_correction2_sqrt);
  }

  // Parameter p's partition (block_rows), or a mixprec::error saying why it
  // cannot be split as its name asks.
  float partition(const arena_info& arena, std::size_t p) const {
    const std::string lower = detail::lower_case(arena.names[p]);
    const std::vector<std::size_t>& s = arena.shapes[p];
    std::uint64_t size = 1;
    for (const std::size_t d : s) size *= d;
    const std::size_t rank = s.size();
    if (size == 0) return 0.0f;  // nothing to split (and never updated)
    const auto who = [&] { return "scale_by_adam_mini: parameter \"" + arena.names[p] + "\""; };
    if (detail::matches_any(lower, detail::name_patterns(element_names, name, "element_names"))) {
      detail::require(rank < 2, who(), " matches element_names (one second moment per element, as Adam) but has rank ",
                      rank,
                      "; per-element second moments are kept for parameters of rank < 2: take it out of "
                      "element_names or rename it");
      return -1.0f;
    }
    if (detail::matches_any(lower, detail::name_patterns(head_names, name, "head_names"))) {
      const std::uint64_t square = std::uint64_t{dim} * dim;
      detail::require(square % n_heads == 0, "scale_by_adam_mini: dim * dim (", square,
                      ") is not a multiple of n_heads (", n_heads, ")");
      const std::uint64_t head = square / n_heads;
      detail::require(size % head == 0, who(), " matches head_names but its ", size,
                      " elements are not a whole number of heads of dim * dim / n_heads = ", head,
                      " (set dim and n_heads to the model's)");
      if (rank < 2) {
        detail::require(size == head, who(), " matches head_names; as a vector it can be one head of ", head,
                        " elements, not ", size / head);
        return 0.0f;
      }
      const std::uint64_t cols = s[rank - 1];
      detail::require(head % cols == 0, who(), ": a head (dim * dim / n_heads = ", head,
                      " elements) is not a whole number of rows of ", cols);
      detail::require(head / cols < (std::uint64_t{1} << 24), who(), ": ", head / cols, " rows per head is too many");
      return static_cast<float>(head / cols);
    }
    if (detail::matches_any(lower, detail::name_patterns(row_names, name, "row_names"))) {
      detail::require(rank <= 2, who(), " matches row_names (one second moment per row) but has rank ", rank,
                      "; the authors' implementation splits matrices only: take it out of row_names or rename it");
      return rank == 2 ? 1.0f : 0.0f;
    }
    return 0.0f;
  }
};

struct adam_mini_options {
  float lr = 1e-3f;
  float beta1 = 0.9f, beta2 = 0.999f, eps = 1e-8f;
  float weight_decay = 0.0f;
  // The model's hidden size and attention heads (the authors' dim, n_heads, n_kv_heads; 0: n_heads).
  std::uint32_t dim = adam_mini_defaults::dim, n_heads = adam_mini_defaults::n_heads, n_kv_heads = 0;
  // Comma-separated substrings of lower-case parameter names (the header's lists).
  const char* element_names = adam_mini_defaults::element_names;
  const char* head_names = adam_mini_defaults::head_names;
  const char* row_names = adam_mini_defaults::row_names;
  const char* no_decay_names = adam_mini_defaults::no_decay_names;
};

template <class StateFormat = float, class Generator = default_generator>
auto adam_mini(const adam_mini_options& o) {
  decoupled_weight_decay_by_name<constant_schedule> decay;
  decay.weight_decay = o.weight_decay;
  decay.lr = constant_schedule{o.lr};
  decay.no_decay_names = o.no_decay_names;
  scale_by_adam_mini<StateFormat, Generator> s;
  s.b1 = o.beta1;
  s.b2 = o.beta2;
  s.eps = o.eps;
  s.dim = o.dim;
  s.n_heads = o.n_heads;
  s.n_kv_heads = o.n_kv_heads;
  s.element_names = o.element_names;
  s.head_names = o.head_names;
  s.row_names = o.row_names;
  return chain(decay, s, scale_by_learning_rate<constant_schedule>{constant_schedule{o.lr}}).named("adam_mini");
}

}  // namespace mixprec

MIXPREC_PINNED_END
