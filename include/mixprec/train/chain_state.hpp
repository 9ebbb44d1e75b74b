// chain_state: what chain::init() makes for an arena and apply() updates:
// the device-resident scalars (step counters, every component's scalars),
// every component's state fields, the statistics and reduction buffers,
// the group multipliers and the tiling of the step, all allocated by
// init() so that a step allocates nothing. Host reads of it are explicit
// and synchronising; serialisers reach its storage through storage().
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>
#include <tuple>
#include <vector>

#include <mixprec/component/pod_tuple.hpp>
#include <mixprec/component/protocol.hpp>
#include <mixprec/detail/memory.hpp>
#include <mixprec/detail/workspace.hpp>
#include <mixprec/tensor/arena_layout.hpp>
#include <mixprec/tensor/arena_signature.hpp>
#include <mixprec/tensor/tensor_view.hpp>
#include <mixprec/train/environment.hpp>
#include <mixprec/train/layout.hpp>
#include <mixprec/train/plan.hpp>

namespace mixprec {

template <class... C>
class chain_t;
template <class Arena, class... C>
class chain_state;

namespace detail {
template <class... C>
struct step_runner;

template <class T>
struct is_chain_state : std::false_type {};
template <class Arena, class... C>
struct is_chain_state<chain_state<Arena, C...>> : std::true_type {};

// One state field of a component, allocated.
struct field_buffer {
  device_buffer<std::uint8_t> bytes;
  device_buffer<std::uint64_t> base;
  std::vector<std::uint64_t> base_h;
  std::uint64_t entries = 0;
  bool used = false;
  // 8-bit coded fields: `scales` floats (one per block) at byte scale_offset of `bytes`.
  std::uint64_t scale_offset = 0, scales = 0;
};

// A state's storage as it is, for serialisers (io/checkpoint.hpp, the
// Python package): the device scalar block, every field's buffer, the
// group table. Writing through it bypasses every check of init() and
// set_group; the checkpoint loader validates everything before it writes.
template <class... C>
struct state_storage {
  device_buffer<chain_block<C...>>& block;
  std::vector<field_buffer>& fields;  // every component's fields, in chain order
  device_buffer<group_hyper>& groups;
  const std::vector<std::string>& group_names;
};

// The buffers of one measuring pass.
struct pass_buffers {
  std::vector<device_buffer<double>> rows, columns;  // partials per row / column statistic
  device_buffer<std::uint8_t> field_out;             // the global combination, then one per parameter
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
                    "chain_state::set_group(\"", group,
                    "\"): lr_scale and weight_decay_scale must be finite and "
                    "non-negative (got ",
                    h.lr_scale, ", ", h.weight_decay_scale, ")");
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
      detail::require(!detail::is_coded(f.format), "chain_state::field: ", component::name, ".", name,
                      " is kept in block-scaled 8-bit codes (", format_name(f.format),
                      "): read its codes and scales with coded_field<K>");
      detail::require(f.format == format_traits<T>::id, "chain_state::field: ", component::name, ".", name, " is ",
                      format_name(f.format), ", not ", format_traits<T>::name);
      const detail::field_buffer& b = fields_[detail::first_field<C...>(K) + j];
      detail::require(b.used, "chain_state::field: ", component::name, ".", name, " is not used by these options");
      return tensor_view<const T>(reinterpret_cast<const T*>(detail::raw(b.bytes)), b.entries);
    }
    throw error(detail::concat("chain_state::field: ", component::name, " has no state field \"", name, "\""));
  }
  // A field of block-scaled 8-bit codes (format/block_codes.hpp), in
  // device memory: a code per element (the arena's layout) and a scale per
  // block of each parameter (parameter p's blocks follow those of 0..p-1).
  struct coded_view {
    format_id format;
    std::uint32_t block;
    const std::uint8_t* codes;
    std::size_t entries;
    const float* scales;
    std::size_t blocks;
  };
  template <std::size_t K>
  coded_view coded_field(const std::string& name) const {
    require_initialized("coded_field");
    using component = std::tuple_element_t<K, std::tuple<C...>>;
    for (std::size_t j = 0; j < detail::field_count<component>(); ++j) {
      const state_field f = detail::field_of<component>(j);
      if (name != f.name) continue;
      detail::require(detail::is_coded(f.format), "chain_state::coded_field: ", component::name, ".", name, " is ",
                      format_name(f.format), ", not 8-bit codes (read it with field<K, T>)");
      const detail::field_buffer& b = fields_[detail::first_field<C...>(K) + j];
      detail::require(b.used, "chain_state::coded_field: ", component::name, ".", name,
                      " is not used by these options");
      const std::uint8_t* base = detail::raw(b.bytes);
      return {f.format,  f.block != 0 ? f.block : detail::default_code_block,   base,
              b.entries, reinterpret_cast<const float*>(base + b.scale_offset), b.scales};
    }
    throw error(detail::concat("chain_state::coded_field: ", component::name, " has no state field \"", name, "\""));
  }

  // The arena this state was made for (names, shapes, groups, formats).
  const detail::arena_signature& arena_signature() const { return arena_; }
  // Its storage, for serialisers (see detail::state_storage).
  detail::state_storage<C...> storage() { return {block_, fields_, groups_, group_names_}; }

  detail::chain_block<C...> block() const { return block(last_stream_); }
  detail::chain_block<C...> block(stream s) const {
    require_initialized("a read-back");
    return detail::read_back(detail::raw(block_), s);
  }

 private:
  template <class...>
  friend class chain_t;
  template <class...>
  friend struct detail::step_runner;

  void require_initialized(const char* what) const {
    detail::require(initialized(), "chain_state: ", what,
                    " on a state that init() did not make (call step.init(params) "
                    "first)");
  }

  detail::device_buffer<detail::chain_block<C...>> block_;
  detail::device_buffer<float> one_;  // the loss scale of a chain without a scaler
  stream last_stream_{};
  detail::arena_signature arena_;
  detail::step_layout layout_;
  std::vector<detail::field_buffer> fields_;               // all components' fields, in order
  std::vector<detail::device_buffer<double>> stats_;       // reduced statistics
  std::vector<detail::device_buffer<double>> slice_rows_;  // per-row values of per-slice statistics
  std::vector<detail::pass_buffers> passes_;
  detail::workspace ws_;
  detail::device_buffer<group_hyper> groups_;
  detail::device_buffer<std::uint32_t> groups_of_;
  std::vector<std::string> group_names_;
  std::size_t elements_ = 0;
  element_range shard_{};
};

}  // namespace mixprec
