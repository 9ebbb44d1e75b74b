// .safetensors weights: a round trip restores every role bit for bit; a
// file of master weights loads into arenas of any format (rounded, fp8
// saturating); every malformed header (bad JSON, unknown dtype, byte ranges
// with gaps or overlaps or past the end, wrong sizes) and every mismatch
// with the arena (missing or extra tensors, other shapes) is a clear error
// that changes nothing. Interoperability with Python's safetensors is
// checked by tests/tools/safetensors_interop.cpp (label interop).
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include <sys/resource.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <doctest/doctest.h>

#include <mixprec/io/safetensors.hpp>
#include <mixprec/mixprec.hpp>

#include "../support/errors.hpp"
#include "../support/files.hpp"
#include "../support/synthetic.hpp"

using namespace mixprec;

namespace {

std::string weights_temp_path(const char* name) { return std::string("/tmp/mixprec_test_") + name; }

template <class Arena>
void build_weights(Arena& p) {
  p.add("fc.weight", {4, 6});
  p.add("fc.bias", {6}, "no_decay");
  p.add("norm", {3});
  p.finalize();
}

std::vector<float> synthetic(std::size_t n, std::uint64_t seed, float scale = 3.0f) {
  std::vector<float> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = scale * test::unit_value(seed * 1000 + i);
  return v;
}

// A safetensors file from a JSON header text and a data buffer.
std::vector<std::uint8_t> file_of(const std::string& header, const std::vector<std::uint8_t>& data) {
  const std::uint64_t n = header.size();
  std::vector<std::uint8_t> out(8 + header.size() + data.size());
  std::memcpy(out.data(), &n, 8);
  std::memcpy(out.data() + 8, header.data(), header.size());
  if (!data.empty()) std::memcpy(out.data() + 8 + header.size(), data.data(), data.size());
  return out;
}

// A file made on the fly, byte by byte, without holding it: the 8-byte
// header length n, a header of `head`, then `fill` up to n bytes, then
// `data` bytes of zeros.
class generated_file final : public detail::byte_source {
 public:
  generated_file(std::string head, char fill, std::uint64_t n, std::uint64_t data)
      : head_(std::move(head)), fill_(fill), n_(n), data_(data) {}
  std::uint64_t size() const override { return 8 + n_ + data_; }
  void read_at(std::uint64_t offset, void* out, std::size_t k) const override {
    auto* o = static_cast<char*>(out);
    for (std::size_t i = 0; i < k; ++i) {
      const std::uint64_t at = offset + i;
      if (at < 8) o[i] = static_cast<char>((n_ >> (8 * at)) & 0xff);
      else if (at - 8 < head_.size()) o[i] = head_[at - 8];
      else if (at < 8 + n_) o[i] = fill_;
      else o[i] = 0;
    }
  }

