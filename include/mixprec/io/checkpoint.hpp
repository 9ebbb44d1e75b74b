// Checkpoints: parameters (fp32 master and model copy), the gradients'
// format, and the whole state of a chain (scaler scale and counters,
// optimizer moments, schedule step count, stochastic-rounding stream, group
// multipliers) in one file, so that a resumed run continues bit for bit.
//
// Format (version 1, little-endian):
//   "MIXPRECK", u32 version, u32 reserved, u64 total size
//   arena: u8 model format, u8 gradient format, u8 has master, u8 model is
//          master, u64 padded size, u32 count, then per parameter: name,
//          rank, extents, group
//   chain: u32 count, per component: name, u64 scalar bytes, u8 state
//          format, u32 state arrays; u64 + the device scalar block; u32 +
//          groups (name, lr scale, weight-decay scale)
//   data:  master weights, model copy, each component's state arrays
//   u32 CRC-32 of everything before it
// Strings are u32 length + bytes.
//
// save_checkpoint streams the file into a temporary of its own next to the
// target and renames it over the target only when complete and synced
// (io/file.hpp): a crash or an error leaves the previous checkpoint intact,
// and concurrent saves to one path each land whole. load_checkpoint checks
// the header first (a file that is not a checkpoint is rejected after 24
// bytes), then the checksum of the whole file, then every name, shape,
// format and the chain's layout, and only then copies the data in: any
// mismatch raises a mixprec::error saying what did not match, and changes
// nothing. Both move device memory through a fixed 4 MiB host buffer, so
// they need no host memory in proportion to the checkpoint.
#pragma once

