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
// Headers are read as a stream of parser events (nlohmann's SAX interface,
// the text pulled in 64 KiB chunks), never as a JSON document: headers
// over 100,000,000 bytes are refused as Python's safetensors refuses them,
// nesting deeper than a header's three levels stops the parse at once, and
// what the parsed header holds is limited to 16 bytes per byte of header
// (plus 1 MiB); a load keeps no __metadata__ (safetensors_metadata does).
// Running out of memory is a mixprec::error, as every other failure.
//
// Needs nlohmann/json (Debian's nlohmann-json3-dev; CMake target
// mixprec::safetensors). Files are written atomically like checkpoints
// (io/file.hpp) and streamed through a fixed host buffer.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <iterator>
#include <map>
#include <new>
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

// The largest header Python's safetensors reads (MAX_HEADER_SIZE in its
// safetensors/src/tensor.rs: 100,000,000 bytes; longer is HeaderTooLarge).
inline constexpr std::uint64_t safetensors_max_header = 100000000;
// What the parsed header may hold, per byte of its text (entries, names,
// the vector's spare capacity), plus a constant: a header that would take
// more is refused, never allocated.
inline constexpr std::uint64_t safetensors_bytes_per_header_byte = 16;
inline constexpr std::uint64_t safetensors_budget_floor = std::uint64_t{1} << 20;

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

// The header's bytes as the input iterator nlohmann's parser pulls
// characters from: read from the source in chunks of 64 KiB, so the text is
// never held whole.
class safetensors_text {
 public:
  safetensors_text(const byte_source& src, std::uint64_t first, std::uint64_t size)
      : src_(src), first_(first), size_(size) {}
  char at(std::uint64_t pos) {
    if (pos < chunk_at_ || pos >= chunk_at_ + chunk_.size()) {
      chunk_at_ = pos;
      chunk_.resize(static_cast<std::size_t>(std::min<std::uint64_t>(chunk_bytes, size_ - pos)));
      src_.read_at(first_ + pos, chunk_.data(), chunk_.size());
    }
    return chunk_[static_cast<std::size_t>(pos - chunk_at_)];
  }
  std::uint64_t size() const { return size_; }

  class iterator {
   public:
    using iterator_category = std::input_iterator_tag;
    using value_type = char;
    using difference_type = std::ptrdiff_t;
    using pointer = const char*;
    using reference = char;
    iterator(safetensors_text* text, std::uint64_t pos) : text_(text), pos_(pos) {}
    char operator*() const { return text_->at(pos_); }
    iterator& operator++() {
      ++pos_;
      return *this;
    }
    bool operator==(const iterator& o) const { return pos_ == o.pos_; }
    bool operator!=(const iterator& o) const { return pos_ != o.pos_; }

   private:
    safetensors_text* text_;
    std::uint64_t pos_;
  };
  iterator begin() { return {this, 0}; }
  iterator end() { return {this, size_}; }

 private:
  static constexpr std::uint64_t chunk_bytes = 64 * 1024;
  const byte_source& src_;
  std::uint64_t first_, size_;
  std::uint64_t chunk_at_ = 0;
  std::vector<char> chunk_;
};

// Builds a safetensors_header from the parser's events (nlohmann's SAX
// interface), never a JSON document: a header has depth 3 at most (the
// object, a tensor's object or __metadata__, a shape or data_offsets
// array); anything deeper, a shape of rank above shape::max_rank, a third
// data offset, or entries that would take more than `budget` bytes stop
// the parse at once. The first problem is kept in problem().
class safetensors_header_reader {
 public:
  using json = nlohmann::json;
  safetensors_header_reader(safetensors_header& out, std::uint64_t buffer, std::uint64_t budget, bool keep_metadata)
      : out_(out), buffer_(buffer), budget_(budget), keep_metadata_(keep_metadata) {}
  const std::string& problem() const { return problem_; }
  bool saw_object() const { return saw_object_; }

