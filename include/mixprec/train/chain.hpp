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
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include <mixprec/component/pod_tuple.hpp>
#include <mixprec/component/protocol.hpp>
#include <mixprec/component/protocol_check.hpp>
#include <mixprec/detail/for_each.hpp>
#include <mixprec/detail/memory.hpp>
#include <mixprec/detail/tiles.hpp>
#include <mixprec/detail/trace.hpp>
#include <mixprec/cast/convert_range.hpp>
#include <mixprec/detail/workspace.hpp>
#include <mixprec/tensor/arena_layout.hpp>
#include <mixprec/tensor/arena_signature.hpp>
#include <mixprec/tensor/elementwise.hpp>
#include <mixprec/train/environment.hpp>
#include <mixprec/train/layout.hpp>
#include <mixprec/train/pass_runner.hpp>
#include <mixprec/train/passes.hpp>
#include <mixprec/train/plan.hpp>

namespace mixprec {

template <class... C>
class chain_t;
template <class Arena, class... C>
class chain_state;

// What a distributed step does around the passes (mixprec/dist); nothing here.
struct no_step_hooks {
  template <class Arena>
  void before_passes(Arena&, stream) {}
  void combine(double*, std::size_t, bool, stream) {}
  template <class Arena>
  void after_update(Arena&, stream) {}
};

namespace detail {
struct checkpoint_access;

template <class T>
struct is_chain : std::false_type {};
template <class... C>
struct is_chain<chain_t<C...>> : std::true_type {};
template <class T>
struct is_chain_state : std::false_type {};
template <class Arena, class... C>
struct is_chain_state<chain_state<Arena, C...>> : std::true_type {};

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

// One state field of a component, allocated.
struct field_buffer {
  device_vector<std::uint8_t> bytes;
  device_vector<std::uint64_t> base;
  std::vector<std::uint64_t> base_h;
  std::uint64_t entries = 0;
  bool used = false;
};

// The buffers of one measuring pass.
struct pass_buffers {
  std::vector<device_vector<double>> rows, columns;  // partials per row / column statistic
  device_vector<std::uint8_t> field_out;            // the global combination, then one per parameter
};

// The arena as initial_scalars(const arena_info&) sees it (init, and a
// checkpoint load that checks the chain's hyperparameters as init does).
template <class Arena>
arena_info arena_info_of(const Arena& params) {
  arena_info info;
  info.group_names = params.group_names();
  for (const auto& p : params.list()) {
    info.names.push_back(p.name);
    info.groups.push_back(p.group);
    info.shapes.emplace_back(p.shape.begin(), p.shape.end());
    info.group_of.push_back(p.group_id);
  }
  return info;
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

template <class Arena, class... C>
class chain_state {
  using plan = chain_plan<C...>;
  using env_type = detail::step_env<Arena, C...>;
  static constexpr detail::plan_data d = plan::data;

 public:
  using arena_type = Arena;
  using chain_type = chain_t<C...>;

  // Whether init() made this state (a default-constructed one is empty).
  bool initialized() const { return !block_.empty(); }
  // The elements whose per-element state this holds (all of them unless
  // init() was given a shard).
  element_range shard() const { return shard_; }

  // Explicit, synchronising host reads of the device state. Without a
  // stream they wait for the stream the state was last used on (init,
  // apply), so they see the last step even on a non-blocking stream.
  step_scalars step() const { return block().step; }
  step_scalars step(stream s) const { return block(s).step; }
  bool last_step_skipped() const { return step().skip != 0; }
  bool last_step_skipped(stream s) const { return step(s).skip != 0; }
  std::uint64_t count() const { return step().count; }
  std::uint64_t count(stream s) const { return step(s).count; }
  // The scalars of component K (of the flattened chain).
  template <std::size_t K>
  auto scalars() const {
    return detail::get<K>(block().comps);
  }
  template <std::size_t K>
  auto scalars(stream s) const {
    return detail::get<K>(block(s).comps);
  }
  // The loss scale of the chain's loss scaler (multiply the loss by it); 1
  // when the chain has none.
  float loss_scale() const { return loss_scale(last_stream_); }
  float loss_scale(stream s) const {
    if constexpr (d.scaler >= 0) return detail::get<static_cast<std::size_t>(d.scaler)>(block(s).comps).scale;
    else {
      require_initialized("a read-back");
      return 1.0f;
    }
  }
  // The same value in device memory, for a backward pass that reads it
  // there (on CUDA a device pointer: read it in a kernel, not on the host).
  const float* loss_scale_data() const {
    require_initialized("loss_scale_data");
    if constexpr (d.scaler >= 0) {
      const detail::chain_block<C...>* b = detail::raw(block_);
      return &detail::get<static_cast<std::size_t>(d.scaler)>(b->comps).scale;
    } else {
      return detail::raw(one_);
    }
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

  // Bytes of state the chain keeps (every field of every component), and
  // per element of the arena.
  std::size_t state_bytes() const {
    std::size_t b = 0;
    for (const auto& f : fields_) b += f.bytes.size();
    return b;
  }
  // Entries of the largest statistic (the buffer a distributed step
  // combines them in needs this many per rank).
  std::size_t largest_statistic() const {
    std::size_t n = 1;
    for (const auto& v : stats_) n = v.size() > n ? v.size() : n;
    return n;
  }
  double bytes_per_parameter() const {
    return elements_ == 0 ? 0.0 : static_cast<double>(state_bytes()) / static_cast<double>(elements_);
  }

  // A state field of component K (of the flattened chain), by name, as a
  // view of its entries (per-element fields: the arena's layout, so
  // parameter p's entries are at its offset). For reading (an EMA of the
  // weights for evaluation, say) between steps.
  template <std::size_t K, class T = float>
  tensor_view<const T> field(const std::string& name) const {
    require_initialized("field");
    using component = std::tuple_element_t<K, std::tuple<C...>>;
    for (std::size_t j = 0; j < detail::field_count<component>(); ++j) {
      const state_field f = detail::field_of<component>(j);
      if (name != f.name) continue;
      detail::require(f.format == format_traits<T>::id, "chain_state::field: ", component::name, ".", name, " is ",
                      format_name(f.format), ", not ", format_traits<T>::name);
      const detail::field_buffer& b = fields_[detail::first_field<C...>(K) + j];
      detail::require(b.used, "chain_state::field: ", component::name, ".", name, " is not used by these options");
      return tensor_view<const T>(reinterpret_cast<const T*>(detail::raw(b.bytes)), b.entries);
    }
    throw error(detail::concat("chain_state::field: ", component::name, " has no state field \"", name, "\""));
  }

  detail::chain_block<C...> block() const { return block(last_stream_); }
  detail::chain_block<C...> block(stream s) const {
    require_initialized("a read-back");
    return detail::read_back(detail::raw(block_), s);
  }

 private:
  template <class...>
  friend class chain_t;
  friend struct detail::checkpoint_access;

  void require_initialized(const char* what) const {
    detail::require(initialized(), "chain_state: ", what, " on a state that init() did not make (call step.init(params) "
                    "first)");
  }

  detail::device_vector<detail::chain_block<C...>> block_;
  detail::device_vector<float> one_;  // the loss scale of a chain without a scaler
  stream last_stream_{};
  detail::arena_signature arena_;
  detail::step_layout layout_;
  std::vector<detail::field_buffer> fields_;  // all components' fields, in order
  std::vector<detail::device_vector<double>> stats_;  // reduced statistics
  std::vector<detail::device_vector<double>> slice_rows_;  // per-row values of per-slice statistics
  std::vector<detail::pass_buffers> passes_;
  detail::workspace ws_;
  detail::device_vector<group_hyper> groups_;
  detail::device_vector<std::uint32_t> groups_of_;
  std::vector<std::string> group_names_;
  std::size_t elements_ = 0;
  element_range shard_{};
};

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
  static std::string describe() { return plan::describe(); }

  // State for `params`: device scalars, state fields, statistics and
  // reduction buffers, all allocated here so that apply() allocates
  // nothing. Throws mixprec::error on invalid hyperparameters. `shard`: the
  // elements this state updates (a rank's shard, mixprec/dist): per-element
  // state is kept for them only, and they must have master weights here.
  template <class Arena>
  chain_state<Arena, C...> init(const Arena& params, stream s = {}, element_range shard = {}) const {
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
      column_stats = column_stats || d.stats[j].decl.where == scope::column;
      slices = slices || d.stats[j].decl.where == scope::slice;
    }
    st.layout_ =
        detail::make_step_layout(shapes, offsets, groups, d.positions, column_stats, slices, shard.begin, shard.end);
    allocate_fields(st, params, info, s, std::index_sequence_for<C...>{});
    allocate_statistics(st, params.count());

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
    if constexpr (state_matches<Arena, State>()) run<false>(params, state, s, hooks);
  }

  // Runs the chain and writes the transformed update back into the
  // gradients instead of updating weights (e.g. unscale and clip alone).
  template <class Arena, class State>
  void transform_gradients(Arena& params, State& state, stream s = {}) const {
    no_step_hooks none;
    if constexpr (state_matches<Arena, State>()) run<true>(params, state, s, none);
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
  detail::pod_tuple<detail::scalars_of<C>...> initial_scalars(const arena_info& info, std::index_sequence<K...>) const {
    return detail::make_pod_tuple(detail::initial_scalars_of(std::get<K>(components_), info)...);
  }

  // Every state field: entries per the field's extent and parameter set,
  // filled with its initial value.
  template <class Arena, std::size_t... K>
  void allocate_fields(chain_state<Arena, C...>& st, const Arena& params, const arena_info& info, stream s,
                       std::index_sequence<K...>) const {
    st.fields_.resize(detail::total_fields<C...>());
    (allocate_component_fields<K>(st, params, info, s), ...);
  }
  template <std::size_t K, class Arena>
  void allocate_component_fields(chain_state<Arena, C...>& st, const Arena& params, const arena_info& info,
                                 stream s) const {
    using component = std::tuple_element_t<K, std::tuple<C...>>;
    const auto& c = std::get<K>(components_);
    constexpr std::size_t nf = detail::field_count<component>();
    for (std::size_t j = 0; j != nf; ++j) {
      const state_field f = detail::field_of<component>(j);
      detail::field_buffer& b = st.fields_[detail::first_field<C...>(K) + j];
      b.used = detail::uses_field(c, j);
      if (!b.used) continue;
      const auto& geo = st.layout_.geometry;
      b.base_h.assign(geo.size(), detail::no_entry);
      std::uint64_t next = 0;
      for (std::size_t p = 0; p < geo.size(); ++p) {
        detail::require(f.on != parameter_set::every_matrix || geo[p].rank >= 2, component::name, ": state field \"",
                        f.name, "\" has an entry per ", f.where == extent::column ? "column" : "row",
                        " of every parameter's last two dimensions, but parameter \"", params[p].name, "\" has rank ",
                        geo[p].rank);
        if (!detail::field_covers(f.on, geo[p].rank)) continue;
        switch (f.where) {
          case extent::element: break;  // below
          case extent::row: b.base_h[p] = next; next += geo[p].rows; break;
          case extent::column: b.base_h[p] = next; next += geo[p].batches * geo[p].cols; break;
          case extent::parameter: b.base_h[p] = next; next += 1; break;
          case extent::scalar: b.base_h[p] = 0; next = 1; break;
        }
      }
      if (f.where == extent::element) {
        // Entry of element i: base + (i - offset), within the state's shard.
        const auto segments = detail::element_segments(detail::segment_geometry_of(geo), f.on, st.shard_.begin, st.shard_.end);
        for (std::size_t p = 0; p < geo.size(); ++p)
          if (f.on == parameter_set::all) b.base_h[p] = geo[p].offset - st.shard_.begin;
        for (const detail::element_segment& g : segments)
          for (std::size_t p = 0; p < geo.size(); ++p)
            if (f.on != parameter_set::all && g.first >= geo[p].offset && g.first < geo[p].offset + geo[p].size)
              b.base_h[p] = g.index - (g.first - geo[p].offset);
        next = detail::entries_of(segments);
      }
      b.entries = next;
      const std::size_t width = f.format == format_id::bf16 ? 2 : 4;
      b.bytes = detail::allocate<std::uint8_t>(next * width, "optimizer state");
      b.base = detail::allocate<std::uint64_t>(b.base_h.size(), "a state table");
      detail::write_to_device(b.base_h.data(), detail::raw(b.base), b.base_h.size(), s);
      if (f.from_weights) {
        detail::require(f.where == extent::element && f.on == parameter_set::all && f.format == format_id::f32,
                        component::name, ": state field \"", f.name, "\" starts from the weights, so it must be a "
                        "float field of every element");
        if constexpr (Arena::has_master)
          detail::copy_device(params.master_data() + (st.shard_.begin - params.master_begin()),
                              reinterpret_cast<float*>(detail::raw(b.bytes)), next, s);
        else
          convert_n<float>(params.model_data() + st.shard_.begin, next, reinterpret_cast<float*>(detail::raw(b.bytes)),
                           round_nearest_even{}, s);
        continue;
      }
      const float v = detail::initial_state_of(c, j);  // the buffer starts at zero
      if constexpr (detail::has_initial_state_for_parameter<component>::value) {
        if (f.where == extent::parameter || f.where == extent::row || f.where == extent::column) {
          // Each parameter's entries from the component (its name, shape, group).
          std::vector<float> values(next, v);
          for (std::size_t p = 0; p < geo.size(); ++p) {
            if (b.base_h[p] == detail::no_entry) continue;
            const std::uint64_t count = f.where == extent::parameter ? 1
                                        : f.where == extent::row     ? geo[p].rows
                                                                     : geo[p].batches * geo[p].cols;
            std::fill_n(values.begin() + static_cast<std::ptrdiff_t>(b.base_h[p]), count, c.initial_state(j, info, p));
          }
          if (f.format == format_id::f32) {
            detail::write_to_device(values.data(), reinterpret_cast<float*>(detail::raw(b.bytes)), next, s);
          } else {
            std::vector<bfloat16> narrow(next);
            for (std::size_t e = 0; e < next; ++e) narrow[e] = convert<bfloat16>(values[e], round_nearest_even{});
            detail::write_to_device(narrow.data(), reinterpret_cast<bfloat16*>(detail::raw(b.bytes)), next, s);
          }
          continue;
        }
      }
      if (v != 0.0f && f.format == format_id::bf16)
        fill(tensor_view<bfloat16>(reinterpret_cast<bfloat16*>(detail::raw(b.bytes)), next), v, round_nearest_even{}, s);
      else if (v != 0.0f)
        fill(tensor_view<float>(reinterpret_cast<float*>(detail::raw(b.bytes)), next), v, round_nearest_even{}, s);
    }
  }

  template <class Arena>
  void allocate_statistics(chain_state<Arena, C...>& st, std::size_t params) const {
    const detail::step_layout& L = st.layout_;
    st.stats_.clear();
    st.slice_rows_.clear();
    for (int j = 0; j < d.nstats; ++j) {
      const scope w = d.stats[j].decl.where;
      const std::size_t n = w == scope::global ? 1
                            : w == scope::parameter ? params
                            : w == scope::row ? L.rows
                            : w == scope::column ? L.columns
                                                 : L.slices;
      st.stats_.push_back(detail::allocate<double>(n > 0 ? n : 1, "step statistics"));
      st.slice_rows_.push_back(
          detail::allocate<double>(w == scope::slice ? (L.rows > 0 ? L.rows : 1) : 0, "per-row sums of slices"));
    }
    st.passes_.clear();
    std::size_t partial_bytes = 16;
    for (int q = 0; q + 1 < d.npasses; ++q) {
      const detail::pass_entry& p = d.passes[q];
      detail::pass_buffers b;
      for (int k = 0; k < p.row_stats; ++k)
        b.rows.push_back(detail::allocate<double>(L.row_partials > 0 ? L.row_partials : 1, "per-row partials"));
      for (int k = 0; k < p.column_stats; ++k)
        b.columns.push_back(
            detail::allocate<double>(L.column_partials > 0 ? L.column_partials : 1, "per-column partials"));
      const std::size_t value = sizeof(double) * static_cast<std::size_t>(p.fields > 0 ? p.fields : 1);
      b.field_out = detail::allocate<std::uint8_t>(value * (1 + params), "step statistics");
      partial_bytes = std::max(partial_bytes, detail::workspace::round_up(value * L.tile_count()) +
                                                  detail::workspace::round_up(value * detail::combine_blocks(L.tile_count())));
      st.passes_.push_back(std::move(b));
    }
    st.ws_.reserve(detail::workspace::round_up(partial_bytes));
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
    env.block = detail::raw(st.block_);
    if constexpr (Arena::has_master) {
      env.arena.master = params.master_data();
      env.arena.master_begin = params.master_begin();
    }
    env.arena.model = params.model_data();
    env.arena.grad = params.grad_data();
    env.tiles = detail::raw(st.layout_.tiles);
    env.geometry = detail::raw(st.layout_.geometry_d);
    env.params = params.count();
    env.groups_of = detail::raw(st.groups_of_);
    env.groups = detail::raw(st.groups_);
    for (std::size_t f = 0; f < st.fields_.size(); ++f) {
      detail::field_buffer& b = st.fields_[f];
      env.fields[f] = {b.used ? static_cast<void*>(detail::raw(b.bytes)) : nullptr,
                       b.used ? detail::raw(b.base) : nullptr, detail::field_seed(f)};
    }
    for (int j = 0; j < d.nstats; ++j) env.stats[j] = detail::raw(st.stats_[static_cast<std::size_t>(j)]);
    env.rows = st.layout_.rows;
    env.columns = st.layout_.columns;
    env.slices = st.layout_.slices;
    env.elements = params.element_count();
    env.shard_begin = st.shard_.begin;
    return env;
  }
  template <bool ToGradients, class Arena, class Hooks>
  void run(Arena& params, chain_state<Arena, C...>& st, stream s, Hooks& hooks) const {
    using namespace detail;
    using env_t = step_env<Arena, C...>;
    const env_t env = environment(params, st);
    st.last_stream_ = s;
    const std::size_t ntiles = st.layout_.tile_count();
    hooks.before_passes(params, s);
    dispatch<variant_combinations<C...>() - 1, ToGradients>(variant_code(), env, st, ntiles, s, hooks);
    hooks.after_update(params, s);
  }

  // The combination of the components' variants their options select.
  int variant_code() const {
    int code = 0, radix = 1;
    std::apply([&](const C&... c) {
      ((code += detail::variant_of(c) * radix, radix *= detail::variant_count<C>()), ...);
    }, components_);
    return code;
  }
  template <int Code, bool ToGradients, class Env, class Arena, class Hooks>
  void dispatch(int code, const Env& env, chain_state<Arena, C...>& st, std::size_t ntiles, stream s,
                Hooks& hooks) const {
    if (code == Code) {
      run_levels<0, ToGradients, Code>(env, st, ntiles, s, hooks);
      detail::trace_pass(ToGradients ? "update (to gradients)" : "update", true, !ToGradients);
      detail::run_update(s, ntiles, detail::update_body<ToGradients, Env, Arena, Code>{env});
    } else if constexpr (Code > 0) {
      dispatch<Code - 1, ToGradients>(code, env, st, ntiles, s, hooks);
    }
  }

  // For each level: its measuring pass (if it has statistics), then its
  // scalar rules and entry rules.
  template <int L, bool ToGradients, int Code, class Env, class Arena, class Hooks>
  void run_levels(const Env& env, chain_state<Arena, C...>& st, std::size_t ntiles, stream s, Hooks& hooks) const {
    if constexpr (L <= d.max_level) {
      constexpr int q = pass_of_level(L);
      if constexpr (q >= 0) measure<q, Code>(env, st, ntiles, s, hooks);
      detail::run_single(s, detail::decide_body<L, Env>{env});
      run_entries<L>(env, st, s, std::index_sequence_for<C...>{});
      run_levels<L + 1, ToGradients, Code>(env, st, ntiles, s, hooks);
    }
  }
  static constexpr int pass_of_level(int L) {
    for (int q = 0; q + 1 < d.npasses; ++q)
      if (d.passes[q].level == L) return q;
    return -1;
  }

  template <int L, class Env, class Arena, std::size_t... K>
  void run_entries(const Env& env, chain_state<Arena, C...>& st, stream s, std::index_sequence<K...>) const {
    (run_entries_of<L, K>(env, st, s), ...);
  }
  template <int L, std::size_t K, class Env, class Arena>
  void run_entries_of(const Env& env, chain_state<Arena, C...>& st, stream s) const {
    using component = std::tuple_element_t<K, std::tuple<C...>>;
    if constexpr (d.level[K] == L) {
      if constexpr (detail::has_decide_row<component>::value)
        detail::for_each_index(s, st.layout_.rows, detail::entry_body<K, extent::row, Env>{env});
      if constexpr (detail::has_decide_column<component>::value)
        detail::for_each_index(s, st.layout_.columns, detail::entry_body<K, extent::column, Env>{env});
      if constexpr (detail::has_decide_parameter<component>::value)
        detail::for_each_index(s, env.params, detail::entry_body<K, extent::parameter, Env>{env});
    }
  }

  // Measuring pass q: per-tile partials, then the fixed-order combinations
  // into every statistic it reduces.
  template <int q, int Code, class Env, class Arena, class Hooks>
  void measure(const Env& env, chain_state<Arena, C...>& st, std::size_t ntiles, stream s, Hooks& hooks) const {
    using namespace detail;
    constexpr pass_entry p = d.passes[q];
    trace_pass(p.kind == pass_kind::statistics ? "statistics" : "update (measure)", true, false);
    bool squares = true;
    float power[max_statistics];
    int k = 0;
    for (int j = 0; j < d.nstats; ++j) {
      if (d.stats[j].pass != q) continue;
      const float pw = power_of_stat(j);
      power[k++] = pw;
      if (d.stats[j].decl.op == reduction::power_sum) squares = squares && pw == 2.0f;
    }
    if (squares) measure_with<q, true, Code>(env, st, ntiles, s, power);
    else measure_with<q, false, Code>(env, st, ntiles, s, power);
    // Every rank's statistics, combined before the scalar rules (mixprec/dist).
    for (int j = 0; j < d.nstats; ++j) {
      if (d.stats[j].pass != q) continue;
      const bool is_max = d.stats[j].decl.op == reduction::max_abs ||
                          (d.stats[j].decl.op == reduction::power_sum && power_of_stat(j) == infinity_norm);
      auto& values = st.stats_[static_cast<std::size_t>(j)];
      hooks.combine(raw(values), values.size(), is_max, s);
    }
  }
  float power_of_stat(int j) const {
    float p = 2.0f;
    const int comp = d.stats[j].component;
    const std::size_t local = static_cast<std::size_t>(d.stats[j].local);
    std::size_t k = 0;
    std::apply([&](const C&... c) { ((p = (static_cast<int>(k++) == comp) ? detail::power_of(c, local) : p), ...); },
               components_);
    return p;
  }

  template <int q, bool Squares, int Code, class Env, class Arena>
  void measure_with(const Env& env, chain_state<Arena, C...>& st, std::size_t ntiles, stream s,
                    const float* power) const {
    using namespace detail;
    using body_t = measure_body<q, Squares, Env, Code>;
    using value_t = typename body_t::value_type;
    constexpr pass_entry p = d.passes[q];
    body_t body{};
    body.env = env;
    for (int k = 0; k < body_t::nstats; ++k) body.power[k] = power[k];
    body.min_normal = format_traits<typename Arena::grad_type>::min_normal();
    pass_buffers& pb = st.passes_[q];
    for (int k = 0; k < p.row_stats; ++k) body.row_partials[k] = raw(pb.rows[static_cast<std::size_t>(k)]);
    for (int k = 0; k < p.column_stats; ++k) body.column_partials[k] = raw(pb.columns[static_cast<std::size_t>(k)]);
    value_t* partials = st.ws_.template slice<value_t>(0, ntiles);
    value_t* scratch = st.ws_.template slice<value_t>(workspace::round_up(ntiles * sizeof(value_t)), combine_blocks(ntiles));
    run_measure(s, ntiles, body, partials);
    // Global and per-parameter statistics: the tile partials combined.
    value_t* out = reinterpret_cast<value_t*>(raw(pb.field_out));
    combine_all(s, body, static_cast<const value_t*>(partials), ntiles, out, scratch);
    combine_segments(s, body, static_cast<const value_t*>(partials), raw(st.layout_.param_tile_offsets), env.params,
                     out + 1);
    for_each_index(s, env.params > 0 ? env.params : 1, scatter_fields<q, value_t, Env>{env, out, env.params});
    // Per-row, per-column and per-slice statistics.
    for (int j = 0; j < d.nstats; ++j) {
      const stat_entry& e = d.stats[j];
      if (e.pass != q || e.field) continue;
      const bool is_max = e.decl.op == reduction::max_abs ||
                          (e.decl.op == reduction::power_sum && power_of_stat(j) == infinity_norm);
      double* target = raw(st.stats_[static_cast<std::size_t>(j)]);
      if (e.decl.where == scope::column) {
        for_each_index(s, st.layout_.columns,
                       strided_combine{raw(pb.columns[static_cast<std::size_t>(e.slot)]),
                                       raw(st.layout_.column_ranges), target, is_max});
      } else if (e.decl.where == scope::row) {
        for_each_index(s, st.layout_.rows, strided_combine{raw(pb.rows[static_cast<std::size_t>(e.slot)]),
                                                           raw(st.layout_.row_ranges), target, is_max});
      } else {
        double* rows = raw(st.slice_rows_[static_cast<std::size_t>(j)]);
        for_each_index(s, st.layout_.rows, strided_combine{raw(pb.rows[static_cast<std::size_t>(e.slot)]),
                                                           raw(st.layout_.row_ranges), rows, is_max});
        for_each_index(s, st.layout_.slices, strided_combine{rows, raw(st.layout_.slice_ranges), target, is_max});
      }
    }
  }

  std::tuple<C...> components_;
  std::array<const char*, n> owners_{};
};

}  // namespace mixprec
