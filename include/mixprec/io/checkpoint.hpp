// Checkpoints: parameters (fp32 master and model copy), the gradients'
// format, and the whole state of a chain (scaler scale and counters,
// optimizer moments, schedule step count, stochastic-rounding stream, group
// multipliers), field by field and with every hyperparameter, plus a block
// of user metadata, in one file, so that a resumed run continues bit for bit.
//
//   save_checkpoint(path, step, params, state, {{"epoch", "3"}});
//   checkpoint_metadata m = load_checkpoint(path, step, params, state);
//
// Format (version 3, little-endian; strings are u32 length + bytes):
//   "MIXPRECK", u32 version, u32 reserved, u64 total size
//   arena:    u8 model format, u8 gradient format, u8 has master, u8 model
//             is master, u64 padded size, u32 count, per parameter: name,
//             rank, extents, group
//   range:    u64 first element, u64 end element (the elements the data
//             section holds: all of them, or one rank's shard), u64 save id
//             (the same in every file of one sharded save, mixprec/dist)
//   chain:    u32 count, per component: its path ("adamw/scale_by_adam"),
//             u32 + hyperparameters, u32 + scalars (each: name, u8 kind,
//             value), u32 + state fields (name, u8 format, u8 extent, u8
//             parameter set, u8 used, u8 saved, u64 entries)
//   step:     u64 completed steps, u64 skipped steps
//   groups:   u32 count, per group: name, f32 lr scale, f32 weight-decay scale
//   metadata: u32 count, per entry: key, value (bytes)
//   data:     master weights and model copy of the range, every used and
//             saved state field (per-element fields: the range's elements)
//   u32 CRC-32 of everything before it
//
// Version 2 is version 3 without the range section (every element).
//
// Loading checks every name, shape, format and field, and the
// hyperparameters: a checkpoint written with other values is refused with
// the field named, unless checkpoint_options::take_new_hyperparameters
// (then the chain's own values apply from the next step, checked as init()
// checks them, and the state is brought within them: a loss scale above a
// lowered max_scale is clamped to it). Files of version 1 (mixprec 0.1)
// still load (io/checkpoint_v1.hpp).
//
// save_checkpoint streams the file into a temporary of its own next to the
// target and renames it over the target only when complete and synced
// (io/file.hpp): a crash or an error leaves the previous checkpoint intact,
// and concurrent saves to one path each land whole. load_checkpoint checks
// the header first (a file that is not a checkpoint is rejected after 24
// bytes), then the checksum of the whole file, then every name, shape,
// format and field, and the values the file carries (group multipliers,
// each component's scalars: component protocol, restored_scalars), and
// only then copies the data in: any mismatch raises a mixprec::error
// saying what did not match, and changes nothing. Both move
// device memory through a fixed 4 MiB host buffer.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include <mixprec/core/error.hpp>
#include <mixprec/detail/memory.hpp>
#include <mixprec/io/file.hpp>
#include <mixprec/io/records.hpp>
#include <mixprec/train/chain.hpp>