  bool null() { return scalar(value::other); }
  bool boolean(bool) { return scalar(value::other); }
  bool number_integer(json::number_integer_t) { return scalar(value::negative); }
  bool number_unsigned(json::number_unsigned_t v) {
    unsigned_ = v;
    return scalar(value::non_negative);
  }
  bool number_float(json::number_float_t, const json::string_t&) { return scalar(value::other); }
  bool binary(json::binary_t&) { return scalar(value::other); }
  bool string(json::string_t& v) {
    string_ = &v;
    return scalar(value::text);
  }
  bool key(json::string_t& k) {
    if (depth_ == 1) {
      next_ = k == "__metadata__" ? slot::metadata : slot::tensor;
      if (next_ == slot::tensor) tensor_name_ = std::move(k);
    } else if (mode_[depth_] == slot::tensor) {
      next_ = k == "dtype"          ? slot::dtype
              : k == "shape"        ? slot::shape
              : k == "data_offsets" ? slot::offsets
                                    : slot::ignored;
    } else if (mode_[depth_] == slot::metadata) {
      next_ = slot::metadata_value;
      metadata_key_ = std::move(k);
    } else {
      next_ = slot::ignored;
    }
    return true;
  }
  bool start_object(std::size_t) { return open(true); }
  bool end_object() { return close(); }
  bool start_array(std::size_t) { return open(false); }
  bool end_array() { return close(); }
  bool parse_error(std::size_t position, const std::string&, const nlohmann::detail::exception&) {
    return fail(concat("safetensors header is not valid JSON (at byte ", position, ")"));
  }

 private:
  enum class slot { top, metadata, metadata_value, tensor, dtype, shape, offsets, ignored };
  enum class value { negative, non_negative, text, other };
  static constexpr int max_depth = 3;

  bool fail(std::string why) {
    if (problem_.empty()) problem_ = std::move(why);
    return false;
  }
  std::string tensor_text() const { return concat("safetensors tensor \"", entry_.name, "\""); }

  bool open(bool object) {
    if (depth_ == 0) {
      if (!object) return fail("safetensors header is not a JSON object");
      saw_object_ = true;
      mode_[++depth_] = slot::top;
      return true;
    }
    if (mode_[depth_] == slot::shape) return fail(tensor_text() + " has an extent that is not a non-negative integer");
    if (mode_[depth_] == slot::offsets)
      return fail(tensor_text() + " has data_offsets that are not non-negative integers");
    if (depth_ >= max_depth)
      return fail(concat("safetensors header nests deeper than a header's ", max_depth,
                         " levels (an object of tensors, a tensor, its shape)"));
    const slot s = next_;
    next_ = slot::ignored;
    if (s == slot::metadata) {
      if (!object) return fail("safetensors __metadata__ is not a JSON object");
      if (keep_metadata_) {  // a second __metadata__ replaces the first, as a JSON object's repeated key
        out_.metadata.clear();
        metadata_bytes_ = 0;
      }
    } else if (s == slot::tensor) {
      if (!object) return fail(concat("safetensors tensor \"", tensor_name_, "\" is not a JSON object"));
      entry_ = safetensors_entry{};
      entry_.name = std::move(tensor_name_);
      has_dtype_ = has_shape_ = has_offsets_ = false;
    } else if (s == slot::shape) {
      if (object) return fail(tensor_text() + " has no shape array");
      extents_.clear();
      has_shape_ = true;
    } else if (s == slot::offsets) {
      if (object) return fail(tensor_text() + " has no [begin, end] data_offsets");
      offsets_.clear();
      has_offsets_ = true;
    } else if (s == slot::dtype) {
      return fail(tensor_text() + " has no dtype string");
    } else if (s == slot::metadata_value) {
      return fail(concat("safetensors __metadata__ value of \"", metadata_key_, "\" is not a string"));
    }
    mode_[++depth_] =
        s == slot::metadata || s == slot::tensor || s == slot::shape || s == slot::offsets ? s : slot::ignored;
    return true;
  }

  bool close() {
    const slot s = mode_[depth_];
    --depth_;
    if (s == slot::tensor) return finish_tensor();
    if (s == slot::shape) {
      entry_.shape = mixprec::shape(extents_.begin(), extents_.end());
    } else if (s == slot::offsets && offsets_.size() != 2) {
      return fail(tensor_text() + " has no [begin, end] data_offsets");
    }
    return true;
  }

