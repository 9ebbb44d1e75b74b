// chain(components...): loss scalers, clippers, optimizer stages and a
// weight writer composed at compile time into one training step.
//
//   auto step = mixprec::chain(mixprec::dynamic_loss_scale{},
//                              mixprec::clip_by_global_norm{1.0f},
//                              mixprec::adamw(options));
//   auto state = step.init(params);
//   ... backward writes loss * state.loss_scale() gradients into params.grad_data()
//   step.apply(params, state);   // statistics pass, device scalar rules, update pass
//
// Nested chains (the named optimizers are chains) are flattened; components
// act in the order given. apply() launches: one statistics pass over the
// gradients (when a component needs the non-finite flag or a norm), one
// single-thread kernel for the scalar rules, and one update pass reading
// gradients, weights and state once and writing them once; a chain with a
// statistic after an optimizer stage (LAMB) adds one measuring pass. Nothing
// is copied to the host, so on CUDA a step can be captured in a graph. A
// skipped step (a guard saw inf/NaN) changes no weight, state or count.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include <mixprec/component/pod_tuple.hpp>
#include <mixprec/detail/for_each.hpp>
#include <mixprec/detail/memory.hpp>
#include <mixprec/detail/tiles.hpp>
#include <mixprec/detail/trace.hpp>
#include <mixprec/detail/workspace.hpp>
#include <mixprec/scaling/dynamic_loss_scale.hpp>
#include <mixprec/scaling/static_loss_scale.hpp>
#include <mixprec/tensor/elementwise.hpp>
#include <mixprec/train/analysis.hpp>
#include <mixprec/train/passes.hpp>

namespace mixprec {

template <class... C>
class chain_t;
template <class Arena, class... C>
class chain_state;

namespace detail {
struct checkpoint_access;

template <class T>
struct is_chain : std::false_type {};
template <class... C>
struct is_chain<chain_t<C...>> : std::true_type {};

template <class T>
auto flatten(const T& x) {
  if constexpr (is_chain<T>::value) return x.as_tuple();
  else return std::make_tuple(x);
}
template <class... C>
chain_t<C...> chain_from_tuple(const std::tuple<C...>& t) {
  return std::apply([](const C&... c) { return chain_t<C...>(c...); }, t);
}

// Per-element state arrays of one component.
template <class C>
struct component_buffers {
  using F = typename C::state_format;
  std::vector<device_vector<F>> slots;
  state_arrays<F> arrays{};
};

template <class T>
struct is_chain_state : std::false_type {};
template <class Arena, class... C>
struct is_chain_state<chain_state<Arena, C...>> : std::true_type {};

template <class T, class... C>
constexpr std::size_t index_of_first() {
  constexpr bool match[] = {std::is_same_v<T, C>..., false};
  for (std::size_t k = 0; k < sizeof...(C); ++k)
    if (match[k]) return k;
  return sizeof...(C);
}

}  // namespace detail

// Composes components (and chains of them) into one chain.
template <class... Args>
auto chain(const Args&... args) {
  return detail::chain_from_tuple(std::tuple_cat(detail::flatten(args)...));
}

template <class Arena, class... C>
class chain_state {
  using analysis = detail::chain_analysis<C...>;
  static constexpr std::size_t slots = analysis::norm_slots;

 public:
  using arena_type = Arena;
  using chain_type = chain_t<C...>;

  // Whether init() made this state (a default-constructed one is empty).
  bool initialized() const { return !block_.empty(); }

  // Explicit, synchronising host reads of the device state. Without a
  // stream they wait for the stream the state was last used on (init,
  // apply), so they see the last step even on a non-blocking stream.
  step_scalars step() const { return block().step; }
  step_scalars step(stream s) const { return block(s).step; }
  bool last_step_skipped() const { return step().skip != 0; }
  bool last_step_skipped(stream s) const { return step(s).skip != 0; }
  std::uint64_t count() const { return step().count; }
  std::uint64_t count(stream s) const { return step(s).count; }
  template <std::size_t K>
  auto scalars() const {
    return detail::get<K>(block().comps);
  }
  template <std::size_t K>
  auto scalars(stream s) const {
    return detail::get<K>(block(s).comps);
  }
  // The loss scale of the chain's scaler (multiply the loss by it).
  float loss_scale() const { return loss_scale(last_stream_); }
  float loss_scale(stream s) const { return scalars<scaler_index()>(s).scale; }
  // The same value in device memory, for a backward pass that reads it
  // there (on CUDA a device pointer: read it in a kernel, not on the host).
  const float* loss_scale_data() const {
    require_initialized("loss_scale_data");
    const detail::chain_block<C...>* b = detail::raw(block_);
    return &detail::get<scaler_index()>(b->comps).scale;
  }

