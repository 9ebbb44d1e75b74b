// .safetensors weights: a round trip restores every role bit for bit; a
// file of master weights loads into arenas of any format (rounded, fp8
// saturating); every malformed header (bad JSON, unknown dtype, byte ranges
// with gaps or overlaps or past the end, wrong sizes) and every mismatch
// with the arena (missing or extra tensors, other shapes) is a clear error
// that changes nothing. Interoperability with Python's safetensors is
// checked by tests/tools/safetensors_interop.cpp (label interop).
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include <mixprec/io/safetensors.hpp>
#include <mixprec/mixprec.hpp>

#include "../support/errors.hpp"
#include "../support/files.hpp"
#include "../support/synthetic.hpp"

using namespace mixprec;

namespace {

std::string temp_path(const char* name) { return std::string("/tmp/mixprec_test_") + name; }

template <class Arena>
void build(Arena& p) {
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

}  // namespace

TEST_SUITE("io") {

TEST_CASE("a safetensors round trip restores the model copy bit for bit and the master weights exactly") {
  parameters<bfloat16, half> a;
  build(a);
  a.from_host(role::master, synthetic(a.element_count(), 1));
  const std::string model_path = temp_path("model.safetensors"), master_path = temp_path("master.safetensors");
  save_safetensors(model_path, a, role::model, {{"format", "pt"}, {"epoch", "3"}});
  save_safetensors(master_path, a, role::master);
  CHECK(safetensors_metadata(model_path) == std::map<std::string, std::string>{{"epoch", "3"}, {"format", "pt"}});
  CHECK(safetensors_metadata(master_path).empty());

  parameters<bfloat16, half> b;  // fresh: any chain, any state
  build(b);
  load_safetensors(master_path, b);
  CHECK(b.to_host(role::master) == a.to_host(role::master));
  CHECK(b.to_host(role::model) == a.to_host(role::model));

  parameters<bfloat16, bfloat16, void> pure;
  build(pure);
  load_safetensors(model_path, pure);  // BF16 into a bfloat16 model: the same bits
  CHECK(pure.to_host(role::model) == a.to_host(role::model));
  load_safetensors(master_path, pure);  // F32 into a bfloat16 model: rounded to nearest even
  CHECK(pure.to_host(role::model) == a.to_host(role::model));

  parameters<fp8_e4m3, bfloat16> f8;
  build(f8);
  parameters<float> big;
  build(big);
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
  build(a);
  a.from_host(role::master, synthetic(a.element_count(), 4));
  const std::string path = temp_path("shard_master.safetensors");
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
  build(a);
  a.from_host(role::master, synthetic(a.element_count(), 3));
  const std::string path = temp_path("fit.safetensors");
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
    build(b);
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
  CHECK(test::contains(load(huge), "exceeds the 100 MiB limit"));
  CHECK(p.to_host(role::master) == std::vector<float>{1.0f, 2.0f});
}

}
