// Binary records for the file formats: one encoder that writes to memory or
// to a durable file, one decoder that reads from memory or a file, both
// streaming device memory through a fixed host buffer (so saving or loading
// takes a small constant of extra host memory, not a copy of the file), and
// a running CRC-32 (IEEE 802.3) over every byte.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <type_traits>
#include <vector>

#include <mixprec/core/error.hpp>
#include <mixprec/core/stream.hpp>
#include <mixprec/detail/memory.hpp>
#include <mixprec/io/file.hpp>

namespace mixprec::detail {

// CRC-32 (reflected, polynomial 0xEDB88320), slicing by 8 bytes at a time.
class crc32_state {
 public:
  void update(const void* data, std::size_t n) {
    const auto& t = tables();
    const auto* p = static_cast<const std::uint8_t*>(data);
    std::uint32_t c = c_;
    while (n >= 8) {
      std::uint32_t lo, hi;
      std::memcpy(&lo, p, 4);
      std::memcpy(&hi, p + 4, 4);
      lo ^= c;
      c = t[7][lo & 0xff] ^ t[6][(lo >> 8) & 0xff] ^ t[5][(lo >> 16) & 0xff] ^ t[4][lo >> 24] ^ t[3][hi & 0xff] ^
          t[2][(hi >> 8) & 0xff] ^ t[1][(hi >> 16) & 0xff] ^ t[0][hi >> 24];
      p += 8;
      n -= 8;
    }
    for (; n > 0; --n, ++p) c = t[0][(c ^ *p) & 0xff] ^ (c >> 8);
    c_ = c;
  }
  std::uint32_t value() const { return c_ ^ 0xFFFFFFFFu; }

 private:
  using table_set = std::array<std::array<std::uint32_t, 256>, 8>;
  static const table_set& tables() {
    static const table_set t = make_tables();
    return t;
  }
  // Not constexpr, on purpose: g++ tries to evaluate a constant-evaluable
  // initializer of a static at compile time, and its evaluation of these
  // 2,048 entries allocated 14 MB in every translation unit that includes
  // this header (the first collection of g++'s heap comes after parsing).
  static table_set make_tables() {
    table_set s{};
    for (std::uint32_t i = 0; i < 256; ++i) {
      std::uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1u) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
      s[0][i] = c;
    }
    for (std::uint32_t i = 0; i < 256; ++i)
      for (int k = 1; k < 8; ++k) s[k][i] = (s[k - 1][i] >> 8) ^ s[0][s[k - 1][i] & 0xff];
    return s;
  }
  std::uint32_t c_ = 0xFFFFFFFFu;
};

inline std::uint32_t crc32(const void* data, std::size_t n) {
  crc32_state c;
  c.update(data, n);
  return c.value();
}

// Bytes moved between device memory and a file per copy: the host memory a
// save or load needs beyond its metadata.
inline constexpr std::size_t stream_chunk_bytes = std::size_t{4} << 20;

class byte_sink {
 public:
  virtual ~byte_sink() = default;
  virtual void write(const void* data, std::size_t n) = 0;
};

class memory_sink final : public byte_sink {
 public:
  void write(const void* data, std::size_t n) override {
    const auto* p = static_cast<const std::uint8_t*>(data);
    bytes_.insert(bytes_.end(), p, p + n);
  }
  std::vector<std::uint8_t>& bytes() { return bytes_; }

 private:
  std::vector<std::uint8_t> bytes_;
};

class file_sink final : public byte_sink {
 public:
  explicit file_sink(atomic_file_writer& f) : f_(f) {}
  void write(const void* data, std::size_t n) override { f_.write(data, n); }

 private:
  atomic_file_writer& f_;
};

class byte_source {
 public:
  virtual ~byte_source() = default;
  virtual std::uint64_t size() const = 0;
  virtual void read_at(std::uint64_t offset, void* out, std::size_t n) const = 0;
};

class memory_source final : public byte_source {
 public:
  memory_source(const std::uint8_t* data, std::size_t size) : data_(data), size_(size) {}
  std::uint64_t size() const override { return size_; }
  void read_at(std::uint64_t offset, void* out, std::size_t n) const override {
    if (n > 0) std::memcpy(out, data_ + offset, n);
  }

 private:
  const std::uint8_t* data_;
  std::size_t size_;
};

class file_source final : public byte_source {
 public:
  explicit file_source(const file_reader& f) : f_(f) {}
  std::uint64_t size() const override { return f_.size(); }
  void read_at(std::uint64_t offset, void* out, std::size_t n) const override { f_.read_at(offset, out, n); }

