// chain(components...): loss scalers, clippers, optimizer stages, monitors
// and a weight writer composed at compile time into one training step.
//
//   auto step = mixprec::chain(mixprec::dynamic_loss_scale{},
//                              mixprec::clip_by_global_norm{1.0f},
//                              mixprec::adamw(options));
//   auto state = step.init(params);
//   ... backward writes loss * state.loss_scale() gradients into params.grad_data()
//   step.apply(params, state);   // the plan's passes and scalar rules, no host sync
//
// Nested chains (the named optimizers are chains) are flattened; components
// act in the order given. The plan (train/plan.hpp; step.describe()) says
// which passes a step makes: a statistics pass when a component needs
// statistics of values known when the step starts, one measuring pass per
// later level of statistics, then the update pass, which reads gradients,
// weights and state once and writes them once. Nothing is copied to the
// host, so on CUDA a step can be captured in a graph. A skipped step (a
// guard saw inf/NaN) changes no weight, state or count.
//
// This header composes the chain (chain(), chain_t: names, the plan,
// init()); train/chain_state.hpp holds the state init() makes and
// train/step_runner.hpp what apply() runs.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include <mixprec/cast/convert_range.hpp>
#include <mixprec/component/pod_tuple.hpp>
#include <mixprec/component/protocol.hpp>
#include <mixprec/component/protocol_check.hpp>
#include <mixprec/detail/memory.hpp>
#include <mixprec/detail/workspace.hpp>
#include <mixprec/tensor/arena_layout.hpp>
#include <mixprec/tensor/elementwise.hpp>
#include <mixprec/train/chain_state.hpp>
#include <mixprec/train/layout.hpp>
#include <mixprec/train/plan.hpp>
#include <mixprec/train/state_allocation.hpp>
#include <mixprec/train/step_runner.hpp>

namespace mixprec {

namespace detail {
template <class T>
struct is_chain : std::false_type {};
template <class... C>
struct is_chain<chain_t<C...>> : std::true_type {};

// A flattened component and the named chain it came from (nullptr: none).
template <class T>
auto flatten(const T& x) {
  if constexpr (is_chain<T>::value) return std::make_pair(x.as_tuple(), x.owners());
  else return std::make_pair(std::make_tuple(x), std::array<const char*, 1>{nullptr});
}
template <std::size_t... N>
auto join_owners(const std::array<const char*, N>&... a) {
  std::array<const char*, (N + ... + 0)> out{};
  std::size_t k = 0;
  ((std::copy(a.begin(), a.end(), out.begin() + static_cast<long>(k)), k += N), ...);
  return out;
}
}  // namespace detail

// Composes components (and chains of them) into one chain.
template <class... Args>
auto chain(const Args&... args) {
  auto parts = std::make_tuple(detail::flatten(args)...);
  auto comps = std::apply([](const auto&... p) { return std::tuple_cat(p.first...); }, parts);
  auto owners = std::apply([](const auto&... p) { return detail::join_owners(p.second...); }, parts);
  return std::apply([&](const auto&... c) { return chain_t<std::decay_t<decltype(c)>...>(owners, c...); }, comps);
}

template <class... C>
class chain_t {
  // Each component's protocol mistakes, reported one by one (component/protocol_check.hpp).
  static_assert((detail::component_check<C>::ok && ...));
  using plan_type = chain_plan<C...>;
  static constexpr detail::plan_data d = plan_type::data;
  static_assert(plan_type::valid, "mixprec::chain: see the rule above");

 public:
  using plan = plan_type;
  static constexpr std::size_t n = sizeof...(C);

  explicit chain_t(const C&... c) : components_(c...) { owners_.fill(nullptr); }
  chain_t(const std::array<const char*, n>& owners, const C&... c) : components_(c...), owners_(owners) {}

  // This chain under a name (the named optimizers: "adamw"), used in
  // messages and checkpoints.
  chain_t named(const char* label) const {
    chain_t r = *this;
    r.owners_.fill(label);
    return r;
  }

  std::tuple<C...> as_tuple() const { return components_; }
  const std::array<const char*, n>& owners() const { return owners_; }
  template <std::size_t K>
  const auto& component() const {
    return std::get<K>(components_);
  }
  static constexpr std::size_t size() { return n; }

