// Conversion of a whole range (convert_n), next to the copy bandwidth
// measured in the same run:
// - n floats to bfloat16 (4 bytes read, 2 written per element) rounded to
//   nearest and stochastically; the stochastic/nearest ratio is what the
//   random bits cost (one Philox block per 8 elements);
// - n floats to half and n halves to float (6 bytes per element), by
//   convert_n (the CPU's F16C instructions when the build targets them) and
//   by the portable per-element routine (convert/half_*_portable), so one
//   run gives their ratio.
#include <cstddef>
#include <type_traits>
#include <utility>

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
  detail::device_buffer<float> src(n);
  detail::device_buffer<bfloat16> dst(n);
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

// From -> To (float and half, one way or the other), by convert_n or by the
// portable per-element routine.
template <class From, class To>
void half_convert(benchmark::State& state, bool portable) {
  const std::size_t n = static_cast<std::size_t>(state.range(0));
  detail::device_buffer<float> values(n);
  detail::device_buffer<half> halves(n);
  detail::for_each_index({}, n, random_fill{detail::raw(values)});
  convert_n(detail::raw(values), n, detail::raw(halves));
  From* src;
  To* dst;
  if constexpr (std::is_same_v<From, float>) src = detail::raw(values), dst = detail::raw(halves);
  else src = detail::raw(halves), dst = detail::raw(values);
  auto run = [&] {
    if (portable)
      detail::for_each_index({}, n,
                             detail::convert_body<To, From, round_nearest_even, overflow_to_infinity>{src, dst, {}, 0});
    else convert_n(src, n, dst);
  };
  run();
  bench::run_timed(state, 6.0 * n, n, run);
}
void convert_half_nearest(benchmark::State& s) { half_convert<float, half>(s, false); }
void convert_half_nearest_portable(benchmark::State& s) { half_convert<float, half>(s, true); }
void convert_half_widen(benchmark::State& s) { half_convert<half, float>(s, false); }
void convert_half_widen_portable(benchmark::State& s) { half_convert<half, float>(s, true); }

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  bench::register_ceilings();
  benchmark::RegisterBenchmark("convert/bf16_nearest", convert_bf16_nearest)
      ->Arg(100000000)
      ->Unit(benchmark::kMillisecond)
      ->UseManualTime();
  benchmark::RegisterBenchmark("convert/bf16_stochastic", convert_bf16_stochastic)
      ->Arg(100000000)
      ->Unit(benchmark::kMillisecond)
      ->UseManualTime();
  for (auto [name, f] : {std::pair{"convert/half_nearest", convert_half_nearest},
                         std::pair{"convert/half_nearest_portable", convert_half_nearest_portable},
                         std::pair{"convert/half_widen", convert_half_widen},
                         std::pair{"convert/half_widen_portable", convert_half_widen_portable}})
    benchmark::RegisterBenchmark(name, f)->Arg(100000000)->Unit(benchmark::kMillisecond)->UseManualTime();
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
