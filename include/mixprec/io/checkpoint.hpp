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
// save_checkpoint writes a temporary file next to the target (path.tmp),
// flushes and syncs it, then renames it over the target: a crash mid-write
// leaves the previous checkpoint intact. load_checkpoint reads and checks
// the whole file (size, magic, version, checksum, every name, shape, format
// and the chain's layout) before it changes anything; any mismatch raises a
// mixprec::error saying what did not match.
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#if defined(__unix__) || defined(__APPLE__)
#include <unistd.h>
#endif

#include <mixprec/core/error.hpp>
#include <mixprec/detail/memory.hpp>
#include <mixprec/train/chain.hpp>

namespace mixprec {
namespace detail {

inline std::uint32_t crc32(const std::uint8_t* data, std::size_t n) {
  static const auto table = [] {
    std::vector<std::uint32_t> t(256);
    for (std::uint32_t i = 0; i < 256; ++i) {
      std::uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1u) ? 0xEDB88320u ^ (c >> 1) : c >> 1;  // IEEE 802.3, reflected
      t[i] = c;
    }
    return t;
  }();
  std::uint32_t c = 0xFFFFFFFFu;
  for (std::size_t i = 0; i < n; ++i) c = table[(c ^ data[i]) & 0xFFu] ^ (c >> 8);
  return c ^ 0xFFFFFFFFu;
}

inline constexpr char checkpoint_magic[8] = {'M', 'I', 'X', 'P', 'R', 'E', 'C', 'K'};
inline constexpr std::uint32_t checkpoint_version = 1;
inline constexpr std::size_t checkpoint_header = 8 + 4 + 4 + 8;

class byte_writer {
 public:
  template <class T>
  void put(const T& v) {
    static_assert(std::is_trivially_copyable_v<T>, "byte_writer: trivially copyable values only");
    const auto* p = reinterpret_cast<const std::uint8_t*>(&v);
    bytes_.insert(bytes_.end(), p, p + sizeof(T));
  }
  void put_string(const std::string& s) {
    put(static_cast<std::uint32_t>(s.size()));
    bytes_.insert(bytes_.end(), s.begin(), s.end());
  }
  // n bytes copied from device memory.
  void put_device(const void* device, std::size_t n) {
    const std::size_t at = bytes_.size();
    bytes_.resize(at + n);
    copy_to_host(static_cast<const std::uint8_t*>(device), bytes_.data() + at, n);
  }
  std::vector<std::uint8_t>& bytes() { return bytes_; }

