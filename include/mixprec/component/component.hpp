// The component protocol: what a loss scaler, a clipper, an optimizer stage,
// a weight writer or a monitor provides so that chain() (train/chain.hpp)
// can fold any sequence of them into statistics passes, scalar rules run on
// the device between them, and one update pass.
//
// Every component transforms the stream of updates (initially the gradient,
// as in Optax). A component is a trivially copyable value type holding its
// hyperparameters. All members but `name` are optional:
//
//   static constexpr const char* name;        who it is (plans, checkpoints, messages)
//   struct traits : component_traits {...};   how its element rule behaves (below)
//   struct scalars {...};                     its device-resident scalar state
//   scalars initial_scalars() const;          host; throws mixprec::error on bad hyperparameters
//   scalars initial_scalars(const arena_info&) const;   the same, seeing the arena (names, shapes, groups)
//   scalars restored_scalars(scalars saved, const scalars& initial, const C& saved_with) const;
//                                             host; scalars a checkpoint brings: throws mixprec::error on
//                                             values the component cannot hold under the hyperparameters
//                                             they were saved with (saved_with; `this` when unchanged),
//                                             returns them made valid for its own (a loss scale clamped
//                                             into a lowered max_scale); initial: what init() gives.
//                                             Default: taken as they are.
//   static constexpr state_field state[];     named state fields with format and extent
//   using generator = G;                      the counter-based generator of its stochastic rounding
//                                             (bfloat16 state fields written stochastically; a writer's
//                                             weights): splitmix_generator (default) or philox_generator
//   bool uses(std::size_t field) const;       whether the options need a field (default: all)
//   static constexpr int variants; int variant() const;   alternative element rules chosen by the
//                                             options (ctx.variant, a constant: no element loop branches)
//   float initial_state(std::size_t field) const;   (default 0)
//   float initial_state(std::size_t field, const arena_info&, std::size_t p) const;
//                                             per-parameter, per-row and per-column fields: the initial
//                                             value of parameter p's entries, from its name, shape or group
//                                             (Adam-mini's partition by name); per-element and scalar fields
//                                             start from initial_state(field)
//   static constexpr statistic statistics[];  the reductions it needs, by scope, op and source
//   float power(std::size_t stat) const;      p of a power_sum statistic (default 2)
//   void decide(scalars&, decide_context&) const;            the scalar rule, once per step on the device
//   void decide_row / decide_column / decide_parameter(entry&) const;   per-entry rules (row, column, parameter state)
//   float update(float u, element_context&) const;            the element rule (default: identity)
//   float multiplier(const scalars&) const;   (uniform multipliers) the factor every element was multiplied by
//   float report(quantity, const scalars& at_start, const scalars& now) const;  values for monitors
//   void visit_hyperparameters(V&&) const;    v(name, value) for each hyperparameter (checkpoints, plans)
//   static void visit_scalars(scalars&, V&&); v(name, field) for each scalar (checkpoints by name)
//
// The element rule is called in whichever pass runs it, with a context that
// says which (statistics, measuring, update) and gives the element's index,
// parameter, shape, row and column, weight, group multipliers, step number,
// the component's scalars and statistics, and its state. State is written
// through ctx.state(field).update(f): f maps the stored value to the new
// one, the new value is stored (rounded to the field's format) and
// returned. When a pass recomputes a component's output from state that an
// earlier pass of the same step already updated (a chain whose statistics
// need an optimizer's output, as LAMB's trust ratio), the engine hands the
// rule a read-only view: update() then returns the stored value without
// calling f, so no rule needs an `if` for it.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>
#include <type_traits>
#include <vector>

#include <mixprec/cast/convert.hpp>
#include <mixprec/core/config.hpp>
#include <mixprec/core/pinned_arithmetic.hpp>
#include <mixprec/format/format_traits.hpp>

MIXPREC_PINNED_BEGIN