  bool scalar(value v) {
    if (depth_ == 0) return fail("safetensors header is not a JSON object");
    const slot at = mode_[depth_];
    if (at == slot::shape) {
      if (v != value::non_negative) return fail(tensor_text() + " has an extent that is not a non-negative integer");
      if (extents_.size() == shape::max_rank)
        return fail(concat(tensor_text(), " has rank above ", shape::max_rank, " (at most ", shape::max_rank, ")"));
      extents_.push_back(unsigned_);
      return true;
    }
    if (at == slot::offsets) {
      if (v != value::non_negative) return fail(tensor_text() + " has data_offsets that are not non-negative integers");
      if (offsets_.size() == 2) return fail(tensor_text() + " has no [begin, end] data_offsets");
      offsets_.push_back(unsigned_);
      return true;
    }
    const slot s = next_;
    next_ = slot::ignored;
    switch (s) {
      case slot::metadata:
        return fail("safetensors __metadata__ is not a JSON object");
      case slot::tensor:
        return fail(concat("safetensors tensor \"", tensor_name_, "\" is not a JSON object"));
      case slot::shape:
        return fail(tensor_text() + " has no shape array");
      case slot::offsets:
        return fail(tensor_text() + " has no [begin, end] data_offsets");
      case slot::dtype:
        if (v != value::text) return fail(tensor_text() + " has no dtype string");
        entry_.dtype = std::move(*string_);
        has_dtype_ = true;
        return true;
      case slot::metadata_value:
        if (v != value::text)
          return fail(concat("safetensors __metadata__ value of \"", metadata_key_, "\" is not a string"));
        if (keep_metadata_) {
          metadata_bytes_ += metadata_key_.size() + string_->size() + metadata_node_bytes;
          if (!within_budget()) return false;
          out_.metadata[metadata_key_] = std::move(*string_);
        }
        return true;
      default:
        return true;  // a value the header does not use
    }
  }

  bool finish_tensor() {
    if (!has_dtype_) return fail(tensor_text() + " has no dtype string");
    if (!has_shape_) return fail(tensor_text() + " has no shape array");
    if (!has_offsets_) return fail(tensor_text() + " has no [begin, end] data_offsets");
    std::size_t element_bytes = 0;
    if (!with_safetensors_dtype(entry_.dtype, [&](auto x) { element_bytes = sizeof(x); }))
      return fail(concat(tensor_text(), " has dtype ", entry_.dtype,
                         ", which mixprec does not store (F32, F16, BF16, F8_E4M3, F8_E5M2)"));
    entry_.begin = offsets_[0];
    entry_.end = offsets_[1];
    if (!(entry_.begin <= entry_.end && entry_.end <= buffer_))
      return fail(concat(tensor_text(), " has data_offsets [", entry_.begin, ", ", entry_.end, "] outside the ",
                         buffer_, "-byte data buffer"));
    const std::size_t count = entry_.shape.size();  // throws on overflow
    if (!(count <= (entry_.end - entry_.begin) / element_bytes && count * element_bytes == entry_.end - entry_.begin))
      return fail(concat(tensor_text(), " of shape ", entry_.shape.to_string(), " and dtype ", entry_.dtype, " needs ",
                         static_cast<double>(count) * static_cast<double>(element_bytes),
                         " bytes but its data_offsets span ", entry_.end - entry_.begin));
    name_bytes_ += heap_bytes(entry_.name) + heap_bytes(entry_.dtype);
    if (out_.tensors.size() == out_.tensors.capacity()) {
      const std::size_t grown = std::max<std::size_t>(16, out_.tensors.capacity() * 2);
      if (!within_budget(grown)) return false;
      out_.tensors.reserve(grown);
    }
    if (!within_budget()) return false;
    out_.tensors.push_back(std::move(entry_));
    return true;
  }

  // Bytes a string keeps outside itself (none within the small-string buffer).
  static std::uint64_t heap_bytes(const std::string& s) { return s.size() < 16 ? 0 : s.size() + 1; }
  bool within_budget(std::size_t capacity = 0) {
    const std::uint64_t held = std::max<std::uint64_t>(capacity, out_.tensors.capacity()) * sizeof(safetensors_entry) +
                               name_bytes_ + metadata_bytes_;
    if (held <= budget_) return true;
    return fail(concat("safetensors header would take more than ", budget_, " bytes of memory to hold (",
                       out_.tensors.size(), " tensors, ", out_.metadata.size(), " metadata entries so far)"));
  }
  static constexpr std::uint64_t metadata_node_bytes = 96;  // a map node with two strings

  safetensors_header& out_;
  std::uint64_t buffer_, budget_;
  bool keep_metadata_;
  std::string problem_;
  bool saw_object_ = false;
  int depth_ = 0;
  slot mode_[max_depth + 1] = {};
  slot next_ = slot::ignored;
  std::string tensor_name_, metadata_key_;
  safetensors_entry entry_;
  bool has_dtype_ = false, has_shape_ = false, has_offsets_ = false;
  std::vector<std::uint64_t> extents_, offsets_;
  json::number_unsigned_t unsigned_ = 0;
  json::string_t* string_ = nullptr;
  std::uint64_t name_bytes_ = 0, metadata_bytes_ = 0;
};