  // Multipliers of the learning rate and weight decay for one group of the arena.
  void set_group(const std::string& group, group_hyper h, stream s = {}) {
    detail::require(std::isfinite(h.lr_scale) && h.lr_scale >= 0.0f && std::isfinite(h.weight_decay_scale) &&
                        h.weight_decay_scale >= 0.0f,
                    "chain_state::set_group(\"", group, "\"): lr_scale and weight_decay_scale must be finite and "
                    "non-negative (got ", h.lr_scale, ", ", h.weight_decay_scale, ")");
    require_initialized("set_group");
    for (std::size_t g = 0; g < group_names_.size(); ++g)
      if (group_names_[g] == group) {
        detail::write_to_device(&h, detail::raw(groups_) + g, 1, s);
        return;
      }
    throw error(detail::concat("chain_state::set_group: the arena has no group named \"", group, "\""));
  }

  detail::chain_block<C...> block() const { return block(last_stream_); }
  detail::chain_block<C...> block(stream s) const {
    require_initialized("a read-back");
    return detail::read_back(detail::raw(block_), s);
  }

 private:
  void require_initialized(const char* what) const {
    detail::require(initialized(), "chain_state: ", what, " on a state that init() did not make (call step.init(params) "
                    "first)");
  }

  template <class...>
  friend class chain_t;
  friend struct detail::checkpoint_access;

  static constexpr std::size_t scaler_index() {
    constexpr std::size_t d = detail::index_of_first<dynamic_loss_scale, C...>();
    constexpr std::size_t st = detail::index_of_first<static_loss_scale, C...>();
    static_assert(d < sizeof...(C) || st < sizeof...(C), "this chain has no loss scaler");
    return d < st ? d : st;
  }

  detail::device_vector<detail::chain_block<C...>> block_;
  stream last_stream_{};
  detail::arena_signature arena_;
  std::tuple<detail::component_buffers<C>...> buffers_;
  bool use_units_ = false;
  tiling unit_tiling_;
  using first_stats = detail::first_pass_stats<slots, analysis::any_units>;
  detail::device_vector<first_stats> first_global_, unit_stats_;
  detail::device_vector<detail::split_stats> split_global_, segment_stats_;
  detail::workspace ws_;
  detail::device_vector<group_hyper> groups_;
  std::vector<std::string> group_names_;
};

template <class... C>
class chain_t {
  static_assert((std::is_trivially_copyable_v<C> && ...), "chain components must be trivially copyable value types");
  using analysis = detail::chain_analysis<C...>;
  static constexpr std::size_t slots = analysis::norm_slots;

 public:
  explicit chain_t(const C&... c) : components_(c...) {}

  std::tuple<C...> as_tuple() const { return components_; }
  template <std::size_t K>
  const auto& component() const {
    return std::get<K>(components_);
  }
  static constexpr std::size_t size() { return sizeof...(C); }

  // Whether the chain has a loss scaler (chain_state::loss_scale() needs one).
  static constexpr bool has_loss_scaler =
      detail::index_of_first<dynamic_loss_scale, C...>() < sizeof...(C) ||
      detail::index_of_first<static_loss_scale, C...>() < sizeof...(C);