namespace mixprec {

// How a component's element rule behaves; derive and override what differs.
// A component without an element rule (`update`) is the identity on the
// update and needs none of these: the engine treats it as linear and, if
// it keeps no state fields, as before_statistics.
struct component_traits {
  // The rule depends only on the element and on scalars known when the step
  // starts (unscaling by the loss scale in effect, clipping by value): it is
  // applied in the statistics pass too, and sees its scalars as they were
  // when the step started. Such a component keeps no per-element state.
  static constexpr bool before_statistics = false;
  // The rule is u -> c * u with c finite, non-zero and the same for every
  // element of a step: norms of later values follow by scaling.
  static constexpr bool linear = false;
  // Linear with c decided this step from its statistics (clipping by the
  // global norm); provides float multiplier(const scalars&). Statistics of
  // later values are measured before it and scaled by c.
  static constexpr bool uniform_multiplier = false;
  // Its scalar rule may skip the step (ctx.skip()): nothing is then written.
  static constexpr bool may_skip = false;
  // Its scalar rule may end a step after itself (ctx.hold(): gradient accumulation).
  static constexpr bool may_hold = false;
  // It writes the weights (see writers/writer.hpp); at most one per chain.
  static constexpr bool writes_weights = false;
  // Its output can be recomputed from its updated state (false for Lion,
  // whose output uses the state before the update).
  static constexpr bool replayable = true;
  // It is a loss scaler: its scalars have `float scale`, the loss scale in
  // effect for the next backward pass (chain_state::loss_scale()).
  static constexpr bool loss_scaler = false;
  // Its scalar rule runs after every other one (monitors reading reports).
  static constexpr bool observes = false;
  // Its element rule returns the update unchanged (it scales the weight, as
  // decoupled weight decay, or keeps state, as an EMA of the weights):
  // statistics after it need no pass that runs it.
  static constexpr bool keeps_update = false;
  // Its element rule reads ctx.row() / ctx.col().
  static constexpr bool needs_position = false;
};

// Where a state field has entries.
enum class extent : std::uint8_t {
  element,    // one per element of the arena (moments)
  parameter,  // one per parameter
  row,        // one per row of a parameter's last two dimensions (Adafactor's factors)
  column,     // one per column of a parameter's last two dimensions
  scalar      // one
};
// Which parameters a field covers (rows and columns of a parameter of rank
// below 2 are those of it as one row: a vector [n] is [1, n]).
// every_matrix: like matrices, and init() refuses an arena with a parameter of rank < 2.
enum class parameter_set : std::uint8_t { all, matrices, vectors, every_matrix };  // rank >= 2, rank < 2

struct state_field {
  const char* name;
  format_id format;  // float, bfloat16, or block-scaled 8-bit codes (dynamic8s, dynamic8u, e4m3)
  extent where = extent::element;
  parameter_set on = parameter_set::all;
  bool saved = true;          // false: recomputed every step (not in checkpoints)
  bool stochastic = true;     // bfloat16 entries are written with stochastic rounding (else to nearest)
  bool from_weights = false;  // per-element: starts as a copy of the weights (else initial_state())
  std::uint32_t block = 0;    // 8-bit codes: elements per scale (0: 256; format/block_codes.hpp)
};

enum class scope : std::uint8_t {
  global,     // one value over the whole arena
  parameter,  // one per parameter
  row,        // one per row (last two dimensions)
  column,     // one per column (last two dimensions)
  slice,      // one per first-axis slice ([out, ...] layout; a parameter of rank <= 1 is one slice)
  matrix,     // one per matrix of the last two dimensions ([..., R, C] is prod(...) matrices; rank <= 1: one)
  block       // one per run of `block` consecutive elements of a parameter (its last run may be shorter)
};
// The number of scopes (the last enumerator + 1). What a scope means to the
// engine is its policy in train/scopes.hpp.
inline constexpr std::size_t scope_count = static_cast<std::size_t>(scope::block) + 1;
enum class reduction : std::uint8_t {
  sum,               // sum of x
  power_sum,         // sum of |x|^p (p = power(k); max |x| when p is infinite)
  max_abs,           // max |x| (NaN if any is NaN)
  non_finite_count,  // number of inf/NaN (at least 1 when any, exact when measured alone)
  zero_count,        // number of values equal to zero (+0 or -0)
  subnormal_count    // number of non-zero values below the smallest normal of the gradients' own
                     // format in magnitude (of the stored gradients: its subnormals)
};
enum class source : std::uint8_t {
  input,     // the update as it reaches the component
  output,    // the update as it leaves the component
  weights,   // the weights when the step starts (fp32 master, or the model)
  gradient,  // the gradients as stored (scaled, in their own format)
  state      // the entries of one of the component's row or column state fields (statistic::field) once
             // its entry rules (decide_row / decide_column / decide_parameter) have run this step; read
             // in the element rule (declare it with field_statistic, below)
};
struct statistic {
  const char* name;
  scope where;
  reduction op;
  source of;
  std::uint32_t block = 0;      // scope::block: elements per block, a power of two from 16 to 4096
  const char* field = nullptr;  // source::state: the name of the state field it reduces
};

// A statistic of one of the component's own row or column state fields,
// reduced over each matrix (scope::matrix), parameter or the whole arena
// after the entry rules that write the field:
//
//   field_statistic("row_var_sum", scope::matrix, reduction::sum, "row_var")
constexpr statistic field_statistic(const char* name, scope where, reduction op, const char* field) {
  return statistic{name, where, op, source::state, 0, field};
}

// Compile-time handles of a component's fields and statistics, looked up
// by name in its own tables, so that a handle is tied to its declaration:
//
//   static constexpr field_id<field_index(state, "exp_avg")> m{};
//   static constexpr stat_id<statistic_index(statistics, "norm")> norm{};
//
// then ctx.state(m), ctx.statistic(norm). A name that is not in the table
// does not compile. (field_id<K> with a literal K still works; the engine
// refuses a K past the table.)
template <std::size_t K>
struct field_id {
  static constexpr std::size_t index = K;
};
template <std::size_t K>
struct stat_id {
  static constexpr std::size_t index = K;
};

namespace detail {
constexpr bool same_text(const char* a, const char* b) {
  if (a == nullptr || b == nullptr) return a == b;
  while (*a != 0 && *a == *b) ++a, ++b;
  return *a == *b;
}
// Not constexpr: reaching it in a handle's lookup is the compile error.
inline void no_state_field_or_statistic_has_this_name() {}
}  // namespace detail

template <std::size_t N>
constexpr std::size_t field_index(const state_field (&table)[N], const char* name) {
  for (std::size_t k = 0; k < N; ++k)
    if (detail::same_text(table[k].name, name)) return k;
  detail::no_state_field_or_statistic_has_this_name();
  return N;
}
template <std::size_t N>
constexpr std::size_t statistic_index(const statistic (&table)[N], const char* name) {
  for (std::size_t k = 0; k < N; ++k)
    if (detail::same_text(table[k].name, name)) return k;
  detail::no_state_field_or_statistic_has_this_name();
  return N;
}

// The arena as init() shows it to initial_scalars(const arena_info&).
struct arena_info {
  std::vector<std::string> names, groups;  // per parameter
  std::vector<std::vector<std::size_t>> shapes;
  std::vector<std::string> group_names;  // group id -> name
  std::vector<std::uint32_t> group_of;   // per parameter: its group id
};

// Values a component can report to monitors (record_statistics).
enum class quantity : std::uint8_t { loss_scale, clip_coefficient, gradient_norm, learning_rate };

// The order p of a norm: any p >= 1, or infinity_norm.
inline constexpr float infinity_norm = std::numeric_limits<float>::infinity();

// Chain-level per-step state, on the device.
struct step_scalars {
  std::uint64_t count = 0;          // completed updates (not skipped, not held)
  std::uint64_t skipped_total = 0;  // steps skipped so far
  std::uint64_t t = 0;              // the step being applied (count + 1)
  std::uint32_t skip = 0;           // this step is skipped (set by guards)
  std::uint32_t hold = 0;           // this step only accumulates (every_k before the update)
};

// Per-group multipliers of the hyperparameters (e.g. no weight decay on biases).
struct group_hyper {
  float lr_scale = 1.0f;
  float weight_decay_scale = 1.0f;
};

// Defaults for components that need no scalars.
struct no_scalars {
  std::uint32_t unused = 0;
};

namespace detail {

// Inverse scale as PyTorch computes it: the reciprocal in double, rounded to float.
MIXPREC_HOST_DEVICE float reciprocal_as_pytorch(float scale) {
  return static_cast<float>(1.0 / static_cast<double>(scale));
}

MIXPREC_HOST_DEVICE bool finite(double x) { return x - x == 0.0; }

// |x|^p combined by sum, or |x| combined by max for p = infinity.
MIXPREC_HOST_DEVICE double root_of(double acc, float p) {
  if (p == 2.0f) return sqrt(acc);
  if (p == 1.0f || p == infinity_norm) return acc;
  return pow(acc, 1.0 / static_cast<double>(p));
}

}  // namespace detail
}  // namespace mixprec

MIXPREC_PINNED_END