 private:
  const file_reader& f_;
};

// Writes little-endian records to a sink, with a running CRC.
class record_writer {
 public:
  explicit record_writer(byte_sink& sink) : sink_(sink) {}
  template <class T>
  void put(const T& v) {
    static_assert(std::is_trivially_copyable_v<T>, "record_writer: trivially copyable values only");
    put_bytes(&v, sizeof(T));
  }
  void put_string(const std::string& s) {
    put(static_cast<std::uint32_t>(s.size()));
    put_bytes(s.data(), s.size());
  }
  void put_bytes(const void* data, std::size_t n) {
    crc_.update(data, n);
    sink_.write(data, n);
    written_ += n;
  }
  // n bytes of device memory, through a bounded host buffer.
  void put_device(const void* device, std::size_t n, stream s = {}) {
    if constexpr (current_backend != backend::cuda) {
      synchronize(s);
      put_bytes(device, n);  // "device" memory is host memory here
      return;
    }
    std::vector<std::uint8_t> chunk(std::min(n, stream_chunk_bytes));
    const auto* src = static_cast<const std::uint8_t*>(device);
    for (std::size_t at = 0; at < n; at += chunk.size()) {
      const std::size_t k = std::min(chunk.size(), n - at);
      copy_to_host(src + at, chunk.data(), k, s);
      put_bytes(chunk.data(), k);
    }
  }
  // The CRC of everything written so far, appended (not itself covered).
  void put_crc() {
    const std::uint32_t c = crc_.value();
    sink_.write(&c, sizeof c);
    written_ += sizeof c;
  }
  std::uint64_t written() const { return written_; }

 private:
  byte_sink& sink_;
  crc32_state crc_;
  std::uint64_t written_ = 0;
};

// Reads records from a source in order, with a running CRC; `kind` names
// the format in messages ("checkpoint", "safetensors file").
class record_reader {
 public:
  record_reader(const byte_source& src, const char* kind, std::uint64_t end) : src_(src), kind_(kind), end_(end) {}

  template <class T>
  T get(const char* what) {
    T v;
    get_bytes(&v, sizeof(T), what);
    return v;
  }
  std::string get_string(const char* what, std::uint32_t max_length = 65536) {
    const auto n = get<std::uint32_t>(what);
    require(n <= max_length, kind_, ": ", what, " is ", n, " bytes long (corrupted length)");
    std::string s(n, '\0');
    get_bytes(s.data(), n, what);
    return s;
  }
  void get_bytes(void* out, std::size_t n, const char* what) {
    need(n, what);
    src_.read_at(pos_, out, n);
    crc_.update(out, n);
    pos_ += n;
  }
  // Passes over n bytes, checksumming them.
  void skip(std::uint64_t n, const char* what) {
    need(n, what);
    std::vector<std::uint8_t> chunk(static_cast<std::size_t>(std::min<std::uint64_t>(n, stream_chunk_bytes)));
    for (std::uint64_t at = 0; at < n; at += chunk.size()) {
      const std::size_t k = static_cast<std::size_t>(std::min<std::uint64_t>(chunk.size(), n - at));
      src_.read_at(pos_, chunk.data(), k);
      crc_.update(chunk.data(), k);
      pos_ += k;
    }
  }
  std::uint64_t position() const { return pos_; }
  std::uint64_t remaining() const { return end_ - pos_; }
  std::uint32_t crc() const { return crc_.value(); }

 private:
  void need(std::uint64_t n, const char* what) const {
    require(n <= end_ - pos_, kind_, " is truncated: ", what, " needs ", n, " bytes at offset ", pos_, " but only ",
            end_ - pos_, " remain");
  }
  const byte_source& src_;
  const char* kind_;
  std::uint64_t end_, pos_ = 0;
  crc32_state crc_;
};

// Copies n bytes at `offset` of a checked source into device memory,
// through a bounded host buffer.
inline void source_to_device(const byte_source& src, std::uint64_t offset, void* device, std::size_t n, stream s = {}) {
  if constexpr (current_backend != backend::cuda) {
    synchronize(s);
    src.read_at(offset, device, n);  // "device" memory is host memory here
    return;
  }
  std::vector<std::uint8_t> chunk(std::min(n, stream_chunk_bytes));
  auto* dst = static_cast<std::uint8_t*>(device);
  for (std::size_t at = 0; at < n; at += chunk.size()) {
    const std::size_t k = std::min(chunk.size(), n - at);
    src.read_at(offset + at, chunk.data(), k);
    write_to_device(chunk.data(), dst + at, k, s);
  }
}

}  // namespace mixprec::detail