  // State for `params`: device scalars, per-element state, reduction
  // workspace, all allocated here so that apply() allocates nothing.
  // Throws mixprec::error on invalid hyperparameters.
  template <class Arena>
  chain_state<Arena, C...> init(const Arena& params, stream s = {}) const {
    detail::require(params.finalized(), "chain::init: finalize() the parameters first");
    chain_state<Arena, C...> st;
    st.last_stream_ = s;
    st.arena_ = params.signature();
    detail::chain_block<C...> block{};
    block.comps = initial_scalars(std::index_sequence_for<C...>{});
    const arena_layout& layout = params.layout();
    allocate_buffers(st, params.padded_size(), s, std::index_sequence_for<C...>{});
    st.block_ = detail::allocate<detail::chain_block<C...>>(1, "the chain's scalar state");
    detail::write_to_device(&block, detail::raw(st.block_), 1, s);

    st.use_units_ = analysis::any_units;
    if constexpr (analysis::any_units) {
      std::vector<std::size_t> unit_lengths;
      // A first-axis slice per unit; an empty parameter ({0, 5}, say) has no units.
      for (const auto& p : params.list())
        unit_lengths.push_back(p.shape.rank() >= 2 && p.shape[0] > 0 ? p.size / p.shape[0] : 0);
      st.unit_tiling_ = layout.unit_tiling(unit_lengths);
    }
    const tiling& tiles = st.use_units_ ? st.unit_tiling_ : layout.tiling();
    using first_stats = detail::first_pass_stats<slots, analysis::any_units>;
    st.first_global_ = detail::allocate<first_stats>(1, "step statistics");
    st.unit_stats_ = detail::allocate<first_stats>(analysis::any_units ? tiles.unit_count() : 0, "per-unit statistics");
    st.split_global_ = detail::allocate<detail::split_stats>(1, "step statistics");
    st.segment_stats_ = detail::allocate<detail::split_stats>(analysis::has_split ? tiles.segment_count() : 0,
                                                             "per-parameter statistics");
    const std::size_t partial = sizeof(first_stats) > sizeof(detail::split_stats) ? sizeof(first_stats)
                                                                                  : sizeof(detail::split_stats);
    st.ws_.reserve(detail::workspace::round_up(tiles.tile_count() * partial));

    st.group_names_ = params.group_names();
    const std::vector<group_hyper> groups(st.group_names_.size());
    st.groups_ = detail::allocate<group_hyper>(groups.size(), "the group table");
    detail::write_to_device(groups.data(), detail::raw(st.groups_), groups.size(), s);
    return st;
  }

  // One training step: updates weights, model copy, state and step count
  // from the gradients in params (or changes nothing if a guard skips it).
  template <class Arena, class State>
  void apply(Arena& params, State& state, stream s = {}) const {
    if constexpr (state_matches<Arena, State>()) run<detail::update_mode::full>(params, state, s);
  }

  // Runs the chain and writes the transformed update back into the
  // gradients instead of updating weights (e.g. unscale and clip alone).
  template <class Arena, class State>
  void transform_gradients(Arena& params, State& state, stream s = {}) const {
    static_assert(!analysis::has_split, "transform_gradients: this chain needs a split update pass; use apply()");
    if constexpr (state_matches<Arena, State>()) run<detail::update_mode::to_gradients>(params, state, s);
  }

 private:
  // A readable error for a state of another arena type or chain (instead
  // of a "no matching function" listing every component type).
  template <class Arena, class State>
  static constexpr bool state_matches() {
    constexpr bool is_state = detail::is_chain_state<State>::value;
    static_assert(is_state, "mixprec::chain: the second argument must be the chain_state that this chain's init() made");
    if constexpr (is_state) {
      constexpr bool same_arena = std::is_same_v<typename State::arena_type, Arena>;
      constexpr bool same_chain = std::is_same_v<typename State::chain_type, chain_t>;
      static_assert(same_arena,
                    "mixprec::chain: the state was made by init() for an arena of another type (the Model, Grad or "
                    "Master format of mixprec::parameters differs); make the state from this arena");
      static_assert(same_chain, "mixprec::chain: the state was made by another chain's init(); make it with this chain");
      return same_arena && same_chain;
    } else {
      return false;
    }
  }

  template <std::size_t... K>
  detail::pod_tuple<typename C::scalars...> initial_scalars(std::index_sequence<K...>) const {
    return detail::make_pod_tuple(std::get<K>(components_).initial_scalars()...);
  }