 private:
  std::string head_;
  char fill_;
  std::uint64_t n_, data_;
};

#if defined(__SANITIZE_ADDRESS__)
constexpr bool under_asan = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
constexpr bool under_asan = true;
#else
constexpr bool under_asan = false;
#endif
#else
constexpr bool under_asan = false;
#endif

// What f() did in a child process allowed `memory_limit` bytes of address
// space beyond what it starts with (no limit under AddressSanitizer, which
// reserves terabytes): its error message (or "<no exception>"), its peak
// resident memory and its time.
struct child_run {
  std::string message;
  double peak_mib = 0, seconds = 0;
};
template <class F>
child_run in_child(std::uint64_t memory_limit, F&& f) {
  int fds[2];
  REQUIRE(::pipe(fds) == 0);
  const auto start = std::chrono::steady_clock::now();
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    ::close(fds[0]);
    if (!under_asan && memory_limit > 0) {
      unsigned long pages = 0;
      if (std::FILE* statm = std::fopen("/proc/self/statm", "r")) {
        if (std::fscanf(statm, "%lu", &pages) != 1) pages = 0;
        std::fclose(statm);
      }
      const rlim_t total = static_cast<rlim_t>(pages) * static_cast<rlim_t>(::sysconf(_SC_PAGESIZE)) + memory_limit;
      rlimit limit{total, total};
      ::setrlimit(RLIMIT_AS, &limit);
    }
    const std::string msg = test::error_message(f);
    const ssize_t wrote = ::write(fds[1], msg.data(), msg.size());
    ::_exit(wrote == static_cast<ssize_t>(msg.size()) ? 0 : 1);
  }
  ::close(fds[1]);
  child_run r;
  char buf[4096];
  ssize_t got;
  while ((got = ::read(fds[0], buf, sizeof buf)) > 0) r.message.append(buf, static_cast<std::size_t>(got));
  ::close(fds[0]);
  int status = 0;
  rusage usage{};
  ::wait4(pid, &status, 0, &usage);
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  r.peak_mib = static_cast<double>(usage.ru_maxrss) / 1024.0;  // ru_maxrss is in KiB
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    r.message +=
        WIFSIGNALED(status) ? " <child killed by signal " + std::to_string(WTERMSIG(status)) + ">" : " <child failed>";
  return r;
}

}  // namespace