  // The chain as the user composed it: named chains by their names.
  std::vector<std::string> user_names() const {
    std::vector<std::string> out;
    constexpr const char* names[] = {C::name..., ""};
    for (std::size_t k = 0; k < n; ++k) {
      if (owners_[k] == nullptr) out.push_back(names[k]);
      else if (k == 0 || owners_[k - 1] != owners_[k]) out.push_back(owners_[k]);
    }
    return out;
  }
  // Component k's name with its owner: "adamw/scale_by_adam".
  std::string path(std::size_t k) const {
    constexpr const char* names[] = {C::name..., ""};
    return owners_[k] ? std::string(owners_[k]) + "/" + names[k] : std::string(names[k]);
  }

  // Whether the chain has a loss scaler (else loss_scale() is 1).
  static constexpr bool has_loss_scaler = d.scaler >= 0;
  // Whether its passes need row and column positions (then a shard of the
  // arena must begin and end on row boundaries).
  static constexpr bool uses_positions = d.positions;
  // Elements per block of its per-block statistics (0: none); a shard of the
  // arena must then begin and end on block boundaries within parameters.
  static constexpr std::uint32_t block_size = d.block;
  // The plan in words, each component named by its path (as checkpoints name it).
  std::string describe() const {
    return plan::describe([this](int k) { return path(static_cast<std::size_t>(k)); });
  }

  // State for `params`: device scalars, state fields, statistics and
  // reduction buffers, all allocated here so that apply() allocates
  // nothing. Throws mixprec::error on invalid hyperparameters. `shard`: the
  // elements this state updates (a rank's shard, mixprec/dist): per-element
  // state is kept for them only, and they must have master weights here.
  template <class Arena>
  MIXPREC_COLD chain_state<Arena, C...> init(const Arena& params, stream s = {}, element_range shard = {}) const {
    detail::require(params.finalized(), "chain::init: finalize() the parameters first");
    shard.end = shard.end < params.padded_size() ? shard.end : params.padded_size();
    detail::require(shard.begin <= shard.end, "chain::init: the shard is reversed");
    if constexpr (Arena::has_master)
      detail::require(shard.begin >= params.master_begin() && shard.end <= params.master_end(),
                      "chain::init: the arena keeps master weights for elements [", params.master_begin(), ", ",
                      params.master_end(), ") only, not for the shard [", shard.begin, ", ", shard.end, ")");
    chain_state<Arena, C...> st;
    st.shard_ = shard;
    st.last_stream_ = s;
    st.arena_ = params.signature();
    st.elements_ = params.element_count();
    std::vector<shape> shapes;
    std::vector<std::size_t> offsets;
    std::vector<std::uint32_t> groups;
    const arena_info info = detail::arena_info_of(params);
    for (const auto& p : params.list()) {
      shapes.push_back(p.shape);
      offsets.push_back(p.offset);
      groups.push_back(p.group_id);
    }
    detail::chain_block<C...> block{};
    block.comps = initial_scalars(info, std::index_sequence_for<C...>{});
    block.at_start = block.comps;
    bool column_stats = false, slices = false;
    for (int j = 0; j < d.nstats; ++j) {
      column_stats = column_stats || detail::gather_of(d.stats[j].decl.where) == detail::scope_gather::columns;
      slices = slices || detail::tiles_inside(d.stats[j].decl.where);
    }
    st.layout_ = detail::make_step_layout(shapes, offsets, groups, d.positions, column_stats, slices, d.block,
                                          shard.begin, shard.end);
    allocate_fields(st, params, info, s, std::index_sequence_for<C...>{});
    detail::allocate_statistics(d, st.layout_, params.count(), st.stats_, st.slice_rows_, st.passes_, st.ws_);

    st.block_ = detail::allocate<detail::chain_block<C...>>(1, "the chain's scalar state");
    detail::write_to_device(&block, detail::raw(st.block_), 1, s);
    st.one_ = detail::allocate<float>(1, "a constant");
    const float one = 1.0f;
    detail::write_to_device(&one, detail::raw(st.one_), 1, s);

    st.group_names_ = params.group_names();
    const std::vector<group_hyper> g(st.group_names_.size());
    st.groups_ = detail::allocate<group_hyper>(g.size(), "the group table");
    detail::write_to_device(g.data(), detail::raw(st.groups_), g.size(), s);
    st.groups_of_ = detail::allocate<std::uint32_t>(groups.size(), "the parameters' groups");
    detail::write_to_device(groups.data(), detail::raw(st.groups_of_), groups.size(), s);
    return st;
  }

