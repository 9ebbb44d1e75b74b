// Weights other tools can read: a parameter arena's model copy, master
// weights or gradients saved as a .safetensors file (the format of Hugging
// Face's safetensors library: an 8-byte little-endian header length, a JSON
// header naming each tensor's dtype, shape and byte range, then the raw
// little-endian data), and weights loaded from one into an arena.
//
//   save_safetensors(path, params, role::model, {{"format", "pt"}});
//   load_safetensors(path, params);   // weights only: any chain, any state
//
// dtypes: F32, F16, BF16, F8_E4M3, F8_E5M2 (a role is saved in its own
// format, bit for bit). Loading into an arena with fp32 master weights sets
// the master weights to the file's values (every dtype widens to float
// exactly) and rounds the model copy from them, as initialize() does; an
// arena without master weights takes the file's bits when the dtype is its
// model format and rounds to nearest even otherwise. Every tensor of the
// arena must be in the file with its shape; tensors of the file that the
// arena lacks are an error too, unless `strict` is off (then they are
// ignored, and parameters the file lacks keep their values). The whole
// header is checked (JSON syntax, dtypes, shapes, byte ranges that cover
// the data without gaps or overlaps) before anything changes.
//
// Needs nlohmann/json (Debian's nlohmann-json3-dev; CMake target
// mixprec::safetensors). Files are written atomically like checkpoints
// (io/file.hpp) and streamed through a fixed host buffer.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <map>
#include <string>
#include <type_traits>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>

#include <mixprec/cast/convert.hpp>
#include <mixprec/cast/convert_range.hpp>
#include <mixprec/core/error.hpp>
#include <mixprec/io/file.hpp>
#include <mixprec/io/records.hpp>
#include <mixprec/tensor/parameters.hpp>