TEST_SUITE("io") {
  TEST_CASE("a safetensors round trip restores the model copy bit for bit and the master weights exactly") {
    parameters<bfloat16, half> a;
    build_weights(a);
    a.from_host(role::master, synthetic(a.element_count(), 1));
    const std::string model_path = weights_temp_path("model.safetensors"),
                      master_path = weights_temp_path("master.safetensors");
    save_safetensors(model_path, a, role::model, {{"format", "pt"}, {"epoch", "3"}});
    save_safetensors(master_path, a, role::master);
    CHECK(safetensors_metadata(model_path) == std::map<std::string, std::string>{{"epoch", "3"}, {"format", "pt"}});
    CHECK(safetensors_metadata(master_path).empty());

    parameters<bfloat16, half> b;  // fresh: any chain, any state
    build_weights(b);
    load_safetensors(master_path, b);
    CHECK(b.to_host(role::master) == a.to_host(role::master));
    CHECK(b.to_host(role::model) == a.to_host(role::model));

    parameters<bfloat16, bfloat16, void> pure;
    build_weights(pure);
    load_safetensors(model_path, pure);  // BF16 into a bfloat16 model: the same bits
    CHECK(pure.to_host(role::model) == a.to_host(role::model));
    load_safetensors(master_path, pure);  // F32 into a bfloat16 model: rounded to nearest even
    CHECK(pure.to_host(role::model) == a.to_host(role::model));

    parameters<fp8_e4m3, bfloat16> f8;
    build_weights(f8);
    parameters<float> big;
    build_weights(big);
    std::vector<float> wide = synthetic(big.element_count(), 2, 1000.0f);
    big.from_host(role::master, wide);
    save_safetensors(master_path, big, role::master);
    load_safetensors(master_path, f8);
    const std::vector<float> m = f8.to_host(role::model);
    for (std::size_t i = 0; i < m.size(); ++i) {
      CHECK(std::fabs(m[i]) <= 448.0f);  // saturated, never NaN
      CHECK(m[i] == to_float(convert<fp8_e4m3, overflow_saturate>(wide[i])));
    }
    std::remove(model_path.c_str());
    std::remove(master_path.c_str());
  }

  TEST_CASE("an arena that keeps a shard of the master weights loads its part of them and the whole model copy") {
    parameters<bfloat16, half> a;
    build_weights(a);
    a.from_host(role::master, synthetic(a.element_count(), 4));
    const std::string path = weights_temp_path("shard_master.safetensors");
    save_safetensors(path, a, role::master);
    // fc.weight is elements [0, 24), fc.bias [32, 38), norm [48, 51): keep [16, 40).
    parameters<bfloat16, half> b;
    b.add("fc.weight", {4, 6});
    b.add("fc.bias", {6}, "no_decay");
    b.add("norm", {3});
    b.finalize(element_range{16, 40});
    CHECK(b.master_sharded());
    CHECK(b.owns_master(1));
    CHECK_FALSE(b.owns_master(0));
    load_safetensors(path, b);
    CHECK(b.to_host(role::model) == a.to_host(role::model));
    CHECK(b.to_host(role::master, "fc.bias") == a.to_host(role::master, "fc.bias"));
    std::vector<float> kept(24), all(a.padded_size());
    detail::copy_to_host(b.master_data(), kept.data(), kept.size());
    detail::copy_to_host(a.master_data(), all.data(), all.size());
    CHECK(kept == std::vector<float>(all.begin() + 16, all.begin() + 40));
    CHECK(test::contains(test::error_message([&] { (void)b.to_host(role::master, "fc.weight"); }),
                         "are not kept here (sharded master weights)"));
    CHECK(test::contains(test::error_message([&] { save_safetensors(path, b, role::master); }),
                         "keeps the master weights of elements [16, 40) only"));
    std::remove(path.c_str());
  }

  TEST_CASE("safetensors files that do not fit the arena are refused and change nothing") {
    parameters<bfloat16, bfloat16> a;
    build_weights(a);
    a.from_host(role::master, synthetic(a.element_count(), 3));
    const std::string path = weights_temp_path("fit.safetensors");
    save_safetensors(path, a, role::master);
    auto refused = [&](auto& other, const char* expected) {
      const std::vector<float> before = other.to_host(role::model);
      const std::string msg = test::error_message([&] { load_safetensors(path, other); });
      INFO(msg);
      CHECK(test::contains(msg, expected));
      CHECK(other.to_host(role::model) == before);
    };
    SUBCASE("a parameter the file lacks") {
      parameters<bfloat16, bfloat16> b;
      build_weights(b);
      parameters<bfloat16, bfloat16> c;
      c.add("fc.weight", {4, 6});
      c.add("extra", {2});
      c.finalize();
      refused(c, "the file has no tensor \"extra\"");
    }
    SUBCASE("a tensor the arena lacks") {
      parameters<bfloat16, bfloat16> c;
      c.add("fc.weight", {4, 6});
      c.finalize();
      refused(c, "the file has a tensor \"fc.bias\" that this arena lacks");
      load_safetensors(path, c, safetensors_options{false});  // not strict: the extra tensors are ignored
      CHECK(c.to_host(role::master, "fc.weight") == a.to_host(role::master, "fc.weight"));
    }
    SUBCASE("another shape") {
      parameters<bfloat16, bfloat16> c;
      c.add("fc.weight", {6, 4});
      c.add("fc.bias", {6});
      c.add("norm", {3});
      c.finalize();
      refused(c, "tensor \"fc.weight\" has shape [4, 6] in the file but [6, 4] in this arena");
    }
    std::remove(path.c_str());
  }

  TEST_CASE("malformed safetensors headers are clear errors") {
    parameters<float> p;
    p.add("w", {2});
    p.finalize();
    p.from_host(role::master, {1.0f, 2.0f});
    std::vector<std::uint8_t> data(8);  // the two floats the arena holds: a good load changes nothing
    const float two[2] = {1.0f, 2.0f};
    std::memcpy(data.data(), two, 8);
    auto load = [&](const std::vector<std::uint8_t>& bytes) {
      return test::error_message(
          [&] { detail::load_safetensors_from(detail::memory_source(bytes.data(), bytes.size()), p, {}, {}); });
    };
    const std::string good = R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
    CHECK(load(file_of(good, data)) == "<no exception>");
    CHECK(test::contains(load({1, 2, 3}), "shorter than its 8-byte header length"));
    CHECK(test::contains(load(file_of(R"({"w":)", data)), "not valid JSON"));
    CHECK(test::contains(load(file_of("[1, 2]", data)), "not a JSON object"));
    CHECK(test::contains(load(file_of(R"({"w":{"dtype":"I64","shape":[1],"data_offsets":[0,8]}})", data)),
                         "has dtype I64, which mixprec does not store"));
    CHECK(test::contains(load(file_of(R"({"w":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", data)),
                         "not a non-negative integer"));
    CHECK(test::contains(load(file_of(R"({"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", data)),
                         "needs 12 bytes but its data_offsets span 8"));
    CHECK(test::contains(load(file_of(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,16]}})", data)),
                         "outside the 8-byte data buffer"));
    CHECK(test::contains(load(file_of(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", data)),
                         "starts at byte 4 of the data buffer where 0 was expected"));
    CHECK(test::contains(load(file_of(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", data)),
                         "4 bytes that no tensor covers"));
    CHECK(test::contains(load(file_of(R"({"__metadata__":{"a":1}})", data)), "is not a string"));
    std::vector<std::uint8_t> huge(8, 0xff);
    CHECK(test::contains(load(huge), "exceeds the limit of 100000000 bytes"));
    // What the event-driven reader must still see as JSON sees it.
    CHECK(test::contains(load(file_of(good + " x", data)), "not valid JSON"));
    CHECK(test::contains(load(file_of("{\"w\":{\"dtype\":\"F\xff\"}}", data)), "not valid JSON"));  // not UTF-8
    CHECK(test::contains(load(file_of("7", data)), "not a JSON object"));
    CHECK(test::contains(load(file_of(R"({"w":{"dtype":32,"shape":[2],"data_offsets":[0,8]}})", data)),
                         "has no dtype string"));
    CHECK(test::contains(load(file_of(R"({"w":{"dtype":"F32","shape":[[2]],"data_offsets":[0,8]}})", data)),
                         "has an extent that is not a non-negative integer"));
    CHECK(
        test::contains(load(file_of(R"({"w":{"dtype":"F32","shape":[1,1,1,1,1,1,1,1,2],"data_offsets":[0,8]}})", data)),
                       "has rank above 8"));
    CHECK(test::contains(load(file_of(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,4,8]}})", data)),
                         "has no [begin, end] data_offsets"));
    CHECK(test::contains(load(file_of(R"({"w":{"dtype":"F32","shape":[2]}})", data)),
                         "has no [begin, end] data_offsets"));
    CHECK(test::contains(load(file_of(R"({"__metadata__":{"a":{"b":"c"}},"w":{}})", data)), "is not a string"));
    // Keys a header does not use are skipped: scalars, arrays and objects of
    // scalars; deeper nesting is refused.
    CHECK(load(file_of(R"({"w":{"x":[1,"a",null],"y":{"z":2.5},"dtype":"F32","shape":[2],"data_offsets":[0,8]}})",
                       data)) == "<no exception>");
    CHECK(test::contains(load(file_of(R"({"w":{"x":[{"a":1}],"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", data)),
                         "nests deeper than a header's 3 levels"));
    // A tensor named twice: its last entry counts (a repeated JSON key).
    CHECK(load(file_of(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                       R"("w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})",
                       data)) == "<no exception>");
    CHECK(test::contains(load(file_of(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                                      R"("w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})",
                                      data)),
                         "4 bytes that no tensor covers"));
    CHECK(p.to_host(role::master) == std::vector<float>{1.0f, 2.0f});
  }

  TEST_CASE("a safetensors header is parsed within memory proportional to it and is at most 10^8 bytes long") {
    parameters<float> p;
    p.add("w", {2});
    p.finalize();
    p.from_host(role::master, {1.0f, 2.0f});
    auto load = [&](const detail::byte_source& src) {
      return test::error_message([&] { detail::load_safetensors_from(src, p, {}, {}); });
    };
    const std::string tensor = R"("w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]})";
    const std::uint64_t limit = 100000000;  // Python's safetensors: MAX_HEADER_SIZE

    // A baseline: this process's own size as a child sees it.
    const child_run idle = in_child(0, [] {});
    SUBCASE("a header of 10^8 bytes of nested arrays is refused at once, with little memory") {
      // Nested where a tensor is expected, and under a key a tensor may carry.
      const generated_file as_tensor("{\"a\":", '[', limit, 0), under_key("{\"a\":{\"x\":", '[', limit, 0);
      for (const auto& [file, expected] :
           {std::pair{&as_tensor, "safetensors tensor \"a\" is not a JSON object"},
            std::pair{&under_key, "safetensors header nests deeper than a header's 3 levels"}}) {
        const child_run r =
            in_child(std::uint64_t{1} << 30, [&, file = file] { detail::load_safetensors_from(*file, p, {}, {}); });
        MESSAGE("nested arrays, 10^8-byte header: " << r.seconds << " s, peak RSS " << r.peak_mib
                                                    << " MiB (an idle child: " << idle.peak_mib
                                                    << " MiB): " << r.message);
        CHECK(test::contains(r.message, expected));
        CHECK(r.peak_mib - idle.peak_mib < (under_asan ? 256.0 : 32.0));
        CHECK(r.seconds < 10.0);
      }
    }
    SUBCASE("a header over 100,000,000 bytes is refused; one of exactly 100,000,000 loads") {
      const generated_file over("{" + tensor + "}", ' ', limit + 1, 8);
      CHECK(test::contains(load(over), "safetensors header length 100000001 exceeds the limit of 100000000 bytes"));
      CHECK(p.to_host(role::master) == std::vector<float>{1.0f, 2.0f});
      const generated_file at_limit("{" + tensor + "}", ' ', limit, 8);
      CHECK(load(at_limit) == "<no exception>");
      CHECK(p.to_host(role::master) == std::vector<float>{0.0f, 0.0f});
    }
    SUBCASE("3,000,000 metadata entries: a load keeps none of them; reading them all takes memory in proportion") {
      std::string header = "{\"__metadata__\":{";
      const std::size_t entries = 3000000;
      char entry[40];
      for (std::size_t k = 0; k < entries; ++k) {
        std::snprintf(entry, sizeof entry, "%s\"k%07zu\":\"v%07zu\"", k ? "," : "", k, k);
        header += entry;
      }
      header += "}," + tensor + "}";
      header.append((8 - header.size() % 8) % 8, ' ');
      std::vector<std::uint8_t> bytes = file_of(header, std::vector<std::uint8_t>(8, 0));
      header.clear();
      header.shrink_to_fit();
      const detail::memory_source src(bytes.data(), bytes.size());
      const child_run idle_with_file = in_child(0, [] {});  // the file is resident in every child
      const child_run loaded = in_child(std::uint64_t{2} << 30, [&] { detail::load_safetensors_from(src, p, {}, {}); });
      MESSAGE("3e6 metadata entries (" << bytes.size() / 1e6 << " MB), load: " << loaded.seconds << " s, peak RSS "
                                       << loaded.peak_mib << " MiB (idle child " << idle_with_file.peak_mib
                                       << " MiB): " << loaded.message);
      CHECK(loaded.message == "<no exception>");
      CHECK(loaded.peak_mib - idle_with_file.peak_mib < (under_asan ? 512.0 : 32.0));
      std::size_t read = 0;
      const child_run all = in_child(std::uint64_t{2} << 30, [&] {
        read = detail::read_safetensors_header(src).metadata.size();
        if (read != entries) throw error("read " + std::to_string(read) + " metadata entries");
      });
      MESSAGE("3e6 metadata entries, all read: " << all.seconds << " s, peak RSS " << all.peak_mib
                                                 << " MiB: " << all.message);
      // Either all of them, within the budget, or a clean refusal.
      CHECK((all.message == "<no exception>" || test::contains(all.message, "would take more than")));
      CHECK(all.peak_mib - idle_with_file.peak_mib < 16.0 * bytes.size() / 1048576.0 + 64.0);
    }
  }
}