namespace mixprec {

using checkpoint_metadata = std::map<std::string, std::string>;

struct checkpoint_options {
  // Accept a checkpoint written with other hyperparameters (keep this chain's).
  bool take_new_hyperparameters = false;
};

namespace detail {

inline constexpr char checkpoint_magic[8] = {'M', 'I', 'X', 'P', 'R', 'E', 'C', 'K'};
inline constexpr std::uint32_t checkpoint_version = 3;
inline constexpr std::size_t checkpoint_header = 8 + 4 + 4 + 8;

inline std::string shape_text(const std::vector<std::uint64_t>& dims) {
  std::string s = "[";
  for (std::size_t k = 0; k < dims.size(); ++k) s += (k ? ", " : "") + std::to_string(dims[k]);
  return s + "]";
}


// Typed values of hyperparameters and scalars.
enum class value_kind : std::uint8_t { f32 = 1, f64 = 2, u32 = 3, u64 = 4, boolean = 5 };
template <class T>
constexpr value_kind kind_of() {
  if constexpr (std::is_same_v<T, float>) return value_kind::f32;
  else if constexpr (std::is_same_v<T, double>) return value_kind::f64;
  else if constexpr (std::is_same_v<T, std::uint32_t>) return value_kind::u32;
  else if constexpr (std::is_same_v<T, std::uint64_t>) return value_kind::u64;
  else {
    static_assert(std::is_same_v<T, bool>, "checkpoints store float, double, uint32, uint64 and bool fields");
    return value_kind::boolean;
  }
}
inline std::size_t kind_size(value_kind k) {
  switch (k) {
    case value_kind::f32: case value_kind::u32: return 4;
    case value_kind::f64: case value_kind::u64: return 8;
    case value_kind::boolean: return 1;
  }
  return 0;
}
inline const char* kind_name(value_kind k) {
  switch (k) {
    case value_kind::f32: return "float";
    case value_kind::f64: return "double";
    case value_kind::u32: return "uint32";
    case value_kind::u64: return "uint64";
    case value_kind::boolean: return "bool";
  }
  return "unknown";
}

struct named_value {
  std::string name;
  value_kind kind;
  std::vector<std::uint8_t> bytes;
  std::string text() const {
    char b[8] = {};
    std::memcpy(b, bytes.data(), bytes.size() < 8 ? bytes.size() : 8);
    switch (kind) {
      case value_kind::f32: { float v; std::memcpy(&v, b, 4); return concat(v); }
      case value_kind::f64: { double v; std::memcpy(&v, b, 8); return concat(v); }
      case value_kind::u32: { std::uint32_t v; std::memcpy(&v, b, 4); return concat(v); }
      case value_kind::u64: { std::uint64_t v; std::memcpy(&v, b, 8); return concat(v); }
      case value_kind::boolean: return b[0] ? "true" : "false";
    }
    return "?";
  }
};

struct value_collector {
  std::vector<named_value>* out;
  template <class T>
  void operator()(const char* name, const T& x) const {
    named_value v{name, kind_of<T>(), std::vector<std::uint8_t>(sizeof(T))};
    std::memcpy(v.bytes.data(), &x, sizeof(T));
    out->push_back(std::move(v));
  }
};

template <class C>
std::vector<named_value> hyperparameters_of(const C& c) {
  std::vector<named_value> v;
  if constexpr (has_visit_hyperparameters<C>::value) c.visit_hyperparameters(value_collector{&v});
  return v;
}
template <class C>
std::vector<named_value> scalars_of_value(scalars_of<C> s) {
  std::vector<named_value> v;
  if constexpr (has_visit_scalars<C>::value) {
    C::visit_scalars(s, value_collector{&v});
  } else {
    static_assert(std::is_same_v<scalars_of<C>, no_scalars>,
                  "mixprec: a component with scalars must name them in visit_scalars (checkpoints save them by name)");
  }
  return v;
}
// Sets each scalar of s from the checkpoint's values, by name.
template <class C>
void assign_scalars(scalars_of<C>& s, const std::vector<named_value>& saved, const std::string& who) {
  if constexpr (has_visit_scalars<C>::value) {
    C::visit_scalars(s, [&](const char* name, auto& field) {
      using T = std::remove_reference_t<decltype(field)>;
      for (const named_value& v : saved)
        if (v.name == name) {
          require(v.kind == kind_of<T>(), "checkpoint: scalar ", who, ".", name, " is ", kind_name(v.kind),
                  " in the checkpoint but ", kind_name(kind_of<T>()), " here");
          std::memcpy(&field, v.bytes.data(), sizeof(T));
          return;
        }
      throw error(concat("checkpoint: scalar ", who, ".", name, " is missing from the checkpoint"));
    });
  }
}

inline void put_value(record_writer& w, const named_value& v) {
  w.put_string(v.name);
  w.put(static_cast<std::uint8_t>(v.kind));
  w.put_bytes(v.bytes.data(), v.bytes.size());
}
inline named_value get_value(record_reader& r) {
  named_value v;
  v.name = r.get_string("a value's name");
  v.kind = static_cast<value_kind>(r.get<std::uint8_t>("a value's kind"));
  const std::size_t n = kind_size(v.kind);
  require(n > 0, "checkpoint: value ", v.name, " has an unknown kind (corrupted?)");
  v.bytes.resize(n);
  r.get_bytes(v.bytes.data(), n, "a value");
  return v;
}

// The chain as the user composed it, from component paths ("adamw/scale_by_adam").
inline std::string user_chain_text(const std::vector<std::string>& paths) {
  std::string out, last_owner;
  for (const std::string& p : paths) {
    const auto slash = p.find('/');
    const std::string owner = slash == std::string::npos ? "" : p.substr(0, slash);
    if (!owner.empty() && owner == last_owner) continue;
    out += (out.empty() ? "" : ", ") + (owner.empty() ? p : owner);
    last_owner = owner;
  }
  return "[" + out + "]";
}

template <class... T, std::size_t... K>
std::tuple<T&...> as_refs_impl(pod_tuple<T...>& t, std::index_sequence<K...>) {
  return std::tuple<T&...>(get<K>(t)...);
}
template <class... T>
std::tuple<T&...> as_std_tuple_refs(pod_tuple<T...>& t) {
  return as_refs_impl(t, std::index_sequence_for<T...>{});
}
template <class... T, std::size_t... K>
std::tuple<T...> as_std_tuple_impl(const pod_tuple<T...>& t, std::index_sequence<K...>) {
  return std::tuple<T...>(get<K>(t)...);
}

template <class... T>
std::tuple<T...> as_std_tuple(const pod_tuple<T...>& t) {
  return as_std_tuple_impl(t, std::index_sequence_for<T...>{});
}
template <class A, class B>
void copy_if_same(A& out, const B& x) {
  if constexpr (std::is_same_v<A, B>) out = x;
}
// The scalars of component k in a block (a runtime k over the pack).
template <class T, class Block>
scalars_of<T> component_scalars(const Block& block, std::size_t k) {
  scalars_of<T> out{};
  std::size_t j = 0;
  std::apply([&](const auto&... x) { ((j++ == k ? copy_if_same(out, x) : void()), ...); }, as_std_tuple(block.comps));
  return out;
}
template <class T, class S>
void assign_if_same(S& s, const std::vector<named_value>& saved, const std::string& who) {
  if constexpr (std::is_same_v<S, scalars_of<T>>) assign_scalars<T>(s, saved, who);
}

template <class T, class Tuple, std::size_t... K>
void set_scalars_at(Tuple& comps, std::size_t k, const std::vector<named_value>& saved, const std::string& who,
                    std::index_sequence<K...>) {
  ((K == k ? assign_if_same<T>(get<K>(comps), saved, who) : void()), ...);
}
template <class T, class Block>
void set_component_scalars(Block& block, std::size_t k, const std::vector<named_value>& saved, const std::string& who) {
  set_scalars_at<T>(block.comps, k, saved, who, std::make_index_sequence<std::tuple_size_v<decltype(as_std_tuple(block.comps))>>{});
}
// A copy of c with the hyperparameters a checkpoint names (by name and
// kind; those it lacks keep c's values): the component as it was saved.
struct hyperparameter_assigner {
  const std::vector<named_value>* saved;
  template <class T>
  void operator()(const char* name, const T& x) const {
    for (const named_value& v : *saved)
      if (v.name == name && v.kind == kind_of<T>()) {
        T& field = const_cast<T&>(x);  // a member of the copy below
        if constexpr (std::is_same_v<T, bool>) field = v.bytes[0] != 0;
        else std::memcpy(&field, v.bytes.data(), sizeof(T));
        return;
      }
  }
};
template <class C>
C with_hyperparameters(const C& c, const std::vector<named_value>& saved) {
  C out = c;
  if constexpr (has_visit_hyperparameters<C>::value) out.visit_hyperparameters(hyperparameter_assigner{&saved});
  return out;
}

// Calls f(scalars of component k) where component k is of type T.
template <class T, class S, class F>
void call_if_scalars_of(S& s, F& f) {
  if constexpr (std::is_same_v<S, scalars_of<T>>) f(s);
}
template <class T, class Tuple, class F, std::size_t... K>
void at_component_scalars(Tuple& comps, std::size_t k, F& f, std::index_sequence<K...>) {
  ((K == k ? call_if_scalars_of<T>(get<K>(comps), f) : void()), ...);
}

// What a loaded component's scalars may hold. The chain's hyperparameters
// are checked as init() checks them, and so are the checkpoint's when they
// differ (take_new_hyperparameters); then the component checks its scalars
// against the hyperparameters they were saved with and brings them within
// its own (component protocol: restored_scalars).
template <class T, class Block>
void restore_component_scalars(Block& block, std::size_t k, const T& c, const T& saved_with, bool hyperparameters_differ,
                               const arena_info& info, const std::string& who) {
  const scalars_of<T> initial = initial_scalars_of(c, info);
  if (hyperparameters_differ) {
    try {
      (void)initial_scalars_of(saved_with, info);
    } catch (const error& e) {
      const std::string what = e.what(), prefix = "mixprec: ";
      throw error(concat("checkpoint: the hyperparameters of ", who, " in the checkpoint are invalid: ",
                         what.compare(0, prefix.size(), prefix) == 0 ? what.substr(prefix.size()) : what));
    }
  }
  auto restore = [&](scalars_of<T>& s) { s = restored_scalars_of(c, s, initial, saved_with); };
  at_component_scalars<T>(block.comps, k, restore,
                          std::make_index_sequence<std::tuple_size_v<decltype(as_std_tuple(block.comps))>>{});
}

// Group multipliers as set_group accepts them.
inline void require_group_multipliers(const std::string& name, const group_hyper& g) {
  require(std::isfinite(g.lr_scale) && g.lr_scale >= 0.0f && std::isfinite(g.weight_decay_scale) &&
              g.weight_decay_scale >= 0.0f,
          "checkpoint: group \"", name, "\" has lr_scale ", g.lr_scale, " and weight_decay_scale ", g.weight_decay_scale,
          ": the multipliers must be finite and non-negative (as set_group requires)");
}

// The arena section (the same in every version).
template <class Arena>
void write_arena(record_writer& w, const Arena& params) {
  w.put(static_cast<std::uint8_t>(format_traits<typename Arena::model_type>::id));
  w.put(static_cast<std::uint8_t>(format_traits<typename Arena::grad_type>::id));
  w.put(static_cast<std::uint8_t>(Arena::has_master));
  w.put(static_cast<std::uint8_t>(Arena::model_is_master));
  w.put(static_cast<std::uint64_t>(params.padded_size()));
  w.put(static_cast<std::uint32_t>(params.count()));
  for (const auto& p : params.list()) {
    w.put_string(p.name);
    w.put(static_cast<std::uint32_t>(p.shape.rank()));
    for (std::size_t e : p.shape) w.put(static_cast<std::uint64_t>(e));
    w.put_string(p.group);
  }
}
template <class Arena>
void check_arena(record_reader& body, const Arena& params) {
  auto format_of = [](std::uint8_t id) { return std::string(format_name(static_cast<format_id>(id))); };
  const auto model_id = body.get<std::uint8_t>("model format");
  const auto grad_id = body.get<std::uint8_t>("gradient format");
  const auto has_master = body.get<std::uint8_t>("master flag");
  const auto model_is_master = body.get<std::uint8_t>("model flag");
  constexpr auto my_model = static_cast<std::uint8_t>(format_traits<typename Arena::model_type>::id);
  constexpr auto my_grad = static_cast<std::uint8_t>(format_traits<typename Arena::grad_type>::id);
  require(model_id == my_model, "checkpoint model copy is ", format_of(model_id), " but this arena's is ", format_of(my_model));
  require(grad_id == my_grad, "checkpoint gradients are ", format_of(grad_id), " but this arena's are ", format_of(my_grad));
  require(has_master == Arena::has_master, "checkpoint ", has_master ? "has" : "has no",
          " fp32 master weights but this arena ", Arena::has_master ? "has" : "has none");
  require(model_is_master == Arena::model_is_master, "checkpoint and arena differ in whether the model is the master");
  const auto padded = body.get<std::uint64_t>("arena size");
  const auto count = body.get<std::uint32_t>("parameter count");
  require(count == params.count(), "checkpoint has ", count, " parameters but this arena has ", params.count());
  for (std::uint32_t k = 0; k < count; ++k) {
    const auto& p = params[k];
    const std::string name = body.get_string("parameter name");
    require(name == p.name, "parameter ", k, " is \"", name, "\" in the checkpoint but \"", p.name, "\" in this arena");
    const auto rank = body.get<std::uint32_t>("rank");
    require(rank <= shape::max_rank, "parameter \"", name, "\" has rank ", rank, " in the checkpoint (corrupted)");
    std::vector<std::uint64_t> dims(rank);
    for (auto& d : dims) d = body.get<std::uint64_t>("extent");
    std::vector<std::uint64_t> mine(p.shape.begin(), p.shape.end());
    require(dims == mine, "parameter \"", name, "\" has shape ", shape_text(dims), " in the checkpoint but ",
            p.shape.to_string(), " in this arena");
    const std::string group = body.get_string("group name");
    require(group == p.group, "parameter \"", name, "\" is in group \"", group, "\" in the checkpoint but \"", p.group,
            "\" in this arena");
  }
  require(padded == params.padded_size(), "checkpoint arena has ", padded, " elements but this arena ",
          params.padded_size());
}

// The device arrays of the data section (version 1).
struct device_array {
  void* data;
  std::size_t bytes;
};

template <class Arena>
std::vector<segment_geometry> segment_geometry_of(const Arena& params) {
  std::vector<segment_geometry> out;
  for (const auto& p : params.list())
    out.push_back({p.offset, p.size, static_cast<std::uint32_t>(p.shape.rank())});
  return out;
}
inline std::size_t field_width(const state_field& f) { return f.format == format_id::bf16 ? 2 : 4; }

// Every state field of the chain, in file order, with its buffer.
struct field_ref {
  state_field decl;
  field_buffer* buffer;
};
template <class C>
void add_field_refs(std::vector<field_ref>& out, std::vector<field_buffer>& fields, std::size_t& f) {
  for (std::size_t j = 0; j != field_count<C>(); ++j, ++f) out.push_back({field_of<C>(j), &fields[f]});
}
template <class Arena, class... C>
std::vector<field_ref> field_refs(chain_state<Arena, C...>& state) {
  std::vector<field_ref> out;
  std::size_t f = 0;
  (add_field_refs<C>(out, state.storage().fields, f), ...);
  return out;
}

// Everything between the header and the data section.
template <class Arena, class... C>
void write_metadata(record_writer& w, const chain_t<C...>& chain, Arena& params, chain_state<Arena, C...>& state,
                    const checkpoint_metadata& user, std::uint64_t set_id, stream s) {
  write_arena(w, params);
  const element_range r = state.shard();
  w.put(static_cast<std::uint64_t>(r.begin));
  w.put(static_cast<std::uint64_t>(r.end));
  w.put(set_id);
  const chain_block<C...> block = read_back(raw(state.storage().block), s);
  w.put(static_cast<std::uint32_t>(sizeof...(C)));
  auto& fields = state.storage().fields;
  std::size_t k = 0, f = 0;
  std::apply(
      [&](const auto&... comp) {
        (
            [&](const auto& c) {
              using T = std::decay_t<decltype(c)>;
              w.put_string(chain.path(k));
              const std::vector<named_value> hyper = hyperparameters_of(c);
              w.put(static_cast<std::uint32_t>(hyper.size()));
              for (const named_value& v : hyper) put_value(w, v);
              const std::vector<named_value> sc = scalars_of_value<T>(component_scalars<T>(block, k));
              w.put(static_cast<std::uint32_t>(sc.size()));
              for (const named_value& v : sc) put_value(w, v);
              w.put(static_cast<std::uint32_t>(field_count<T>()));
              for (std::size_t j = 0; j != field_count<T>(); ++j, ++f) {
                const state_field fd = field_of<T>(j);
                w.put_string(fd.name);
                w.put(static_cast<std::uint8_t>(fd.format));
                w.put(static_cast<std::uint8_t>(fd.where));
                w.put(static_cast<std::uint8_t>(fd.on));
                w.put(static_cast<std::uint8_t>(fields[f].used));
                w.put(static_cast<std::uint8_t>(fd.saved));
                w.put(static_cast<std::uint64_t>(fields[f].entries));
              }
              ++k;
            }(comp),
            ...);
      },
      chain.as_tuple());
  w.put(block.step.count);
  w.put(block.step.skipped_total);
  const auto& names = state.storage().group_names;
  w.put(static_cast<std::uint32_t>(names.size()));
  std::vector<group_hyper> groups(names.size());
  copy_to_host(raw(state.storage().groups), groups.data(), groups.size(), s);
  for (std::size_t g = 0; g < names.size(); ++g) {
    w.put_string(names[g]);
    w.put(groups[g].lr_scale);
    w.put(groups[g].weight_decay_scale);
  }
  w.put(static_cast<std::uint32_t>(user.size()));
  for (const auto& [key, value] : user) {
    w.put_string(key);
    w.put_string(value);
  }
}

// The arena is finalized and the state is one init() made for it (`who`:
// save_checkpoint or load_checkpoint).
template <class Arena, class... C>
void require_state_of(const Arena& params, const chain_state<Arena, C...>& state, const char* who) {
  require(params.finalized(), who, ": the parameters are not finalized");
  require(state.initialized(), who, ": the chain state was not made by init()");
  require(params.signature().hash == state.arena_signature().hash, who,
          ": the state was made by init() for another parameter arena: ",
          state.arena_signature().difference(params.signature()), " (the state's arena first, this one second)");
}

// Writes the whole checkpoint to `sink`, streaming the data section: the
// elements of the state's shard (all of them unless it has one). `set_id`
// ties the files of one sharded save together (mixprec/dist).
template <class Arena, class... C>
void encode_checkpoint(byte_sink& sink, const chain_t<C...>& chain, Arena& params, chain_state<Arena, C...>& state,
                       const checkpoint_metadata& user, stream s, std::uint64_t set_id = 0) {
  require_state_of(params, state, "save_checkpoint");
  synchronize(s);
  memory_sink meta;
  {
    record_writer m(meta);
    write_metadata(m, chain, params, state, user, set_id, s);
  }
  const element_range r = state.shard();
  std::vector<device_array> arrays;
  if constexpr (Arena::has_master)
    arrays.push_back({params.master_data() + (r.begin - params.master_begin()), (r.end - r.begin) * sizeof(float)});
  if constexpr (!Arena::model_is_master)
    arrays.push_back({params.model_data() + r.begin, (r.end - r.begin) * sizeof(typename Arena::model_type)});
  for (const field_ref& f : field_refs(state))
    if (f.buffer->used && f.decl.saved) arrays.push_back({raw(f.buffer->bytes), f.buffer->bytes.size()});
  std::uint64_t total = checkpoint_header + meta.bytes().size() + 4;
  for (const device_array& a : arrays) total += a.bytes;
  record_writer w(sink);
  w.put_bytes(checkpoint_magic, sizeof checkpoint_magic);
  w.put(checkpoint_version);
  w.put(std::uint32_t{0});
  w.put(total);
  w.put_bytes(meta.bytes().data(), meta.bytes().size());
  for (const device_array& a : arrays) w.put_device(a.data, a.bytes, s);
  w.put_crc();
}

// The header and checksum of a checkpoint; returns its version.
inline std::uint32_t check_header_and_crc(const byte_source& src) {
  const std::uint64_t size = src.size();
  require(size >= checkpoint_header, "checkpoint is truncated: ", size, " bytes, shorter than its ", checkpoint_header,
          "-byte header");
  std::uint8_t header[checkpoint_header];
  src.read_at(0, header, checkpoint_header);
  require(std::memcmp(header, checkpoint_magic, 8) == 0, "not a mixprec checkpoint (bad magic)");
  std::uint32_t version;
  std::uint64_t total;
  std::memcpy(&version, header + 8, 4);
  std::memcpy(&total, header + 16, 8);
  require(version >= 1 && version <= checkpoint_version, "unsupported checkpoint version ", version,
          " (this build reads versions 1 to ", checkpoint_version, ")");
  require(size >= total, "checkpoint is truncated: ", size, " of ", total, " bytes");
  require(size == total, "checkpoint has ", size - total, " unexpected bytes after its end");
  record_reader all(src, "checkpoint", size - 4);
  all.skip(size - 4, "the checkpoint");
  std::uint32_t stored;
  src.read_at(size - 4, &stored, 4);
  require(all.crc() == stored, "checkpoint checksum mismatch: the file is corrupted");
  return version;
}

}  // namespace detail
}  // namespace mixprec