namespace mixprec {

struct safetensors_options {
  bool strict = true;  // tensors of the file that the arena lacks (and the reverse) are errors
};

namespace detail {

inline constexpr std::uint64_t safetensors_max_header = std::uint64_t{100} << 20;  // as the reference reader

template <class T>
constexpr const char* safetensors_dtype() {
  if constexpr (std::is_same_v<T, float>) return "F32";
  else if constexpr (std::is_same_v<T, half>) return "F16";
  else if constexpr (std::is_same_v<T, bfloat16>) return "BF16";
  else if constexpr (std::is_same_v<T, fp8_e4m3>) return "F8_E4M3";
  else {
    static_assert(std::is_same_v<T, fp8_e5m2>, "safetensors: not a mixprec storage format");
    return "F8_E5M2";
  }
}

// Calls f(T{}) for the mixprec format named by a safetensors dtype; false if none.
template <class F>
bool with_safetensors_dtype(const std::string& dtype, F&& f) {
  if (dtype == "F32") f(float{});
  else if (dtype == "F16") f(half{});
  else if (dtype == "BF16") f(bfloat16{});
  else if (dtype == "F8_E4M3") f(fp8_e4m3{});
  else if (dtype == "F8_E5M2") f(fp8_e5m2{});
  else return false;
  return true;
}

struct safetensors_entry {
  std::string name, dtype;
  mixprec::shape shape;
  std::uint64_t begin = 0, end = 0;  // byte range in the data buffer
};

struct safetensors_header {
  std::vector<safetensors_entry> tensors;  // in file order of their data
  std::map<std::string, std::string> metadata;
  std::uint64_t data_start = 0;
};

// Parses and checks a safetensors header; throws mixprec::error on anything
// malformed.
inline safetensors_header read_safetensors_header(const byte_source& src) {
  const std::uint64_t size = src.size();
  require(size >= 8, "safetensors file is truncated: ", size, " bytes, shorter than its 8-byte header length");
  std::uint64_t n = 0;
  src.read_at(0, &n, 8);
  require(n <= safetensors_max_header, "safetensors header length ", n, " exceeds the 100 MiB limit (not a safetensors "
          "file?)");
  require(n <= size - 8, "safetensors file is truncated: its header needs ", n, " bytes but only ", size - 8,
          " follow");
  std::string text(static_cast<std::size_t>(n), '\0');
  src.read_at(8, text.data(), text.size());
  const nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  require(!j.is_discarded(), "safetensors header is not valid JSON");
  require(j.is_object(), "safetensors header is not a JSON object");
  safetensors_header h;
  h.data_start = 8 + n;
  const std::uint64_t buffer = size - h.data_start;
  for (auto it = j.begin(); it != j.end(); ++it) {
    const std::string& key = it.key();
    const nlohmann::json& v = it.value();
    if (key == "__metadata__") {
      require(v.is_object(), "safetensors __metadata__ is not a JSON object");
      for (auto m = v.begin(); m != v.end(); ++m) {
        require(m.value().is_string(), "safetensors __metadata__ value of \"", m.key(), "\" is not a string");
        h.metadata[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    require(v.is_object(), "safetensors tensor \"", key, "\" is not a JSON object");
    require(v.contains("dtype") && v["dtype"].is_string(), "safetensors tensor \"", key, "\" has no dtype string");
    require(v.contains("shape") && v["shape"].is_array(), "safetensors tensor \"", key, "\" has no shape array");
    require(v.contains("data_offsets") && v["data_offsets"].is_array() && v["data_offsets"].size() == 2,
            "safetensors tensor \"", key, "\" has no [begin, end] data_offsets");
    safetensors_entry e;
    e.name = key;
    e.dtype = v["dtype"].get<std::string>();
    std::size_t element_bytes = 0;
    require(with_safetensors_dtype(e.dtype, [&](auto x) { element_bytes = sizeof(x); }), "safetensors tensor \"", key,
            "\" has dtype ", e.dtype, ", which mixprec does not store (F32, F16, BF16, F8_E4M3, F8_E5M2)");
    const nlohmann::json& dims = v["shape"];
    require(dims.size() <= shape::max_rank, "safetensors tensor \"", key, "\" has rank ", dims.size(),
            " (at most ", shape::max_rank, ")");
    std::vector<std::uint64_t> extents;
    for (const auto& d : dims) {
      require(d.is_number_unsigned(), "safetensors tensor \"", key, "\" has an extent that is not a non-negative integer");
      extents.push_back(d.get<std::uint64_t>());
    }
    e.shape = mixprec::shape(extents.begin(), extents.end());
    const nlohmann::json& off = v["data_offsets"];
    require(off[0].is_number_unsigned() && off[1].is_number_unsigned(), "safetensors tensor \"", key,
            "\" has data_offsets that are not non-negative integers");
    e.begin = off[0].get<std::uint64_t>();
    e.end = off[1].get<std::uint64_t>();
    require(e.begin <= e.end && e.end <= buffer, "safetensors tensor \"", key, "\" has data_offsets [", e.begin, ", ",
            e.end, "] outside the ", buffer, "-byte data buffer");
    const std::size_t count = e.shape.size();  // throws on overflow
    require(count <= (e.end - e.begin) / element_bytes && count * element_bytes == e.end - e.begin,
            "safetensors tensor \"", key, "\" of shape ", e.shape.to_string(), " and dtype ", e.dtype, " needs ",
            static_cast<double>(count) * static_cast<double>(element_bytes), " bytes but its data_offsets span ",
            e.end - e.begin);
    h.tensors.push_back(std::move(e));
  }
  // The tensors tile the data buffer: no gap, no overlap.
  std::sort(h.tensors.begin(), h.tensors.end(),
            [](const safetensors_entry& a, const safetensors_entry& b) { return a.begin < b.begin || (a.begin == b.begin && a.end < b.end); });
  std::uint64_t at = 0;
  for (const safetensors_entry& e : h.tensors) {
    require(e.begin == at, "safetensors tensor \"", e.name, "\" starts at byte ", e.begin, " of the data buffer where ",
            at, " was expected (the tensors must cover it without gaps or overlaps)");
    at = e.end;
  }
  require(at == buffer, "safetensors data buffer has ", buffer - at, " bytes that no tensor covers");
  return h;
}

// Widens `count` elements of dtype T at `offset` of src into float, in
// chunks, handing each chunk to sink(first element, values, n).
template <class T, class Sink>
void read_as_float(const byte_source& src, std::uint64_t offset, std::size_t count, Sink&& sink) {
  constexpr std::size_t chunk = stream_chunk_bytes / sizeof(float);
  std::vector<T> raw(std::min(count, chunk));
  std::vector<float> values(raw.size());
  for (std::size_t at = 0; at < count; at += chunk) {
    const std::size_t k = std::min(chunk, count - at);
    src.read_at(offset + at * sizeof(T), raw.data(), k * sizeof(T));
    for (std::size_t i = 0; i < k; ++i) values[i] = to_float(raw[i]);
    sink(at, values.data(), k);
  }
}

template <class Arena>
void load_safetensors_from(const byte_source& src, Arena& params, const safetensors_options& options, stream s) {
  require(params.finalized(), "load_safetensors: the parameters are not finalized");
  const safetensors_header h = read_safetensors_header(src);
  std::unordered_map<std::string, const safetensors_entry*> by_name;
  for (const safetensors_entry& e : h.tensors) by_name[e.name] = &e;
  // Check everything first.
  std::vector<const safetensors_entry*> found(params.count(), nullptr);
  for (const auto& p : params.list()) {
    const auto it = by_name.find(p.name);
    if (it == by_name.end()) {
      require(!options.strict, "load_safetensors: the file has no tensor \"", p.name,
              "\" (strict: every parameter must be in the file)");
      continue;
    }
    require(it->second->shape == p.shape, "load_safetensors: tensor \"", p.name, "\" has shape ",
            it->second->shape.to_string(), " in the file but ", p.shape.to_string(), " in this arena");
    found[p.index] = it->second;
  }
  if (options.strict)
    for (const safetensors_entry& e : h.tensors) {
      require(params.contains(e.name), "load_safetensors: the file has a tensor \"", e.name, "\" that this arena lacks (strict)");
    }
  // Then copy.
  using model_type = typename Arena::model_type;
  for (const auto& p : params.list()) {
    const safetensors_entry* e = found[p.index];
    if (e == nullptr || p.size == 0) continue;
    const std::uint64_t at = h.data_start + e->begin;
    if constexpr (Arena::has_master && !Arena::model_is_master) {
      if (!params.owns_master(p.index)) {
        // Sharded master weights (mixprec/dist): the part this arena keeps, and the whole model copy.
        const std::size_t mb = params.master_begin(), me = params.master_end();
        with_safetensors_dtype(e->dtype, [&](auto x) {
          read_as_float<decltype(x)>(src, at, p.size, [&](std::size_t first, const float* v, std::size_t k) {
            const std::size_t b = std::max(p.offset + first, mb), e2 = std::min(p.offset + first + k, me);
            if (b < e2) write_to_device(v + (b - p.offset - first), params.master_data() + (b - mb), e2 - b, s);
            std::vector<model_type> narrow(k);
            for (std::size_t i = 0; i < k; ++i) narrow[i] = convert<model_type, weight_overflow<model_type>>(v[i]);
            write_to_device(narrow.data(), params.model_data() + p.offset + first, k, s);
          });
        });
        continue;
      }
    }
    if constexpr (Arena::has_master) {
      float* master = params.master_data() + (p.offset - params.master_begin());
      with_safetensors_dtype(e->dtype, [&](auto x) {
        read_as_float<decltype(x)>(src, at, p.size, [&](std::size_t first, const float* v, std::size_t k) {
          write_to_device(v, master + first, k, s);
        });
      });
      if constexpr (!Arena::model_is_master)
        convert_n<model_type, weight_overflow<model_type>>(master, p.size, params.model_data() + p.offset,
                                                           round_nearest_even{}, s);
    } else {
      model_type* model = params.model_data() + p.offset;
      if (e->dtype == safetensors_dtype<model_type>()) {
        source_to_device(src, at, model, p.size * sizeof(model_type), s);
      } else {
        with_safetensors_dtype(e->dtype, [&](auto x) {
          read_as_float<decltype(x)>(src, at, p.size, [&](std::size_t first, const float* v, std::size_t k) {
            std::vector<model_type> narrow(k);
            for (std::size_t i = 0; i < k; ++i) narrow[i] = convert<model_type, weight_overflow<model_type>>(v[i]);
            write_to_device(narrow.data(), model + first, k, s);
          });
        });
      }
    }
  }
  synchronize(s);
}

template <class T, class Arena>
void encode_role(byte_sink& sink, Arena& params, T* data, const std::map<std::string, std::string>& metadata, stream s) {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::uint64_t at = 0;
  for (const auto& p : params.list()) {
    const std::uint64_t bytes = static_cast<std::uint64_t>(p.size) * sizeof(T);
    header[p.name] = {{"dtype", safetensors_dtype<T>()},
                      {"shape", std::vector<std::uint64_t>(p.shape.begin(), p.shape.end())},
                      {"data_offsets", {at, at + bytes}}};
    at += bytes;
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // the data starts 8-byte aligned
  record_writer w(sink);
  w.put(static_cast<std::uint64_t>(text.size()));
  w.put_bytes(text.data(), text.size());
  synchronize(s);
  for (const auto& p : params.list()) w.put_device(data + p.offset, p.size * sizeof(T), s);
}

}  // namespace detail

// Writes one role of the arena (the model copy by default) to `path`.
template <class Arena>
void save_safetensors(const std::string& path, Arena& params, role which = role::model,
                      const std::map<std::string, std::string>& metadata = {}, stream s = {}) {
  detail::require(params.finalized(), "save_safetensors: the parameters are not finalized");
  detail::require(which != role::master || Arena::has_master,
                  "save_safetensors: this arena has no master weights (Master = void)");
  detail::atomic_file_writer file(path, "save_safetensors");
  detail::file_sink sink(file);
  if (which == role::grad) {
    detail::encode_role(sink, params, params.grad_data(), metadata, s);
  } else if (which == role::model) {
    detail::encode_role(sink, params, params.model_data(), metadata, s);
  } else if constexpr (Arena::has_master) {
    detail::require(!params.master_sharded(), "save_safetensors: this arena keeps the master weights of elements [",
                    params.master_begin(), ", ", params.master_end(), ") only (sharded, mixprec/dist): save the model "
                    "copy, or a sharded checkpoint");
    detail::encode_role(sink, params, params.master_data(), metadata, s);
  }
  file.commit();
}

// Loads weights from `path` into the arena (see the header comment).
template <class Arena>
void load_safetensors(const std::string& path, Arena& params, const safetensors_options& options = {},
                      stream s = {}) {
  const detail::file_reader file(path, "load_safetensors");
  detail::load_safetensors_from(detail::file_source(file), params, options, s);
}

// The file's __metadata__ (string pairs), after checking its header.
inline std::map<std::string, std::string> safetensors_metadata(const std::string& path) {
  const detail::file_reader file(path, "safetensors_metadata");
  return detail::read_safetensors_header(detail::file_source(file)).metadata;
}

}  // namespace mixprec
