// Conversion of a whole range (convert_n): n floats to bfloat16 (4 bytes
// read, 2 written per element) rounded to nearest and stochastically, next
// to the copy bandwidth measured in the same run. The stochastic/nearest
// ratio is what the random bits cost (one Philox block per 8 elements).
#include <cstddef>

#include <benchmark/benchmark.h>

#include <mixprec/mixprec.hpp>

#include "bandwidth.hpp"

using namespace mixprec;

namespace {

struct random_fill {
  float* p;
  MIXPREC_HOST_DEVICE void operator()(std::size_t i) const {
    p[i] = uniform_from_bits(random_bits(3, 0, i)) * 2.0f - 1.0f;
  }
};

void convert_bf16(benchmark::State& state, bool stochastic) {
  const std::size_t n = static_cast<std::size_t>(state.range(0));
  detail::device_vector<float> src(n);
  detail::device_vector<bfloat16> dst(n);
  detail::for_each_index({}, n, random_fill{detail::raw(src)});
  std::uint64_t step = 0;
  auto run = [&] {
    if (stochastic) convert_n(detail::raw(src), n, detail::raw(dst), round_stochastic{7, step++});
    else convert_n(detail::raw(src), n, detail::raw(dst));
  };
  run();  // first touch of the output
  bench::run_timed(state, 6.0 * n, n, run);
}
void convert_bf16_nearest(benchmark::State& s) { convert_bf16(s, false); }
void convert_bf16_stochastic(benchmark::State& s) { convert_bf16(s, true); }

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  bench::register_ceilings();
  benchmark::RegisterBenchmark("convert/bf16_nearest", convert_bf16_nearest)
      ->Arg(100000000)->Unit(benchmark::kMillisecond)->UseManualTime();
  benchmark::RegisterBenchmark("convert/bf16_stochastic", convert_bf16_stochastic)
      ->Arg(100000000)->Unit(benchmark::kMillisecond)->UseManualTime();
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
