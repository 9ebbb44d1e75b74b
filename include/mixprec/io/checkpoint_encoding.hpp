// Checkpoint encoding (io/checkpoint.hpp describes the format): the
// typed named values that hyperparameters and scalars are stored as, the
// arena and chain sections, and the writer that streams a whole file.
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

#include <mixprec/component/protocol_check.hpp>
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
    case value_kind::f32:
    case value_kind::u32:
      return 4;
    case value_kind::f64:
    case value_kind::u64:
      return 8;
    case value_kind::boolean:
      return 1;
  }
  return 0;
}
inline const char* kind_name(value_kind k) {
  switch (k) {
    case value_kind::f32:
      return "float";
    case value_kind::f64:
      return "double";
    case value_kind::u32:
      return "uint32";
    case value_kind::u64:
      return "uint64";
    case value_kind::boolean:
      return "bool";
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
      case value_kind::f32: {
        float v;
        std::memcpy(&v, b, 4);
        return concat(v);
      }
      case value_kind::f64: {
        double v;
        std::memcpy(&v, b, 8);
        return concat(v);
      }
      case value_kind::u32: {
        std::uint32_t v;
        std::memcpy(&v, b, 4);
        return concat(v);
      }
      case value_kind::u64: {
        std::uint64_t v;
        std::memcpy(&v, b, 8);
        return concat(v);
      }
      case value_kind::boolean:
        return b[0] ? "true" : "false";
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
  if constexpr (has_visit_hyperparameters<C>::value) {
    if constexpr (visit_hyperparameters_check<C, value_collector>::ok) c.visit_hyperparameters(value_collector{&v});
  }
  return v;
}
template <class C>
std::vector<named_value> scalars_of_value(scalars_of<C> s) {
  std::vector<named_value> v;
  if constexpr (has_visit_scalars<C>::value) {
    if constexpr (visit_scalars_check<C, value_collector>::ok) C::visit_scalars(s, value_collector{&v});
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
    const auto assign = [&](const char* name, auto& field) {
      using T = std::remove_reference_t<decltype(field)>;
      for (const named_value& v : saved)
        if (v.name == name) {
          require(v.kind == kind_of<T>(), "checkpoint: scalar ", who, ".", name, " is ", kind_name(v.kind),
                  " in the checkpoint but ", kind_name(kind_of<T>()), " here");
          std::memcpy(&field, v.bytes.data(), sizeof(T));
          return;
        }
      throw error(concat("checkpoint: scalar ", who, ".", name, " is missing from the checkpoint"));
    };
    if constexpr (visit_scalars_check<C, decltype((assign))>::ok) C::visit_scalars(s, assign);
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
  set_scalars_at<T>(block.comps, k, saved, who,
                    std::make_index_sequence<std::tuple_size_v<decltype(as_std_tuple(block.comps))>>{});
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

// The device arrays of the data section (version 1).
struct device_array {
  void* data;
  std::size_t bytes;
};

template <class Arena>
std::vector<segment_geometry> segment_geometry_of(const Arena& params) {
  std::vector<segment_geometry> out;
  for (const auto& p : params.list()) out.push_back({p.offset, p.size, static_cast<std::uint32_t>(p.shape.rank())});
  return out;
}
inline std::size_t field_width(const state_field& f) { return entry_bytes(f.format); }
// The scales of a field of 8-bit codes that hold elements [first, end):
// those of the blocks [begin, end) in train/layout.hpp's numbering (each
// parameter's ceil(size / block) blocks in turn). Shards start and end on
// their parameters' block boundaries (mixprec/dist), so a file's blocks
// are whole and consecutive.
struct block_range {
  std::uint64_t begin = 0, end = 0;
};
inline block_range blocks_of(const std::vector<segment_geometry>& geo, const state_field& f, std::uint64_t first,
                             std::uint64_t end) {
  const std::uint64_t block = f.block != 0 ? f.block : default_code_block;
  block_range r;
  bool any = false;
  std::uint64_t base = 0;
  for (const segment_geometry& p : geo) {
    const std::uint64_t lo = std::max(first, p.offset), hi = std::min(end, p.offset + p.size);
    if (lo < hi) {
      if (!any) r.begin = base + (lo - p.offset) / block;
      r.end = base + (hi - p.offset + block - 1) / block;
      any = true;
    }
    base += (p.size + block - 1) / block;
  }
  return r;
}
// Bytes of a saved field's codes (8-bit codes: then padding to 16 bytes,
// as in memory, before the scales).
inline std::uint64_t saved_entry_bytes(const state_field& f, std::uint64_t entries) {
  return is_coded(f.format) ? (entries + 15) / 16 * 16 : entries * field_width(f);
}
// Bytes of a saved field in the data section: its entries; for 8-bit
// codes, the codes of the file's elements, then the scales of their blocks.
inline std::uint64_t saved_field_bytes(const std::vector<segment_geometry>& geo, const state_field& f,
                                       std::uint64_t entries, std::uint64_t first, std::uint64_t end) {
  if (!is_coded(f.format) || entries == 0) return entries * field_width(f);
  const block_range b = blocks_of(geo, f, first, end);
  return saved_entry_bytes(f, entries) + (b.end - b.begin) * sizeof(float);
}

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
MIXPREC_COLD void write_metadata(record_writer& w, const chain_t<C...>& chain, Arena& params,
                                 chain_state<Arena, C...>& state, const checkpoint_metadata& user, std::uint64_t set_id,
                                 stream s) {
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
  const std::vector<segment_geometry> geo = segment_geometry_of(params);
  std::vector<device_array> arrays;
  if constexpr (Arena::has_master)
    arrays.push_back({params.master_data() + (r.begin - params.master_begin()), (r.end - r.begin) * sizeof(float)});
  if constexpr (!Arena::model_is_master)
    arrays.push_back({params.model_data() + r.begin, (r.end - r.begin) * sizeof(typename Arena::model_type)});
  for (const field_ref& f : field_refs(state)) {
    if (!f.buffer->used || !f.decl.saved) continue;
    if (is_coded(f.decl.format)) {  // the shard's codes, then its blocks' scales
      const block_range b = blocks_of(geo, f.decl, r.begin, r.end);
      arrays.push_back({raw(f.buffer->bytes), f.buffer->scale_offset});
      arrays.push_back(
          {raw(f.buffer->bytes) + f.buffer->scale_offset + b.begin * sizeof(float), (b.end - b.begin) * sizeof(float)});
    } else {
      arrays.push_back({raw(f.buffer->bytes), f.buffer->bytes.size()});
    }
  }
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

// Group multipliers as set_group accepts them.
inline void require_group_multipliers(const std::string& name, const group_hyper& g) {
  require(std::isfinite(g.lr_scale) && g.lr_scale >= 0.0f && std::isfinite(g.weight_decay_scale) &&
              g.weight_decay_scale >= 0.0f,
          "checkpoint: group \"", name, "\" has lr_scale ", g.lr_scale, " and weight_decay_scale ",
          g.weight_decay_scale, ": the multipliers must be finite and non-negative (as set_group requires)");
}

}  // namespace detail
}  // namespace mixprec