  template <class Arena, std::size_t... K>
  void allocate_buffers(chain_state<Arena, C...>& st, std::size_t n, stream s, std::index_sequence<K...>) const {
    (allocate_one<K>(st, n, s), ...);
  }
  template <std::size_t K, class Arena>
  void allocate_one(chain_state<Arena, C...>& st, std::size_t n, stream s) const {
    const auto& c = std::get<K>(components_);
    auto& b = std::get<K>(st.buffers_);
    using F = typename std::remove_reference_t<decltype(b)>::F;
    const std::size_t count = c.state_slots();
    detail::require(count <= 4, c.name, ": at most 4 per-element state arrays");
    b.slots.resize(count);
    for (std::size_t k = 0; k < count; ++k) {
      b.slots[k] = detail::allocate<F>(n, "optimizer state");
      const float v = c.initial_state(k);
      if (v != 0.0f) fill(tensor_view<F>(detail::raw(b.slots[k]), n), v, round_nearest_even{}, s);
    }
    for (std::size_t k = 0; k < count; ++k) b.arrays.slot[k] = detail::raw(b.slots[k]);
    b.arrays.seed = 0x6d69787072656300ull + K;  // "mixprec" + component index
  }

  template <class Arena>
  detail::step_env<Arena, C...> environment(Arena& params, chain_state<Arena, C...>& st) const {
    st.require_initialized("chain::apply");
    detail::require(params.finalized(), "chain::apply: finalize() the parameters first");
    if (params.signature().hash != st.arena_.hash)
      throw error(detail::concat("chain::apply: the state was made by init() for another parameter arena: ",
                                 st.arena_.difference(params.signature()), " (the state's arena first, this one second)"));
    detail::step_env<Arena, C...> env{};
    env.comps = std::apply([](const C&... c) { return detail::make_pod_tuple(c...); }, components_);
    fill_states(env, st, std::index_sequence_for<C...>{});
    fill_orders(env, std::make_index_sequence<analysis::prefix>{});
    env.block = detail::raw(st.block_);
    if constexpr (Arena::has_master) env.arena.master = params.master_data();
    env.arena.model = params.model_data();
    env.arena.grad = params.grad_data();
    const tiling& tiles = st.use_units_ ? st.unit_tiling_ : params.layout().tiling();
    env.tiles = tiles.tiles();
    env.segment_groups = params.layout().segment_groups();
    env.groups = detail::raw(st.groups_);
    env.first_global = detail::raw(st.first_global_);
    env.unit_stats = detail::raw(st.unit_stats_);
    env.split_global = detail::raw(st.split_global_);
    env.segment_stats = detail::raw(st.segment_stats_);
    return env;
  }
  template <class Env, class Arena, std::size_t... K>
  static void fill_states(Env& env, chain_state<Arena, C...>& st, std::index_sequence<K...>) {
    ((detail::get<K>(env.states) = std::get<K>(st.buffers_).arrays), ...);
  }
  template <class Env, std::size_t... K>
  void fill_orders(Env& env, std::index_sequence<K...>) const {
    (fill_order<K>(env), ...);
  }
  template <std::size_t K, class Env>
  void fill_order(Env& env) const {
    if constexpr (analysis::global[K]) env.slot_order[analysis::norm_slot(K)] = std::get<K>(components_).norm_order();
  }

  template <detail::update_mode Mode, class Arena>
  void run(Arena& params, chain_state<Arena, C...>& st, stream s) const {
    using namespace detail;
    const step_env<Arena, C...> env = environment(params, st);
    st.last_stream_ = s;
    const tiling& tiles = st.use_units_ ? st.unit_tiling_ : params.layout().tiling();

    constexpr bool statistics = analysis::any_non_finite || analysis::norm_slots > 0 || analysis::any_units;
    if constexpr (statistics) {
      bool squares = true;
      if constexpr (analysis::norm_slots > 0)
        for (std::size_t k = 0; k < analysis::norm_slots; ++k) squares = squares && env.slot_order[k] == 2.0f;
      if (squares) statistics_pass<true>(env, st, tiles, s);
      else statistics_pass<false>(env, st, tiles, s);
    }
    run_single(s, decide_body<Arena, C...>{env, false});

    launch_update<Mode, analysis::bypassable>(bypass_mask(), env, st, tiles, s);
  }