  // One training step: updates weights, model copy, state and step count
  // from the gradients in params (or changes nothing if a guard skips it).
  // `hooks` (mixprec/dist) exchange the gradients before the passes,
  // combine each pass's statistics across ranks before the scalar rules,
  // and share the updated model copy after the update pass.
  template <class Arena, class State, class Hooks = no_step_hooks>
  void apply(Arena& params, State& state, stream s = {}, Hooks&& hooks = {}) const {
    if constexpr (state_matches<Arena, State>())
      detail::step_runner<C...>{components_}.template run<false>(params, state, s, hooks);
  }

  // Runs the chain and writes the transformed update back into the
  // gradients instead of updating weights (e.g. unscale and clip alone).
  template <class Arena, class State>
  void transform_gradients(Arena& params, State& state, stream s = {}) const {
    no_step_hooks none;
    if constexpr (state_matches<Arena, State>())
      detail::step_runner<C...>{components_}.template run<true>(params, state, s, none);
  }

 private:
  // A readable error for a state of another arena type or chain (instead
  // of a "no matching function" listing every component type).
  template <class Arena, class State>
  static constexpr bool state_matches() {
    constexpr bool is_state = detail::is_chain_state<State>::value;
    static_assert(is_state,
                  "mixprec::chain: the second argument must be the chain_state that this chain's init() made");
    if constexpr (is_state) {
      constexpr bool same_arena = std::is_same_v<typename State::arena_type, Arena>;
      constexpr bool same_chain = std::is_same_v<typename State::chain_type, chain_t>;
      static_assert(same_arena,
                    "mixprec::chain: the state was made by init() for an arena of another type (the Model, Grad or "
                    "Master format of mixprec::parameters differs); make the state from this arena");
      static_assert(same_chain,
                    "mixprec::chain: the state was made by another chain's init(); make it with this chain");
      return same_arena && same_chain;
    } else {
      return false;
    }
  }

  template <std::size_t... K>
  detail::pod_tuple<detail::scalars_of<C>...> initial_scalars(const arena_info& info, std::index_sequence<K...>) const {
    return detail::make_pod_tuple(detail::initial_scalars_of(std::get<K>(components_), info)...);
  }

  // Every state field: entries per the field's extent and parameter set,
  // filled with its initial value.
  template <class Arena, std::size_t... K>
  void allocate_fields(chain_state<Arena, C...>& st, const Arena& params, const arena_info& info, stream s,
                       std::index_sequence<K...>) const {
    // Sized once, never resized: a vector of device vectors that grows copies them
    // (their moves are not noexcept), which instantiates device-to-device copies.
    st.fields_ = std::vector<detail::field_buffer>(detail::total_fields<C...>());
    (allocate_component_fields<K>(st, params, info, s), ...);
  }
  // What one field's allocation needs from its component; the rest of the
  // work is allocate_field's, compiled once per translation unit rather than
  // once per component (it was the largest function of a chain's setup).
  template <std::size_t K, class Arena>
  void allocate_component_fields(chain_state<Arena, C...>& st, const Arena& params, const arena_info& info,
                                 stream s) const {
    using component = std::tuple_element_t<K, std::tuple<C...>>;
    const auto& c = std::get<K>(components_);
    constexpr std::size_t nf = detail::field_count<component>();
    for (std::size_t j = 0; j != nf; ++j) {
      detail::field_setup setup{detail::field_of<component>(j),
                                j,
                                component::name,
                                detail::uses_field(c, j),
                                detail::initial_state_of(c, j),
                                nullptr,
                                &c};
      if constexpr (detail::has_initial_state_for_parameter<component>::value)
        setup.per_parameter = &detail::initial_state_of_parameter<component>;
      detail::field_buffer& b = st.fields_[detail::first_field<C...>(K) + j];
      if (detail::allocate_field(b, setup, info, st.layout_, st.shard_, s))
        detail::copy_weights(b, params, st.shard_, s);
    }
  }

  std::tuple<C...> components_;
  std::array<const char*, n> owners_{};
};

}  // namespace mixprec
