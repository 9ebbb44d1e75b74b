// libFuzzer target for the .safetensors reader. Each input is treated as a
// safetensors file and loaded into a fixed arena (not strictly, so that any
// tensor name the fuzzer finds is accepted): loading must either succeed or
// throw mixprec::error, never crash, read out of bounds or trip UBSan. With
// MIXPREC_FUZZ_SEED_DIR set, initialisation writes valid files there as
// seeds (the model copy and the master weights).
#include <cstdint>
#include <cstdlib>
#include <string>

#include <mixprec/io/safetensors.hpp>
#include <mixprec/mixprec.hpp>

namespace {

using arena = mixprec::parameters<mixprec::bfloat16, mixprec::half>;

arena& fixture() {
  static arena p = [] {
    arena a;
    a.add("w", {3, 5});
    a.add("b", {5});
    a.add("empty", {0, 2});
    a.finalize();
    a.initialize_all(mixprec::init::normal{0.0, 1.0}, 1);
    return a;
  }();
  return p;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  arena& p = fixture();
  if (const char* dir = std::getenv("MIXPREC_FUZZ_SEED_DIR")) {
    mixprec::save_safetensors(std::string(dir) + "/model.safetensors", p, mixprec::role::model, {{"k", "v"}});
    mixprec::save_safetensors(std::string(dir) + "/master.safetensors", p, mixprec::role::master);
  }
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  try {
    mixprec::detail::load_safetensors_from(mixprec::detail::memory_source(data, size), fixture(),
                                           mixprec::safetensors_options{false}, {});
  } catch (const mixprec::error&) {}
  return 0;
}
