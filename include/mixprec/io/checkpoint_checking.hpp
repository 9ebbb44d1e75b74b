// Checkpoint checking: the header and checksum, the arena section against
// this arena, the chain against this chain (paths, hyperparameters, state
// fields), the values the file carries (group multipliers, each
// component's scalars through restored_scalars), and whether a set of
// files holds every element a load wants. Nothing here changes an arena or
// a state.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <mixprec/io/checkpoint_encoding.hpp>

namespace mixprec {
namespace detail {

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
  if constexpr (has_visit_hyperparameters<C>::value) {
    if constexpr (visit_hyperparameters_check<C, hyperparameter_assigner>::ok)
      out.visit_hyperparameters(hyperparameter_assigner{&saved});
  }
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
MIXPREC_COLD void restore_component_scalars(Block& block, std::size_t k, const T& c, const T& saved_with,
                                            bool hyperparameters_differ, const arena_info& info,
                                            const std::string& who) {
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

template <class Arena>
MIXPREC_COLD void check_arena(record_reader& body, const Arena& params) {
  auto format_of = [](std::uint8_t id) { return std::string(format_name(static_cast<format_id>(id))); };
  const auto model_id = body.get<std::uint8_t>("model format");
  const auto grad_id = body.get<std::uint8_t>("gradient format");
  const auto has_master = body.get<std::uint8_t>("master flag");
  const auto model_is_master = body.get<std::uint8_t>("model flag");
  constexpr auto my_model = static_cast<std::uint8_t>(format_traits<typename Arena::model_type>::id);
  constexpr auto my_grad = static_cast<std::uint8_t>(format_traits<typename Arena::grad_type>::id);
  require(model_id == my_model, "checkpoint model copy is ", format_of(model_id), " but this arena's is ",
          format_of(my_model));
  require(grad_id == my_grad, "checkpoint gradients are ", format_of(grad_id), " but this arena's are ",
          format_of(my_grad));
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

// What the checkpoint says of one component of its chain.
struct saved_component {
  struct field {
    std::string name;
    std::uint8_t format, where, on, used, saved;
    std::uint64_t entries;
  };
  std::string path;
  std::vector<named_value> hyper, scalars;
  std::vector<field> fields;
};

MIXPREC_COLD inline std::vector<saved_component> read_saved_chain(record_reader& body) {
  const auto ncomp = body.get<std::uint32_t>("component count");
  require(ncomp <= 4096, "checkpoint has ", ncomp, " components (corrupted)");
  std::vector<saved_component> saved(ncomp);
  for (auto& c : saved) {
    c.path = body.get_string("component path");
    const auto nh = body.get<std::uint32_t>("hyperparameter count");
    require(nh <= 4096, "checkpoint: ", nh, " hyperparameters (corrupted)");
    for (std::uint32_t j = 0; j < nh; ++j) c.hyper.push_back(get_value(body));
    const auto ns = body.get<std::uint32_t>("scalar count");
    require(ns <= 4096, "checkpoint: ", ns, " scalars (corrupted)");
    for (std::uint32_t j = 0; j < ns; ++j) c.scalars.push_back(get_value(body));
    const auto nf = body.get<std::uint32_t>("field count");
    require(nf <= 4096, "checkpoint: ", nf, " state fields (corrupted)");
    for (std::uint32_t j = 0; j != nf; ++j) {
      saved_component::field f;
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
  return saved;
}

inline void require_same_chain(const std::vector<saved_component>& saved, const std::vector<std::string>& mine) {
  std::vector<std::string> paths;
  for (const saved_component& c : saved) paths.push_back(c.path);
  require(saved.size() == mine.size(), "checkpoint chain is ", user_chain_text(paths), " but this chain is ",
          user_chain_text(mine));
  for (std::size_t k = 0; k < saved.size(); ++k)
    require(saved[k].path == mine[k], "checkpoint chain is ", user_chain_text(paths), " but this chain is ",
            user_chain_text(mine), ": component ", k + 1, " is ", saved[k].path, " in the checkpoint but ", mine[k],
            " here");
}

inline const named_value* find_named(const std::vector<named_value>& values, const std::string& name) {
  const named_value* found = nullptr;
  for (const named_value& x : values)
    if (x.name == name) found = &x;
  return found;
}

// The component's hyperparameters against the checkpoint's, by name; true
// when they differ (then only with options.take_new_hyperparameters).
inline bool check_hyperparameters(const std::vector<named_value>& hyper, const saved_component& sv,
                                  const std::string& who, const checkpoint_options& options) {
  bool differ = sv.hyper.size() != hyper.size();
  for (const named_value& h : hyper) {
    const named_value* in = find_named(sv.hyper, h.name);
    require(in != nullptr || options.take_new_hyperparameters, "checkpoint: hyperparameter ", who, ".", h.name,
            " is missing from the checkpoint");
    require(in == nullptr || options.take_new_hyperparameters || (in->kind == h.kind && in->bytes == h.bytes),
            "checkpoint: hyperparameter ", who, ".", h.name, " is ", in ? in->text() : "", " in the checkpoint but ",
            h.text(), " in this chain (pass checkpoint_options{true} to take the new value)");
    differ = differ || in == nullptr || in->kind != h.kind || in->bytes != h.bytes;
  }
  if (!options.take_new_hyperparameters)
    for (const named_value& x : sv.hyper)
      require(find_named(hyper, x.name) != nullptr, "checkpoint: hyperparameter ", who, ".", x.name,
              " of the checkpoint is unknown to this chain");
  return differ;
}

// The component's saved state fields against the checkpoint's, by name
// and in order; appends each field's entries in the file to `entries` (0
// for a field recomputed every step: those carry no data, so a component
// may add or drop one and still read its earlier checkpoints).
template <class T>
MIXPREC_COLD void check_fields(const saved_component& sv, const std::vector<field_buffer>& fields,
                               std::size_t first_field, const std::vector<segment_geometry>& geo, std::uint64_t first,
                               std::uint64_t end, const std::string& who, std::vector<std::uint64_t>& entries) {
  std::vector<const saved_component::field*> kept;
  for (const auto& x : sv.fields)
    if (x.saved) kept.push_back(&x);
  std::size_t next = 0;
  for (std::size_t j = 0; j != field_count<T>(); ++j) {
    const state_field fd = field_of<T>(j);
    const field_buffer& mine = fields[first_field + j];
    const std::string name = who + "." + fd.name;
    if (!fd.saved) {
      entries.push_back(0);
      continue;
    }
    require(next < kept.size(), "checkpoint: state field ", name, " is not in the checkpoint");
    const auto& x = *kept[next++];
    require(x.name == fd.name, "checkpoint: saved state field ", next - 1, " of ", who, " is ", x.name,
            " in the checkpoint but ", fd.name, " here");
    require(x.format == static_cast<std::uint8_t>(fd.format), "checkpoint: state field ", name, " is ",
            format_name(static_cast<format_id>(x.format)), " in the checkpoint but ", format_name(fd.format),
            " here: load it into a chain whose StateFormat keeps this field as the checkpoint does");
    require(x.where == static_cast<std::uint8_t>(fd.where) && x.on == static_cast<std::uint8_t>(fd.on),
            "checkpoint: state field ", name, " has another extent in the checkpoint");
    require(x.used == static_cast<std::uint8_t>(mine.used), "checkpoint: state field ", name,
            x.used ? " is in the checkpoint but not used here" : " is not in the checkpoint but used here",
            " (different options, e.g. amsgrad or momentum)");
    // A per-element field holds the file's elements; any other, every entry.
    const std::uint64_t expected =
        fd.where == extent::element ? entries_of(element_segments(geo, fd.on, first, end)) : mine.entries;
    require(!x.used || x.entries == expected, "checkpoint: state field ", name, " has ", x.entries,
            " entries in the checkpoint but ", expected, " here");
    entries.push_back(x.used ? x.entries : 0);
  }
  require(next == kept.size(), "checkpoint: state field ", who, ".", next < kept.size() ? kept[next]->name : "",
          " of the checkpoint is unknown to this chain");
}

// Each component: hyperparameters, scalars (checked and restored into
// out.block) and state fields.
template <class Arena, class... C>
MIXPREC_COLD void check_components(const std::vector<saved_component>& saved, const chain_t<C...>& chain,
                                   const Arena& params, chain_state<Arena, C...>& state,
                                   const checkpoint_options& options, checked_checkpoint<chain_block<C...>>& out) {
  const auto& fields = state.storage().fields;
  const std::vector<segment_geometry> geo = segment_geometry_of(params);
  const arena_info info = arena_info_of(params);
  std::size_t k = 0, f = 0;
  std::apply(
      [&](const auto&... comp) {
        (
            [&](const auto& c) {
              using T = std::decay_t<decltype(c)>;
              const saved_component& sv = saved[k];
              const std::string who = chain.path(k);
              const std::vector<named_value> hyper = hyperparameters_of(c);
              const bool differ = check_hyperparameters(hyper, sv, who, options);
              for (const named_value& x : sv.scalars) {
                bool known = false;
                for (const named_value& y : scalars_of_value<T>(scalars_of<T>{})) known = known || y.name == x.name;
                require(known, "checkpoint: scalar ", who, ".", x.name,
                        " of the checkpoint is unknown to this "
                        "chain (written by another version?)");
              }
              set_component_scalars<T>(out.block, k, sv.scalars, who);
              restore_component_scalars<T>(out.block, k, c, differ ? with_hyperparameters(c, sv.hyper) : c, differ,
                                           info, who);
              check_fields<T>(sv, fields, f, geo, out.first, out.end, who, out.entries);
              f += field_count<T>();
              ++k;
            }(comp),
            ...);
      },
      chain.as_tuple());
}

// The step counters, the groups (names and multipliers) and the user's metadata.
template <class Block>
MIXPREC_COLD void read_counters_and_groups(record_reader& body, const std::vector<std::string>& my_groups,
                                           checked_checkpoint<Block>& out) {
  Block& block = out.block;
  block.step.count = body.get<std::uint64_t>("step count");
  block.step.skipped_total = body.get<std::uint64_t>("skipped steps");
  block.step.t = block.step.count;
  block.step.skip = 0;
  block.step.hold = 0;
  const auto ngroups = body.get<std::uint32_t>("group count");
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
}

// The data section: exactly the bytes the checked metadata implies.
template <class Arena, class... C>
void check_data_size(const record_reader& body, const Arena& params, chain_state<Arena, C...>& state,
                     checked_checkpoint<chain_block<C...>>& out) {
  const std::vector<segment_geometry> geo = segment_geometry_of(params);
  const std::uint64_t elements = out.end - out.first;
  std::uint64_t data_bytes = 0;
  if constexpr (Arena::has_master) data_bytes += elements * sizeof(float);
  if constexpr (!Arena::model_is_master) data_bytes += elements * sizeof(typename Arena::model_type);
  const std::vector<field_ref> refs = field_refs(state);
  for (std::size_t f = 0; f < refs.size(); ++f)
    if (refs[f].decl.saved) data_bytes += saved_field_bytes(geo, refs[f].decl, out.entries[f], out.first, out.end);
  out.data_at = body.position();
  require(body.remaining() >= data_bytes, "checkpoint is truncated: its data section needs ", data_bytes,
          " bytes but only ", body.remaining(), " remain");
  require(body.remaining() == data_bytes, "checkpoint has ", body.remaining() - data_bytes,
          " unexpected bytes in its data section");
}

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
  const std::vector<saved_component> saved = read_saved_chain(body);
  std::vector<std::string> mine;
  for (std::size_t k = 0; k < sizeof...(C); ++k) mine.push_back(chain.path(k));
  require_same_chain(saved, mine);
  out.block = read_back(raw(state.storage().block), s);
  check_components(saved, chain, params, state, options, out);
  read_counters_and_groups(body, state.storage().group_names, out);
  check_data_size(body, params, state, out);
  return out;
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
    require(c.set_id == head.set_id, "checkpoint files from different saves (save ids ", head.set_id, " and ", c.set_id,
            ")");
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

}  // namespace detail
}  // namespace mixprec
