// The C++ half of the safetensors interoperability check (CTest label
// interop; the Python half is scripts/safetensors_interop.py):
//   safetensors_interop write DIR   writes mixprec_<DTYPE>.safetensors, one per dtype
//   safetensors_interop read DIR    loads DIR/python.safetensors and checks every value
//   safetensors_interop limit DIR   loads DIR/header_<N>.safetensors (the script's limit files):
//                                   the header of 100,000,000 bytes, and refuses 100,000,001 as Python does
// Values follow the script's formula, rounded by mixprec's converters.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include <mixprec/io/safetensors.hpp>
#include <mixprec/mixprec.hpp>

namespace {

struct tensor_spec {
  const char* name;
  mixprec::shape shape;
  int k;
  const char* python_dtype;  // the dtype the Python side writes this tensor in
};
const tensor_spec specs[] = {{"layer.weight", {3, 5}, 0, "F32"},
                             {"layer.bias", {5}, 1, "F16"},
                             {"block.scale", {2, 3, 4}, 2, "BF16"},
                             {"empty", {0, 3}, 3, "F8_E4M3"},
                             {"scalar", {1}, 4, "F8_E5M2"}};

std::vector<float> values(int k, std::size_t n) {
  std::vector<float> v(n);
  for (std::size_t i = 0; i < n; ++i)
    v[i] =
        static_cast<float>(static_cast<double>((static_cast<long long>(i) * 7919 + k * 104729) % 2001 - 1000) / 64.0);
  return v;
}

template <class Arena>
void build(Arena& p) {
  for (const tensor_spec& t : specs) p.add(t.name, t.shape);
  p.finalize();
}

int failures = 0;
void expect(bool ok, const std::string& what) {
  if (!ok) {
    std::printf("FAIL %s\n", what.c_str());
    ++failures;
  }
}

template <class Model, class Grad>
void write_one(const std::string& dir) {
  mixprec::parameters<Model, Grad> p;
  build(p);
  for (const tensor_spec& t : specs) p.from_host(mixprec::role::master, t.name, values(t.k, t.shape.size()));
  const std::string path = dir + "/mixprec_" + mixprec::detail::safetensors_dtype<Model>() + ".safetensors";
  mixprec::save_safetensors(path, p, mixprec::role::model, {{"producer", "mixprec"}});
  std::printf("wrote %s\n", path.c_str());
}

// The value of tensor t rounded to the dtype the Python side stored it in.
float rounded(const tensor_spec& t, float v) {
  float out = 0.0f;
  mixprec::detail::with_safetensors_dtype(t.python_dtype, [&](auto x) {
    using T = decltype(x);
    out = mixprec::to_float(mixprec::convert<T>(v));
  });
  return out;
}

void read_all(const std::string& dir) {
  const std::string path = dir + "/python.safetensors";
  expect(mixprec::safetensors_metadata(path).at("producer") == "python", "metadata");
  // Into fp32 master weights: each tensor widened exactly from its dtype.
  mixprec::parameters<mixprec::bfloat16, mixprec::bfloat16> p;
  build(p);
  mixprec::load_safetensors(path, p);
  for (const tensor_spec& t : specs) {
    const std::vector<float> want = values(t.k, t.shape.size());
    const std::vector<float> master = p.to_host(mixprec::role::master, t.name);
    const std::vector<float> model = p.to_host(mixprec::role::model, t.name);
    for (std::size_t i = 0; i < want.size(); ++i) {
      expect(master[i] == rounded(t, want[i]), std::string(t.name) + " master " + std::to_string(i));
      expect(model[i] == mixprec::to_float(mixprec::convert<mixprec::bfloat16>(master[i])),
             std::string(t.name) + " model " + std::to_string(i));
    }
  }
  // Into a pure bfloat16 model: the BF16 tensor bit for bit, the F32 one rounded.
  mixprec::parameters<mixprec::bfloat16, mixprec::bfloat16, void> q;
  q.add("block.scale", {2, 3, 4});
  q.add("layer.weight", {3, 5});
  q.finalize();
  mixprec::load_safetensors(path, q, mixprec::safetensors_options{false});
  const std::vector<float> bf = q.to_host(mixprec::role::model, "block.scale");
  const std::vector<float> f32 = q.to_host(mixprec::role::model, "layer.weight");
  const std::vector<float> want_bf = values(2, 24), want_f32 = values(0, 15);
  for (std::size_t i = 0; i < bf.size(); ++i)
    expect(bf[i] == mixprec::to_float(mixprec::convert<mixprec::bfloat16>(want_bf[i])),
           "pure bf16 " + std::to_string(i));
  for (std::size_t i = 0; i < f32.size(); ++i)
    expect(f32[i] == mixprec::to_float(mixprec::convert<mixprec::bfloat16>(want_f32[i])),
           "pure f32 " + std::to_string(i));
  std::printf("read %s: %s\n", path.c_str(), failures ? "MISMATCHES" : "every value matches");
}

// The script's header_<N>.safetensors files, then removes them (200 MB).
void read_limit(const std::string& dir) {
  for (std::uint64_t n : {mixprec::detail::safetensors_max_header, mixprec::detail::safetensors_max_header + 1}) {
    const std::string path = dir + "/header_" + std::to_string(n) + ".safetensors";
    mixprec::parameters<float> p;
    p.add("w", {2});
    p.finalize();
    std::string outcome;
    try {
      mixprec::load_safetensors(path, p);
      const std::vector<float> w = p.to_host(mixprec::role::master);
      expect(n == mixprec::detail::safetensors_max_header && w == std::vector<float>{1.5f, -2.0f}, path + ": loaded");
      outcome = "reads [" + std::to_string(w[0]) + ", " + std::to_string(w[1]) + "]";
    } catch (const mixprec::error& e) {
      expect(n > mixprec::detail::safetensors_max_header, path + ": refused");
      outcome = std::string("refuses it: ") + e.what();
    }
    std::printf("mixprec, header of %llu bytes: %s\n", static_cast<unsigned long long>(n), outcome.c_str());
    std::remove(path.c_str());
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: safetensors_interop write|read|limit DIR\n");
    return 2;
  }
  const std::string mode = argv[1], dir = argv[2];
  try {
    if (mode == "write") {
      write_one<float, float>(dir);
      write_one<mixprec::half, mixprec::half>(dir);
      write_one<mixprec::bfloat16, mixprec::bfloat16>(dir);
      write_one<mixprec::fp8_e4m3, mixprec::bfloat16>(dir);
      write_one<mixprec::fp8_e5m2, mixprec::bfloat16>(dir);
    } else if (mode == "read") {
      read_all(dir);
    } else if (mode == "limit") {
      read_limit(dir);
    } else {
      std::fprintf(stderr, "usage: safetensors_interop write|read|limit DIR\n");
      return 2;
    }
  } catch (const std::exception& e) {
    std::printf("FAIL %s\n", e.what());
    return 1;
  }
  return failures == 0 ? 0 : 1;
}