#include <mixprec/io/checkpoint_v1.hpp>

namespace mixprec {
namespace detail {

// One checkpoint file, read and checked against the chain and arena; what
// it holds, ready to be copied in.
template <class Block>
struct checked_checkpoint {
  const byte_source* src = nullptr;
  std::uint32_t version = 0;
  std::uint64_t first = 0, end = 0, set_id = 0;  // the elements its data section holds
  Block block{};                                 // the state's block with the file's scalars and counters
  std::vector<group_hyper> groups;
  checkpoint_metadata user;
  std::vector<std::uint64_t> entries;  // per state field (0 if unused)
  std::uint64_t data_at = 0;
};

// Where to load elements: the master weights, the model copy and the
// per-element state fields each want a range of the arena.
struct load_ranges {
  element_range master, model, fields;
};

// Reads the metadata of `src` and checks it against chain, arena and state;
// throws mixprec::error on any mismatch, changes nothing.
template <class Arena, class... C>
checked_checkpoint<chain_block<C...>> check_checkpoint(const byte_source& src, const chain_t<C...>& chain,
                                                        Arena& params, chain_state<Arena, C...>& state,
                                                        const checkpoint_options& options, stream s) {
  checked_checkpoint<chain_block<C...>> out;
  out.src = &src;
  out.version = check_header_and_crc(src);
  record_reader body(src, "checkpoint", src.size() - 4);
  body.skip(checkpoint_header, "header");
  check_arena(body, params);
  out.first = 0;
  out.end = params.padded_size();
  if (out.version >= 3) {
    out.first = body.get<std::uint64_t>("first element");
    out.end = body.get<std::uint64_t>("end element");
    out.set_id = body.get<std::uint64_t>("save id");
    require(out.first <= out.end && out.end <= params.padded_size(), "checkpoint holds elements [", out.first, ", ",
            out.end, ") of an arena of ", params.padded_size(), " (corrupted)");
  }

  // The chain, component by component.
  const auto ncomp = body.get<std::uint32_t>("component count");
  require(ncomp <= 4096, "checkpoint has ", ncomp, " components (corrupted)");
  struct saved_component {
    std::string path;
    std::vector<named_value> hyper, scalars;
    struct field {
      std::string name;
      std::uint8_t format, where, on, used, saved;
      std::uint64_t entries;
    };
    std::vector<field> fields;
  };
  std::vector<saved_component> saved(ncomp);
  std::vector<std::string> paths;
  for (auto& c : saved) {
    c.path = body.get_string("component path");
    paths.push_back(c.path);
    const auto nh = body.get<std::uint32_t>("hyperparameter count");
    require(nh <= 4096, "checkpoint: ", nh, " hyperparameters (corrupted)");
    for (std::uint32_t j = 0; j < nh; ++j) c.hyper.push_back(get_value(body));
    const auto ns = body.get<std::uint32_t>("scalar count");
    require(ns <= 4096, "checkpoint: ", ns, " scalars (corrupted)");
    for (std::uint32_t j = 0; j < ns; ++j) c.scalars.push_back(get_value(body));
    const auto nf = body.get<std::uint32_t>("field count");
    require(nf <= 4096, "checkpoint: ", nf, " state fields (corrupted)");
    for (std::uint32_t j = 0; j != nf; ++j) {
      typename saved_component::field f;
      f.name = body.get_string("field name");
      f.format = body.get<std::uint8_t>("field format");
      f.where = body.get<std::uint8_t>("field extent");
      f.on = body.get<std::uint8_t>("field parameters");
      f.used = body.get<std::uint8_t>("field used");
      f.saved = body.get<std::uint8_t>("field saved");
      f.entries = body.get<std::uint64_t>("field entries");
      c.fields.push_back(f);
    }
  }
  std::vector<std::string> mine;
  for (std::size_t k = 0; k < sizeof...(C); ++k) mine.push_back(chain.path(k));
  require(ncomp == sizeof...(C), "checkpoint chain is ", user_chain_text(paths), " but this chain is ",
          user_chain_text(mine));
  for (std::size_t k = 0; k < ncomp; ++k)
    require(saved[k].path == mine[k], "checkpoint chain is ", user_chain_text(paths), " but this chain is ",
            user_chain_text(mine), ": component ", k + 1, " is ", saved[k].path, " in the checkpoint but ", mine[k],
            " here");

  chain_block<C...>& block = out.block;
  block = read_back(raw(state.storage().block), s);
  auto& fields = state.storage().fields;
  const std::vector<segment_geometry> geo = segment_geometry_of(params);
  const arena_info info = arena_info_of(params);
  {
    std::size_t k = 0, f = 0;
    std::apply(
        [&](const auto&... comp) {
          (
              [&](const auto& c) {
                using T = std::decay_t<decltype(c)>;
                const saved_component& sv = saved[k];
                // Hyperparameters, by name.
                const std::vector<named_value> hyper = hyperparameters_of(c);
                for (const named_value& h : hyper) {
                  const named_value* in = nullptr;
                  for (const named_value& x : sv.hyper)
                    if (x.name == h.name) in = &x;
                  require(in != nullptr || options.take_new_hyperparameters, "checkpoint: hyperparameter ", mine[k],
                          ".", h.name, " is missing from the checkpoint");
                  require(in == nullptr || options.take_new_hyperparameters ||
                              (in->kind == h.kind && in->bytes == h.bytes),
                          "checkpoint: hyperparameter ", mine[k], ".", h.name, " is ", in ? in->text() : "",
                          " in the checkpoint but ", h.text(),
                          " in this chain (pass checkpoint_options{true} to take the new value)");
                }
                if (!options.take_new_hyperparameters)
                  for (const named_value& x : sv.hyper) {
                    bool known = false;
                    for (const named_value& h : hyper) known = known || h.name == x.name;
                    require(known, "checkpoint: hyperparameter ", mine[k], ".", x.name,
                            " of the checkpoint is unknown to this chain");
                  }
                // Scalars, by name.
                for (const named_value& x : sv.scalars) {
                  bool known = false;
                  for (const named_value& y : scalars_of_value<T>(scalars_of<T>{})) known = known || y.name == x.name;
                  require(known, "checkpoint: scalar ", mine[k], ".", x.name, " of the checkpoint is unknown to this "
                          "chain (written by another version?)");
                }
                set_component_scalars<T>(block, k, sv.scalars, mine[k]);
                bool differ = false;
                for (const named_value& h : hyper) {
                  const named_value* in = nullptr;
                  for (const named_value& x : sv.hyper)
                    if (x.name == h.name) in = &x;
                  differ = differ || in == nullptr || in->kind != h.kind || in->bytes != h.bytes;
                }
                differ = differ || sv.hyper.size() != hyper.size();
                restore_component_scalars<T>(block, k, c, differ ? with_hyperparameters(c, sv.hyper) : c, differ, info,
                                             mine[k]);
                // State fields, by name and in order.
                require(sv.fields.size() == field_count<T>(), "checkpoint: ", mine[k], " has ", sv.fields.size(),
                        " state fields in the checkpoint but ", field_count<T>(), " here");
                for (std::size_t j = 0; j != field_count<T>(); ++j, ++f) {
                  const state_field fd = field_of<T>(j);
                  const auto& x = sv.fields[j];
                  const std::string who = mine[k] + "." + fd.name;
                  require(x.name == fd.name, "checkpoint: state field ", j, " of ", mine[k], " is ", x.name,
                          " in the checkpoint but ", fd.name, " here");
                  require(x.format == static_cast<std::uint8_t>(fd.format), "checkpoint: state field ", who, " is ",
                          format_name(static_cast<format_id>(x.format)), " in the checkpoint but ",
                          format_name(fd.format), " here");
                  require(x.where == static_cast<std::uint8_t>(fd.where) && x.on == static_cast<std::uint8_t>(fd.on),
                          "checkpoint: state field ", who, " has another extent in the checkpoint");
                  require(x.used == static_cast<std::uint8_t>(fields[f].used), "checkpoint: state field ", who,
                          x.used ? " is in the checkpoint but not used here" : " is not in the checkpoint but used here",
                          " (different options, e.g. amsgrad or momentum)");
                  // A per-element field holds the file's elements; any other, every entry.
                  const std::uint64_t expected =
                      fd.where == extent::element ? entries_of(element_segments(geo, fd.on, out.first, out.end))
                                                  : fields[f].entries;
                  require(!x.used || x.entries == expected, "checkpoint: state field ", who, " has ", x.entries,
                          " entries in the checkpoint but ", expected, " here");
                  out.entries.push_back(x.used ? x.entries : 0);
                }
                ++k;
              }(comp),
              ...);
        },
        chain.as_tuple());
  }
  block.step.count = body.get<std::uint64_t>("step count");
  block.step.skipped_total = body.get<std::uint64_t>("skipped steps");
  block.step.t = block.step.count;
  block.step.skip = 0;
  block.step.hold = 0;

  const auto ngroups = body.get<std::uint32_t>("group count");
  const auto& my_groups = state.storage().group_names;
  require(ngroups == my_groups.size(), "checkpoint has ", ngroups, " groups but this arena has ", my_groups.size());
  out.groups.resize(ngroups);
  for (std::uint32_t g = 0; g < ngroups; ++g) {
    const std::string name = body.get_string("group name");
    require(name == my_groups[g], "group ", g, " is \"", name, "\" in the checkpoint but \"", my_groups[g], "\" here");
    out.groups[g].lr_scale = body.get<float>("group lr scale");
    out.groups[g].weight_decay_scale = body.get<float>("group weight decay scale");
    require_group_multipliers(name, out.groups[g]);
  }
  const auto nmeta = body.get<std::uint32_t>("metadata count");
  for (std::uint32_t j = 0; j < nmeta; ++j) {
    std::string key = body.get_string("metadata key");
    out.user[key] = body.get_string("metadata value", 1u << 30);
  }

  // The data: its size is known now.
  const std::uint64_t elements = out.end - out.first;
  std::uint64_t data_bytes = 0;
  if constexpr (Arena::has_master) data_bytes += elements * sizeof(float);
  if constexpr (!Arena::model_is_master) data_bytes += elements * sizeof(typename Arena::model_type);
  {
    const std::vector<field_ref> refs = field_refs(state);
    for (std::size_t f = 0; f < refs.size(); ++f)
      if (refs[f].decl.saved) data_bytes += out.entries[f] * field_width(refs[f].decl);
  }
  out.data_at = body.position();
  require(body.remaining() >= data_bytes, "checkpoint is truncated: its data section needs ", data_bytes,
          " bytes but only ", body.remaining(), " remain");
  require(body.remaining() == data_bytes, "checkpoint has ", body.remaining() - data_bytes,
          " unexpected bytes in its data section");
  return out;
}

// Copies the elements both the file's segments (at `at` in src) and the
// target's segments (in device memory at dst) hold. Both lists are sorted.
inline void copy_overlap(const byte_source& src, std::uint64_t at, const std::vector<element_segment>& file,
                         std::uint8_t* dst, const std::vector<element_segment>& target, std::size_t width, stream s) {
  std::size_t a = 0, b = 0;
  while (a < file.size() && b < target.size()) {
    const element_segment& f = file[a];
    const element_segment& t = target[b];
    const std::uint64_t lo = std::max(f.first, t.first);
    const std::uint64_t hi = std::min(f.first + f.count, t.first + t.count);
    if (lo < hi)
      source_to_device(src, at + (f.index + (lo - f.first)) * width, dst + (t.index + (lo - t.first)) * width,
                       (hi - lo) * width, s);
    if (f.first + f.count <= t.first + t.count) ++a;
    else ++b;
  }
}

// Whether the files' element ranges together cover [r.begin, r.end).
template <class Checked>
bool files_cover(const std::vector<Checked>& files, element_range r) {
  std::vector<std::pair<std::uint64_t, std::uint64_t>> spans;
  for (const Checked& c : files) spans.push_back({c.first, c.end});
  std::sort(spans.begin(), spans.end());
  std::uint64_t reached = r.begin;
  for (const auto& [b, e] : spans)
    if (b <= reached && e > reached) reached = e;
  return reached >= r.end;
}

// Whether checked files make a set that holds what a load wants: one save
// and one step, and every element of `want`. Throws mixprec::error if not;
// a load checks this before anything changes (commit_checkpoint does not).
template <class Arena, class Block>
void require_complete_set(const std::vector<checked_checkpoint<Block>>& files, const load_ranges& want) {
  require(!files.empty(), "load_checkpoint: no checkpoint files");
  const auto& head = files.front();
  for (const auto& c : files) {
    require(c.set_id == head.set_id, "checkpoint files from different saves (save ids ", head.set_id, " and ",
            c.set_id, ")");
    require(c.block.step.count == head.block.step.count, "checkpoint files of different steps (", head.block.step.count,
            " and ", c.block.step.count, ")");
  }
  auto hole = [&](const char* what, element_range r) {
    return concat("checkpoint: the files do not hold every element of the ", what, " this ",
                  "process loads (elements [", r.begin, ", ", r.end, "))");
  };
  if constexpr (Arena::has_master) require(files_cover(files, want.master), hole("master weights", want.master));
  if constexpr (!Arena::model_is_master) require(files_cover(files, want.model), hole("model copy", want.model));
  require(files_cover(files, want.fields), hole("optimizer state", want.fields));
}

// Copies checked files (a complete set, require_complete_set) into params
// and state: the elements of `want` from whichever file holds them,
// everything else from the first file.
template <class Arena, class... C>
void commit_checkpoint(const std::vector<checked_checkpoint<chain_block<C...>>>& files, Arena& params,
                       chain_state<Arena, C...>& state, const load_ranges& want, stream s) {
  const auto& head = files.front();
  write_to_device(&head.block, raw(state.storage().block), 1, s);
  write_to_device(head.groups.data(), raw(state.storage().groups), head.groups.size(), s);
  const std::vector<segment_geometry> geo = segment_geometry_of(params);
  const std::vector<field_ref> refs = field_refs(state);
  for (const auto& c : files) {
    const std::uint64_t elements = c.end - c.first;
    const std::vector<element_segment> file_range{{c.first, elements, 0}};
    std::uint64_t at = c.data_at;
    if constexpr (Arena::has_master) {
      const element_range m = want.master;
      copy_overlap(*c.src, at, file_range, reinterpret_cast<std::uint8_t*>(params.master_data()),
                   {{m.begin, m.end - m.begin, m.begin - params.master_begin()}}, sizeof(float), s);
      at += elements * sizeof(float);
    }
    if constexpr (!Arena::model_is_master) {
      using model_type = typename Arena::model_type;
      const element_range m = want.model;
      copy_overlap(*c.src, at, file_range, reinterpret_cast<std::uint8_t*>(params.model_data()),
                   {{m.begin, m.end - m.begin, m.begin}}, sizeof(model_type), s);
      at += elements * sizeof(model_type);
    }
    for (std::size_t f = 0; f < refs.size(); ++f) {
      const state_field& d = refs[f].decl;
      if (!refs[f].buffer->used || !d.saved) continue;
      const std::size_t width = field_width(d);
      std::uint8_t* dst = raw(refs[f].buffer->bytes);
      if (d.where == extent::element)
        copy_overlap(*c.src, at, element_segments(geo, d.on, c.first, c.end), dst,
                     element_segments(geo, d.on, want.fields.begin, want.fields.end), width, s);
      else if (&c == &head)
        source_to_device(*c.src, at, dst, c.entries[f] * width, s);
      at += c.entries[f] * width;
    }
  }
}

// Reads and checks a checkpoint from `src`; changes params and state only
// when every check has passed. Returns the user metadata.
template <class Arena, class... C>
checkpoint_metadata decode_checkpoint(const byte_source& src, const chain_t<C...>& chain, Arena& params,
                                      chain_state<Arena, C...>& state, const checkpoint_options& options, stream s) {
  require_state_of(params, state, "load_checkpoint");
  const std::uint32_t version = check_header_and_crc(src);
  if (version == 1) return decode_checkpoint_v1(src, chain, params, state, s);
  std::vector<checked_checkpoint<chain_block<C...>>> files{check_checkpoint(src, chain, params, state, options, s)};
  const auto& c = files.front();
  require(c.first == 0 && c.end == params.padded_size(), "load_checkpoint: this file holds elements [", c.first, ", ",
          c.end, ") of ", params.padded_size(), " only, one shard of a sharded checkpoint: load the whole set with "
          "mixprec::dist::load_checkpoint");
  load_ranges want;
  want.master = {params.master_begin(), params.master_end()};
  want.model = {0, params.padded_size()};
  want.fields = state.shard();
  require_complete_set<Arena>(files, want);
  commit_checkpoint(files, params, state, want, s);
  return c.user;
}

// A set of checkpoint files that together hold the elements a load asks
// for (the shards of a sharded save, or one whole checkpoint): open() reads
// and checks every file, require_complete() that they are one save and
// hold every element wanted, commit() copies them in. Nothing changes
// before commit(), and commit() checks nothing, so a distributed load
// decides on every check, agrees across ranks, and only then commits.
template <class Arena, class... C>
class checkpoint_files {
 public:
  void open(const std::vector<std::string>& paths, const chain_t<C...>& chain, Arena& params,
            chain_state<Arena, C...>& state, const checkpoint_options& options, stream s) {
    require_state_of(params, state, "load_checkpoint");
    require(!paths.empty(), "load_checkpoint: no checkpoint files");
    for (const std::string& path : paths) {
      readers_.push_back(std::make_unique<file_reader>(path, "load_checkpoint"));
      sources_.push_back(std::make_unique<file_source>(*readers_.back()));
      try {
        checked_.push_back(check_checkpoint(*sources_.back(), chain, params, state, options, s));
      } catch (const error& e) {
        throw error(concat(path, ": ", e.what()));
      }
      require(checked_.back().version >= 2, path, ": a version-1 checkpoint cannot be part of a set");
    }
  }
  const std::vector<checked_checkpoint<chain_block<C...>>>& files() const { return checked_; }
  void require_complete(const load_ranges& want) const { require_complete_set<Arena>(checked_, want); }
  // After open() and require_complete() with the same `want`.
  void commit(Arena& params, chain_state<Arena, C...>& state, const load_ranges& want, stream s) {
    commit_checkpoint(checked_, params, state, want, s);
  }