 private:
  std::vector<std::uint8_t> bytes_;
};

class byte_reader {
 public:
  byte_reader(const std::uint8_t* data, std::size_t size) : data_(data), size_(size) {}
  template <class T>
  T get(const char* what) {
    need(sizeof(T), what);
    T v;
    std::memcpy(&v, data_ + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }
  std::string get_string(const char* what) {
    const std::uint32_t n = get<std::uint32_t>(what);
    require(n <= 65536, "checkpoint: ", what, " is ", n, " bytes long (corrupted length)");
    need(n, what);
    std::string s(reinterpret_cast<const char*>(data_ + pos_), n);
    pos_ += n;
    return s;
  }
  const std::uint8_t* take(std::size_t n, const char* what) {
    need(n, what);
    const std::uint8_t* p = data_ + pos_;
    pos_ += n;
    return p;
  }
  std::size_t position() const { return pos_; }

 private:
  void need(std::size_t n, const char* what) const {
    require(n <= size_ - pos_, "checkpoint is truncated: ", what, " needs ", n, " bytes at offset ", pos_, " but only ",
            size_ - pos_, " remain");
  }
  const std::uint8_t* data_;
  std::size_t size_, pos_ = 0;
};

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
};

template <class Arena, class... C>
void write_components(byte_writer& w, chain_state<Arena, C...>& state) {
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

}  // namespace detail

// The checkpoint as bytes (what save_checkpoint writes).
template <class Arena, class... C>
std::vector<std::uint8_t> serialize_checkpoint(Arena& params, chain_state<Arena, C...>& state, stream s = {}) {
  using namespace detail;
  require(params.finalized(), "save_checkpoint: the parameters are not finalized");
  synchronize(s);
  byte_writer w;
  for (char c : checkpoint_magic) w.put(c);
  w.put(checkpoint_version);
  w.put(std::uint32_t{0});
  w.put(std::uint64_t{0});  // total size, patched below
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
  w.put_device(raw(block), sizeof(chain_block<C...>));
  const auto& names = checkpoint_access::group_names(state);
  w.put(static_cast<std::uint32_t>(names.size()));
  std::vector<group_hyper> groups(names.size());
  copy_to_host(raw(checkpoint_access::groups(state)), groups.data(), groups.size());
  for (std::size_t g = 0; g < names.size(); ++g) {
    w.put_string(names[g]);
    w.put(groups[g].lr_scale);
    w.put(groups[g].weight_decay_scale);
  }
  const std::size_t n = params.padded_size();
  if constexpr (Arena::has_master) w.put_device(params.master_data(), n * sizeof(float));
  if constexpr (!Arena::model_is_master) w.put_device(params.model_data(), n * sizeof(typename Arena::model_type));
  std::apply([&](auto&... b) { ((
      [&](auto& buf) {
        for (auto& slot : buf.slots) w.put_device(raw(slot), n * sizeof(typename std::remove_reference_t<decltype(buf)>::F));
      }(b)), ...); },
             checkpoint_access::buffers(state));
  auto& bytes = w.bytes();
  const std::uint64_t total = bytes.size() + 4;
  std::memcpy(bytes.data() + 16, &total, 8);
  const std::uint32_t crc = crc32(bytes.data(), bytes.size());
  const auto* c = reinterpret_cast<const std::uint8_t*>(&crc);
  bytes.insert(bytes.end(), c, c + 4);
  return std::move(bytes);
}

// Loads a checkpoint from bytes; checks everything first, changes nothing on error.
template <class Arena, class... C>
void deserialize_checkpoint(const std::uint8_t* data, std::size_t size, Arena& params, chain_state<Arena, C...>& state,
                            stream s = {}) {
  using namespace detail;
  require(params.finalized(), "load_checkpoint: the parameters are not finalized");
  require(size >= checkpoint_header, "checkpoint is truncated: ", size, " bytes, shorter than its ", checkpoint_header,
          "-byte header");
  require(std::memcmp(data, checkpoint_magic, 8) == 0, "not a mixprec checkpoint (bad magic)");
  byte_reader r(data, size);
  r.take(8, "magic");
  const auto version = r.get<std::uint32_t>("version");
  require(version == checkpoint_version, "unsupported checkpoint version ", version, " (this build reads version ",
          checkpoint_version, ")");
  r.get<std::uint32_t>("reserved");
  const auto total = r.get<std::uint64_t>("size");
  require(size >= total, "checkpoint is truncated: ", size, " of ", total, " bytes");
  require(size == total, "checkpoint has ", size - total, " unexpected bytes after its end");
  std::uint32_t stored_crc;
  std::memcpy(&stored_crc, data + size - 4, 4);
  require(crc32(data, size - 4) == stored_crc, "checkpoint checksum mismatch: the file is corrupted");
  byte_reader body(data, size - 4);
  body.take(checkpoint_header, "header");

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
  const std::uint8_t* block = body.take(block_size, "scalar block");
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

  // The data: sizes are known now; take them all before writing anything.
  const std::size_t n = params.padded_size();
  const std::uint8_t* master = nullptr;
  const std::uint8_t* model = nullptr;
  if constexpr (Arena::has_master) master = body.take(n * sizeof(float), "master weights");
  if constexpr (!Arena::model_is_master) model = body.take(n * sizeof(typename Arena::model_type), "model copy");
  std::vector<const std::uint8_t*> arrays;
  std::apply([&](auto&... b) { ((
      [&](auto& buf) {
        for (std::size_t k = 0; k < buf.slots.size(); ++k)
          arrays.push_back(body.take(n * sizeof(typename std::remove_reference_t<decltype(buf)>::F), "optimizer state"));
      }(b)), ...); },
             checkpoint_access::buffers(state));
  require(body.position() == size - 4, "checkpoint has ", size - 4 - body.position(), " unexpected bytes in its data section");

  // Commit.
  write_to_device(block, reinterpret_cast<std::uint8_t*>(raw(checkpoint_access::block(state))), block_size, s);
  write_to_device(groups.data(), raw(checkpoint_access::groups(state)), groups.size(), s);
  if constexpr (Arena::has_master) write_to_device(master, reinterpret_cast<std::uint8_t*>(params.master_data()), n * sizeof(float), s);
  if constexpr (!Arena::model_is_master)
    write_to_device(model, reinterpret_cast<std::uint8_t*>(params.model_data()), n * sizeof(typename Arena::model_type), s);
  std::size_t a = 0;
  std::apply([&](auto&... b) { ((
      [&](auto& buf) {
        using F = typename std::remove_reference_t<decltype(buf)>::F;
        for (auto& slot : buf.slots) write_to_device(arrays[a++], reinterpret_cast<std::uint8_t*>(raw(slot)), n * sizeof(F), s);
      }(b)), ...); },
             checkpoint_access::buffers(state));
}

// Writes params and state to `path` atomically (see the header comment).
template <class Arena, class... C>
void save_checkpoint(const std::string& path, Arena& params, chain_state<Arena, C...>& state, stream s = {}) {
  const std::vector<std::uint8_t> bytes = serialize_checkpoint(params, state, s);
  const std::string tmp = path + ".tmp";
  std::FILE* f = std::fopen(tmp.c_str(), "wb");
  detail::require(f != nullptr, "save_checkpoint: cannot create ", tmp);
  const bool written = std::fwrite(bytes.data(), 1, bytes.size(), f) == bytes.size() && std::fflush(f) == 0;
#if defined(__unix__) || defined(__APPLE__)
  const bool synced = written && ::fsync(fileno(f)) == 0;
#else
  const bool synced = written;
#endif
  const bool closed = std::fclose(f) == 0;
  if (!(synced && closed)) {
    std::remove(tmp.c_str());
    throw error(detail::concat("save_checkpoint: cannot write ", tmp));
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    throw error(detail::concat("save_checkpoint: cannot rename ", tmp, " to ", path));
  }
}

// Loads params and state from `path`; nothing changes if it throws.
template <class Arena, class... C>
void load_checkpoint(const std::string& path, Arena& params, chain_state<Arena, C...>& state, stream s = {}) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  detail::require(f != nullptr, "load_checkpoint: cannot open ", path);
  std::vector<std::uint8_t> bytes;
  std::uint8_t buffer[1 << 16];
  std::size_t got;
  while ((got = std::fread(buffer, 1, sizeof buffer, f)) > 0) bytes.insert(bytes.end(), buffer, buffer + got);
  const bool failed = std::ferror(f) != 0;
  std::fclose(f);
  detail::require(!failed, "load_checkpoint: cannot read ", path);
  deserialize_checkpoint(bytes.data(), bytes.size(), params, state, s);
}

}  // namespace mixprec
