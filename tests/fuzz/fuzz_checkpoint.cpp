// libFuzzer target for the checkpoint reader. Each input is treated as a
// checkpoint for a fixed arena and chain; the size and checksum fields are
// patched first, so the fuzzer reaches the structural checks behind them.
// Loading must either succeed or throw mixprec::error: never crash, read out
// of bounds, or trip UBSan. With MIXPREC_FUZZ_SEED_DIR set, initialisation
// writes a valid checkpoint there as a seed.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include <mixprec/mixprec.hpp>

namespace {

using arena = mixprec::parameters<mixprec::bfloat16, mixprec::half>;

auto make_chain() {
  return mixprec::chain(mixprec::dynamic_loss_scale{}, mixprec::clip_by_global_norm{1.0f},
                        mixprec::adamw(mixprec::adamw_options{}));
}

struct fixture {
  arena params;
  decltype(make_chain().init(std::declval<arena&>())) state;
  static fixture& get() {
    static fixture f;
    return f;
  }

 private:
  fixture() : params(make()), state(make_chain().init(params)) {}
  static arena make() {
    arena p;
    p.add("w", {3, 5});
    p.add("b", {5}, "no_decay");
    p.finalize();
    p.initialize_all(mixprec::init::normal{0.0, 1.0}, 1);
    return p;
  }
};

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  fixture& f = fixture::get();
  if (const char* dir = std::getenv("MIXPREC_FUZZ_SEED_DIR")) {
    const std::vector<std::uint8_t> seed = mixprec::serialize_checkpoint(make_chain(), f.params, f.state);
    const std::string path = std::string(dir) + "/seed.ckpt";
    if (std::FILE* out = std::fopen(path.c_str(), "wb")) {
      std::fwrite(seed.data(), 1, seed.size(), out);
      std::fclose(out);
    }
  }
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  fixture& f = fixture::get();
  std::vector<std::uint8_t> bytes(data, data + size);
  if (bytes.size() >= mixprec::detail::checkpoint_header + 4) {
    const std::uint64_t total = bytes.size();
    std::memcpy(bytes.data() + 16, &total, 8);
    const std::uint32_t crc = mixprec::detail::crc32(bytes.data(), bytes.size() - 4);
    std::memcpy(bytes.data() + bytes.size() - 4, &crc, 4);
  }
  try {
    mixprec::deserialize_checkpoint(bytes.data(), bytes.size(), make_chain(), f.params, f.state);
  } catch (const mixprec::error&) {}
  return 0;
}
