// One pass over the arena: the sum of squares of n bfloat16 values (2 bytes
// read per element) into a device scalar, against the copy and triad
// bandwidth measured in the same run. Also the per-segment variant over an
// arena of many parameters.
#include <random>
#include <vector>

#include <benchmark/benchmark.h>

#include <mixprec/mixprec.hpp>

#include "bandwidth.hpp"

using namespace mixprec;

namespace {

struct random_fill {
  bfloat16* p;
  MIXPREC_HOST_DEVICE void operator()(std::size_t i) const {
    p[i] = convert<bfloat16>(uniform_from_bits(random_bits(1, 0, i)) * 2.0f - 1.0f);
  }
};

void sum_of_squares_bf16(benchmark::State& state) {
  const std::size_t n = static_cast<std::size_t>(state.range(0));
  detail::device_vector<bfloat16> data(n);
  detail::for_each_index({}, n, random_fill{detail::raw(data)});
  workspace ws;
  device_scalar<double> out;
  const tensor_view<const bfloat16> view(detail::raw(data), n);
  sum_of_squares(view, out, ws);  // warm up, size the workspace
  bench::run_timed(state, 2.0 * n, n, [&] { sum_of_squares(view, out, ws); });
  benchmark::DoNotOptimize(out.get());
}

void segment_norms_bf16(benchmark::State& state) {
  // 1000 parameters of mixed sizes adding up to about n elements.
  const std::size_t n = static_cast<std::size_t>(state.range(0));
  parameters<bfloat16> p;
  std::mt19937 gen(3);
  std::size_t total = 0;
  for (int k = 0; total < n; ++k) {
    const std::size_t size = std::min<std::size_t>(n - total, 1 + gen() % (2 * n / 1000));
    p.add("p" + std::to_string(k), {size});
    total += size;
  }
  p.finalize();
  detail::for_each_index({}, p.padded_size(), random_fill{p.grad_data()});
  workspace ws;
  detail::device_vector<double> norms(p.count());
  segment_l2_norms(p.layout(), static_cast<const bfloat16*>(p.grad_data()), detail::raw(norms), ws);
  bench::run_timed(state, 2.0 * total, total, [&] {
    segment_l2_norms(p.layout(), static_cast<const bfloat16*>(p.grad_data()), detail::raw(norms), ws);
  });
  state.counters["parameters"] = static_cast<double>(p.count());
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  bench::register_ceilings();
  benchmark::RegisterBenchmark("sum_of_squares/bf16", sum_of_squares_bf16)
      ->Arg(1000000)->Arg(10000000)->Arg(100000000)->Unit(benchmark::kMillisecond)->UseManualTime();
  benchmark::RegisterBenchmark("segment_norms/bf16", segment_norms_bf16)
      ->Arg(10000000)->Arg(100000000)->Unit(benchmark::kMillisecond)->UseManualTime();
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