// Parses and checks a safetensors header; throws mixprec::error on anything
// malformed, on a header over safetensors_max_header bytes, and when memory
// runs out. `keep_metadata`: fill header.metadata (a load only checks it).
inline safetensors_header read_safetensors_header(const byte_source& src, bool keep_metadata = true) {
  const std::uint64_t size = src.size();
  require(size >= 8, "safetensors file is truncated: ", size, " bytes, shorter than its 8-byte header length");
  std::uint64_t n = 0;
  src.read_at(0, &n, 8);
  require(n <= safetensors_max_header, "safetensors header length ", n, " exceeds the limit of ",
          safetensors_max_header, " bytes (Python's safetensors refuses it too; not a safetensors file?)");
  require(n <= size - 8, "safetensors file is truncated: its header needs ", n, " bytes but only ", size - 8,
          " follow");
  safetensors_header h;
  h.data_start = 8 + n;
  const std::uint64_t buffer = size - h.data_start;
  try {
    safetensors_text text(src, 8, n);
    safetensors_header_reader reader(h, buffer, safetensors_bytes_per_header_byte * n + safetensors_budget_floor,
                                     keep_metadata);
    const bool parsed = nlohmann::json::sax_parse(text.begin(), text.end(), &reader);
    require(reader.problem().empty(), reader.problem());
    require(parsed, "safetensors header is not valid JSON");
    require(reader.saw_object(), "safetensors header is not a JSON object");
  } catch (const std::bad_alloc&) {
    throw error(concat("safetensors header of ", n, " bytes: out of memory while reading it"));
  }
  // A name given twice: the last entry counts, as for any repeated key of a
  // JSON object (Python's safetensors too).
  {
    std::vector<std::size_t> order(h.tensors.size());
    for (std::size_t k = 0; k < order.size(); ++k) order[k] = k;
    std::stable_sort(order.begin(), order.end(),
                     [&](std::size_t a, std::size_t b) { return h.tensors[a].name < h.tensors[b].name; });
    std::vector<bool> dropped(h.tensors.size(), false);
    bool any = false;
    for (std::size_t k = 0; k + 1 < order.size(); ++k)
      if (h.tensors[order[k]].name == h.tensors[order[k + 1]].name) dropped[order[k]] = any = true;
    if (any) {
      std::size_t kept = 0;
      for (std::size_t k = 0; k < h.tensors.size(); ++k)
        if (!dropped[k]) {
          if (kept != k) h.tensors[kept] = std::move(h.tensors[k]);
          ++kept;
        }
      h.tensors.resize(kept);
    }
  }
  // The tensors tile the data buffer: no gap, no overlap.
  std::sort(h.tensors.begin(), h.tensors.end(), [](const safetensors_entry& a, const safetensors_entry& b) {
    return a.begin < b.begin || (a.begin == b.begin && a.end < b.end);
  });
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

// Loads the tensors of a checked header into the arena (checks the arena
// against it first).
template <class Arena>
void load_checked_safetensors(const byte_source& src, const safetensors_header& h, Arena& params,
                              const safetensors_options& options, stream s) {
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
      require(params.contains(e.name), "load_safetensors: the file has a tensor \"", e.name,
              "\" that this arena lacks (strict)");
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

template <class Arena>
MIXPREC_COLD void load_safetensors_from(const byte_source& src, Arena& params, const safetensors_options& options,
                                        stream s) {
  require(params.finalized(), "load_safetensors: the parameters are not finalized");
  try {
    load_checked_safetensors(src, read_safetensors_header(src, /*keep_metadata=*/false), params, options, s);
  } catch (const std::bad_alloc&) {
    throw error("load_safetensors: out of memory");
  }
}

template <class T, class Arena>
void encode_role(byte_sink& sink, Arena& params, T* data, const std::map<std::string, std::string>& metadata,
                 stream s) {
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
MIXPREC_COLD void save_safetensors(const std::string& path, Arena& params, role which = role::model,
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
                    params.master_begin(), ", ", params.master_end(),
                    ") only (sharded, mixprec/dist): save the model "
                    "copy, or a sharded checkpoint");
    detail::encode_role(sink, params, params.master_data(), metadata, s);
  }
  file.commit();
}

// Loads weights from `path` into the arena (see the header comment).
template <class Arena>
MIXPREC_COLD void load_safetensors(const std::string& path, Arena& params, const safetensors_options& options = {},
                                   stream s = {}) {
  const detail::file_reader file(path, "load_safetensors");
  detail::load_safetensors_from(detail::file_source(file), params, options, s);
}

// The file's __metadata__ (string pairs), after checking its header.
inline std::map<std::string, std::string> safetensors_metadata(const std::string& path) {
  const detail::file_reader file(path, "safetensors_metadata");
  try {
    return detail::read_safetensors_header(detail::file_source(file)).metadata;
  } catch (const std::bad_alloc&) {
    throw error("safetensors_metadata: out of memory");
  }
}

}  // namespace mixprec