 private:
  std::vector<std::unique_ptr<file_reader>> readers_;
  std::vector<std::unique_ptr<file_source>> sources_;
  std::vector<checked_checkpoint<chain_block<C...>>> checked_;
};

}  // namespace detail

// The checkpoint as bytes (what save_checkpoint writes to its file).
template <class Arena, class... C>
std::vector<std::uint8_t> serialize_checkpoint(const chain_t<C...>& chain, Arena& params,
                                               chain_state<Arena, C...>& state, const checkpoint_metadata& user = {},
                                               stream s = {}) {
  detail::memory_sink sink;
  detail::encode_checkpoint(sink, chain, params, state, user, s);
  return std::move(sink.bytes());
}

// Loads a checkpoint from bytes; checks everything first, changes nothing on error.
template <class Arena, class... C>
checkpoint_metadata deserialize_checkpoint(const std::uint8_t* data, std::size_t size, const chain_t<C...>& chain,
                                           Arena& params, chain_state<Arena, C...>& state,
                                           const checkpoint_options& options = {}, stream s = {}) {
  return detail::decode_checkpoint(detail::memory_source(data, size), chain, params, state, options, s);
}

// Writes params and state to `path` atomically (see the header comment).
template <class Arena, class... C>
void save_checkpoint(const std::string& path, const chain_t<C...>& chain, Arena& params,
                     chain_state<Arena, C...>& state, const checkpoint_metadata& user = {}, stream s = {}) {
  detail::atomic_file_writer file(path, "save_checkpoint");
  detail::file_sink sink(file);
  detail::encode_checkpoint(sink, chain, params, state, user, s);
  file.commit();
}

// Loads params and state from `path`; nothing changes if it throws.
// Returns the metadata saved with it.
template <class Arena, class... C>
checkpoint_metadata load_checkpoint(const std::string& path, const chain_t<C...>& chain, Arena& params,
                                    chain_state<Arena, C...>& state, const checkpoint_options& options = {},
                                    stream s = {}) {
  const detail::file_reader file(path, "load_checkpoint");
  return detail::decode_checkpoint(detail::file_source(file), chain, params, state, options, s);
}

// Loads params and state from several files that together hold what this
// arena and state keep: the shards of a sharded save, or whole checkpoints
// (mixprec/dist writes and reads its sets through this). Each file's
// per-element data goes where the arena and state hold those elements;
// everything else comes from the first file. The files must be of one save
// (the same save id and step). Every file is checked before anything is
// copied: nothing changes if it throws.
template <class Arena, class... C>
checkpoint_metadata load_checkpoint(const std::vector<std::string>& paths, const chain_t<C...>& chain, Arena& params,
                                    chain_state<Arena, C...>& state, const checkpoint_options& options = {},
                                    stream s = {}) {
  detail::load_ranges want;
  want.master = {params.master_begin(), params.master_end()};
  want.model = {0, params.padded_size()};
  want.fields = state.shard();
  detail::checkpoint_files<Arena, C...> files;
  files.open(paths, chain, params, state, options, s);
  files.require_complete(want);
  files.commit(params, state, want, s);
  return files.files().front().user;
}

}  // namespace mixprec