  // Pass 1: the non-finite flag and every norm the prefix asks for, in one
  // read of the gradients.
  template <bool Squares, class Env, class Arena>
  void statistics_pass(const Env& env, chain_state<Arena, C...>& st, const tiling& tiles, stream s) const {
    using namespace detail;
    using stats = first_pass_stats<slots, analysis::any_units>;
    const std::size_t ntiles = tiles.tile_count();
    trace_pass("statistics", true, false);
    const statistics_body<Squares, Arena, C...> body{{env.tiles}, env};
    stats* partials = st.ws_.template slice<stats>(0, ntiles);
    reduce_tiles(s, ntiles, body, partials);
    combine_all(s, body, static_cast<const stats*>(partials), ntiles, detail::raw(st.first_global_));
    if constexpr (analysis::any_units)
      combine_segments(s, body, static_cast<const stats*>(partials), tiles.unit_offsets(), tiles.unit_count(),
                       detail::raw(st.unit_stats_));
  }

  // The measuring half of a split update pass.
  template <detail::update_mode Mode, std::uint32_t Bypass, class Env, class Arena>
  void measure_pass(const Env& env, chain_state<Arena, C...>& st, const tiling& tiles, stream s) const {
    using namespace detail;
    const std::size_t ntiles = tiles.tile_count();
    trace_pass("update (measure)", true, false);
    const update_body<Mode, Bypass, Arena, C...> measure{{env.tiles}, env};
    split_stats* partials = st.ws_.template slice<split_stats>(0, ntiles);
    reduce_tiles(s, ntiles, measure, partials);
    combine_all(s, measure, static_cast<const split_stats*>(partials), ntiles, detail::raw(st.split_global_));
    combine_segments(s, measure, static_cast<const split_stats*>(partials), tiles.segment_offsets(),
                     tiles.segment_count(), detail::raw(st.segment_stats_));
  }

  // The components switched off by their options, as a bit mask.
  std::uint32_t bypass_mask() const {
    std::uint32_t mask = 0;
    std::size_t k = 0;
    std::apply([&](const C&... c) { ((mask |= (c.bypassed() && k < 32) ? (1u << k) : 0u, ++k), ...); }, components_);
    return mask & analysis::bypassable;
  }

  // Runs the update pass instantiated for the bypass mask that matches
  // `mask`: one instantiation per subset of the bypassable components.
  template <detail::update_mode Mode, std::uint32_t Sub, class Env, class Arena>
  void launch_update(std::uint32_t mask, const Env& env, chain_state<Arena, C...>& st, const tiling& tiles,
                     stream s) const {
    if (mask == Sub) {
      update_for<Mode, Sub>(env, st, tiles, s);
    } else if constexpr (Sub != 0) {
      launch_update<Mode, ((Sub - 1) & analysis::bypassable)>(mask, env, st, tiles, s);
    }
  }

  template <detail::update_mode Mode, std::uint32_t Bypass, class Env, class Arena>
  void update_for(const Env& env, chain_state<Arena, C...>& st, const tiling& tiles, stream s) const {
    using namespace detail;
    const std::size_t ntiles = tiles.tile_count();
    if constexpr (analysis::has_split) {
      if (std::get<analysis::split>(components_).norm_order() == infinity_norm)
        measure_pass<update_mode::measure_max, Bypass>(env, st, tiles, s);
      else
        measure_pass<update_mode::measure, Bypass>(env, st, tiles, s);
      run_single(s, decide_body<Arena, C...>{env, true});
      trace_pass("update (finish)", true, true);
      for_each_tile(s, ntiles, update_body<update_mode::finish, Bypass, Arena, C...>{{env.tiles}, env});
    } else {
      trace_pass(Mode == update_mode::to_gradients ? "update (to gradients)" : "update", true,
                 Mode != update_mode::to_gradients);
      for_each_tile(s, ntiles, update_body<Mode, Bypass, Arena, C...>{{env.tiles}, env});
    }
  }

  std::tuple<C...> components_;
};

}  // namespace mixprec