#include <cstdint>
#include <cstring>
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
namespace detail {

inline constexpr char checkpoint_magic[8] = {'M', 'I', 'X', 'P', 'R', 'E', 'C', 'K'};
inline constexpr std::uint32_t checkpoint_version = 1;
inline constexpr std::size_t checkpoint_header = 8 + 4 + 4 + 8;

inline std::string shape_text(const std::vector<std::uint64_t>& dims) {
  std::string s = "[";
  for (std::size_t k = 0; k < dims.size(); ++k) s += (k ? ", " : "") + std::to_string(dims[k]);
  return s + "]";
}

// Reads and writes the private parts of a chain state.
struct checkpoint_access {
  template <class Arena, class... C>
  static auto& block(chain_state<Arena, C...>& s) { return s.block_; }
  template <class Arena, class... C>
  static auto& buffers(chain_state<Arena, C...>& s) { return s.buffers_; }
  template <class Arena, class... C>
  static auto& groups(chain_state<Arena, C...>& s) { return s.groups_; }
  template <class Arena, class... C>
  static const std::vector<std::string>& group_names(chain_state<Arena, C...>& s) { return s.group_names_; }
  template <class Arena, class... C>
  static const arena_signature& arena(const chain_state<Arena, C...>& s) { return s.arena_; }
};
template <class Arena, class... C>
const arena_signature& state_arena(const chain_state<Arena, C...>& s) {
  return checkpoint_access::arena(s);
}

template <class Arena, class... C>
void write_components(record_writer& w, chain_state<Arena, C...>& state) {
  auto& buffers = checkpoint_access::buffers(state);
  w.put(static_cast<std::uint32_t>(sizeof...(C)));
  std::size_t k = 0;
  std::apply(
      [&](auto&... b) {
        (
            [&](auto& buf) {
              using B = std::remove_reference_t<decltype(buf)>;
              constexpr const char* names[] = {C::name...};
              constexpr std::size_t sizes[] = {sizeof(typename C::scalars)...};
              w.put_string(names[k]);
              w.put(static_cast<std::uint64_t>(sizes[k]));
              w.put(static_cast<std::uint8_t>(format_traits<typename B::F>::id));
              w.put(static_cast<std::uint32_t>(buf.slots.size()));
              ++k;
            }(b),
            ...);
      },
      buffers);
}

// The device arrays of a checkpoint's data section, in file order: master
// weights, model copy, each component's state arrays.
struct device_array {
  void* data;
  std::size_t bytes;
};
template <class Arena, class... C>
std::vector<device_array> data_arrays(Arena& params, chain_state<Arena, C...>& state) {
  std::vector<device_array> arrays;
  const std::size_t n = params.padded_size();
  if constexpr (Arena::has_master) arrays.push_back({params.master_data(), n * sizeof(float)});
  if constexpr (!Arena::model_is_master)
    arrays.push_back({params.model_data(), n * sizeof(typename Arena::model_type)});
  std::apply([&](auto&... b) { ((
      [&](auto& buf) {
        using F = typename std::remove_reference_t<decltype(buf)>::F;
        for (auto& slot : buf.slots) arrays.push_back({raw(slot), n * sizeof(F)});
      }(b)), ...); },
             checkpoint_access::buffers(state));
  return arrays;
}

// Everything between the header and the data section.
template <class Arena, class... C>
void write_metadata(record_writer& w, Arena& params, chain_state<Arena, C...>& state, stream s) {
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
  write_components(w, state);
  auto& block = checkpoint_access::block(state);
  w.put(static_cast<std::uint64_t>(sizeof(chain_block<C...>)));
  w.put_device(raw(block), sizeof(chain_block<C...>), s);
  const auto& names = checkpoint_access::group_names(state);
  w.put(static_cast<std::uint32_t>(names.size()));
  std::vector<group_hyper> groups(names.size());
  copy_to_host(raw(checkpoint_access::groups(state)), groups.data(), groups.size(), s);
  for (std::size_t g = 0; g < names.size(); ++g) {
    w.put_string(names[g]);
    w.put(groups[g].lr_scale);
    w.put(groups[g].weight_decay_scale);
  }
}

// Writes the whole checkpoint to `sink`, streaming the data section.
template <class Arena, class... C>
void encode_checkpoint(byte_sink& sink, Arena& params, chain_state<Arena, C...>& state, stream s) {
  require(params.finalized(), "save_checkpoint: the parameters are not finalized");
  require(state.initialized(), "save_checkpoint: the chain state was not made by init()");
  require(params.signature().hash == state_arena(state).hash, "save_checkpoint: the state was made by init() for "
          "another parameter arena: ", state_arena(state).difference(params.signature()));
  synchronize(s);
  memory_sink meta;
  {
    record_writer m(meta);
    write_metadata(m, params, state, s);
  }
  const std::vector<device_array> arrays = data_arrays(params, state);
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

// Reads and checks a checkpoint from `src`; changes params and state only
// when every check has passed.
template <class Arena, class... C>
void decode_checkpoint(const byte_source& src, Arena& params, chain_state<Arena, C...>& state, stream s) {
  require(params.finalized(), "load_checkpoint: the parameters are not finalized");
  require(state.initialized(), "load_checkpoint: the chain state was not made by init()");
  const std::uint64_t size = src.size();
  // The header first: a file that is not a checkpoint stops here.
  require(size >= checkpoint_header, "checkpoint is truncated: ", size, " bytes, shorter than its ", checkpoint_header,
          "-byte header");
  std::uint8_t header[checkpoint_header];
  src.read_at(0, header, checkpoint_header);
  require(std::memcmp(header, checkpoint_magic, 8) == 0, "not a mixprec checkpoint (bad magic)");
  std::uint32_t version;
  std::uint64_t total;
  std::memcpy(&version, header + 8, 4);
  std::memcpy(&total, header + 16, 8);
  require(version == checkpoint_version, "unsupported checkpoint version ", version, " (this build reads version ",
          checkpoint_version, ")");
  require(size >= total, "checkpoint is truncated: ", size, " of ", total, " bytes");
  require(size == total, "checkpoint has ", size - total, " unexpected bytes after its end");
  // Then the checksum of everything.
  {
    record_reader all(src, "checkpoint", size - 4);
    all.skip(size - 4, "the checkpoint");
    std::uint32_t stored;
    src.read_at(size - 4, &stored, 4);
    require(all.crc() == stored, "checkpoint checksum mismatch: the file is corrupted");
  }
  record_reader body(src, "checkpoint", size - 4);
  body.skip(checkpoint_header, "header");

  // The arena.
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

  // The chain.
  const auto ncomp = body.get<std::uint32_t>("component count");
  require(ncomp == sizeof...(C), "checkpoint chain has ", ncomp, " components but this chain has ", sizeof...(C));
  constexpr const char* names[] = {C::name...};
  constexpr std::size_t sizes[] = {sizeof(typename C::scalars)...};
  constexpr std::uint8_t formats[] = {static_cast<std::uint8_t>(format_traits<typename C::state_format>::id)...};
  std::vector<std::size_t> slots;
  std::apply([&](auto&... b) { (slots.push_back(b.slots.size()), ...); }, checkpoint_access::buffers(state));
  for (std::size_t k = 0; k < sizeof...(C); ++k) {
    const std::string name = body.get_string("component name");
    require(name == names[k], "chain component ", k, " is ", name, " in the checkpoint but ", names[k], " in this chain");
    const auto bytes = body.get<std::uint64_t>("component scalars");
    require(bytes == sizes[k], "chain component ", k, " (", name, ") keeps ", bytes, " bytes of scalars in the checkpoint but ",
            sizes[k], " here");
    const auto f = body.get<std::uint8_t>("state format");
    require(f == formats[k], "chain component ", k, " (", name, ") keeps its state in ", format_of(f),
            " in the checkpoint but ", format_of(formats[k]), " here");
    const auto nslots = body.get<std::uint32_t>("state arrays");
    require(nslots == slots[k], "chain component ", k, " (", name, ") has ", nslots, " state arrays in the checkpoint but ",
            slots[k], " here (different options, e.g. amsgrad or momentum)");
  }
  const auto block_size = body.get<std::uint64_t>("scalar block size");
  require(block_size == sizeof(chain_block<C...>), "checkpoint scalar block has ", block_size, " bytes but this chain's has ",
          sizeof(chain_block<C...>));
  chain_block<C...> block;
  body.get_bytes(&block, sizeof block, "scalar block");
  const auto ngroups = body.get<std::uint32_t>("group count");
  const auto& my_groups = checkpoint_access::group_names(state);
  require(ngroups == my_groups.size(), "checkpoint has ", ngroups, " groups but this arena has ", my_groups.size());
  std::vector<group_hyper> groups(ngroups);
  for (std::uint32_t g = 0; g < ngroups; ++g) {
    const std::string name = body.get_string("group name");
    require(name == my_groups[g], "group ", g, " is \"", name, "\" in the checkpoint but \"", my_groups[g], "\" here");
    groups[g].lr_scale = body.get<float>("group lr scale");
    groups[g].weight_decay_scale = body.get<float>("group weight decay scale");
  }

  // The data: its size is known now.
  const std::vector<device_array> arrays = data_arrays(params, state);
  std::uint64_t data_bytes = 0;
  for (const device_array& a : arrays) data_bytes += a.bytes;
  const std::uint64_t data_at = body.position();
  require(body.remaining() >= data_bytes, "checkpoint is truncated: its data section needs ", data_bytes,
          " bytes but only ", body.remaining(), " remain");
  require(body.remaining() == data_bytes, "checkpoint has ", body.remaining() - data_bytes,
          " unexpected bytes in its data section");

  // Commit.
  write_to_device(&block, raw(checkpoint_access::block(state)), 1, s);
  write_to_device(groups.data(), raw(checkpoint_access::groups(state)), groups.size(), s);
  std::uint64_t at = data_at;
  for (const device_array& a : arrays) {
    source_to_device(src, at, a.data, a.bytes, s);
    at += a.bytes;
  }
}

}  // namespace detail

// The checkpoint as bytes (what save_checkpoint writes to its file).
template <class Arena, class... C>
std::vector<std::uint8_t> serialize_checkpoint(Arena& params, chain_state<Arena, C...>& state, stream s = {}) {
  detail::memory_sink sink;
  detail::encode_checkpoint(sink, params, state, s);
  return std::move(sink.bytes());
}

// Loads a checkpoint from bytes; checks everything first, changes nothing on error.
template <class Arena, class... C>
void deserialize_checkpoint(const std::uint8_t* data, std::size_t size, Arena& params, chain_state<Arena, C...>& state,
                            stream s = {}) {
  detail::decode_checkpoint(detail::memory_source(data, size), params, state, s);
}

// Writes params and state to `path` atomically (see the header comment).
template <class Arena, class... C>
void save_checkpoint(const std::string& path, Arena& params, chain_state<Arena, C...>& state, stream s = {}) {
  detail::atomic_file_writer file(path, "save_checkpoint");
  detail::file_sink sink(file);
  detail::encode_checkpoint(sink, params, state, s);
  file.commit();
}

// Loads params and state from `path`; nothing changes if it throws.
template <class Arena, class... C>
void load_checkpoint(const std::string& path, Arena& params, chain_state<Arena, C...>& state, stream s = {}) {
  const detail::file_reader file(path, "load_checkpoint");
  detail::decode_checkpoint(detail::file_source(file), params, state, s);
}

}  // namespace mixprec
