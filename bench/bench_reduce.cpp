// One pass over the arena: the sum of squares of n bfloat16 values (2 bytes
// read per element) into a device scalar, against the copy and triad
// bandwidth measured in the same run. Also the per-segment variant over an
// arena of many parameters.
#include <algorithm>
#include <cstdint>
#include <limits>
#include <random>
#include <utility>
#include <vector>

#include <benchmark/benchmark.h>

#include <mixprec/mixprec.hpp>

#include "bandwidth.hpp"

using namespace mixprec;

namespace {

template <class T = bfloat16>
struct random_fill {
  T* p;
  MIXPREC_HOST_DEVICE void operator()(std::size_t i) const {
    p[i] = convert<T>(uniform_from_bits(random_bits(1, 0, i)) * 2.0f - 1.0f);
  }
};

void sum_of_squares_bf16(benchmark::State& state) {
  const std::size_t n = static_cast<std::size_t>(state.range(0));
  detail::device_buffer<bfloat16> data(n);
  detail::for_each_index({}, n, random_fill<>{detail::raw(data)});
  workspace ws;
  device_scalar<double> out;
  const tensor_view<const bfloat16> view(detail::raw(data), n);
  sum_of_squares(view, out, ws);  // warm up, size the workspace
  bench::run_timed(state, 2.0 * n, n, [&] { sum_of_squares(view, out, ws); });
  benchmark::DoNotOptimize(out.get());
}

#if !defined(MIXPREC_BACKEND_CUDA)
// The same bytes read by a plain OpenMP loop (host): the sum of squares of n
// bf16 values, vectorised by the compiler. What the memory system gives a
// read-only stream on this machine, next to sum_of_squares/bf16 above.
double handwritten_sum_of_squares(const std::uint16_t* bits, std::size_t n) {
  double sum = 0.0;
#pragma omp parallel for simd reduction(+ : sum) schedule(static)
  for (std::size_t i = 0; i < n; ++i) {
    const float x = detail::bit_cast<float>(static_cast<std::uint32_t>(bits[i]) << 16);
    sum += static_cast<double>(x * x);
  }
  return sum;
}
void handwritten_sum_of_squares_bf16(benchmark::State& state) {
  const std::size_t n = static_cast<std::size_t>(state.range(0));
  detail::device_buffer<bfloat16> data(n);
  detail::for_each_index({}, n, random_fill<>{detail::raw(data)});
  const std::uint16_t* bits = reinterpret_cast<const std::uint16_t*>(detail::raw(data));
  double result = 0.0;
  auto run = [&] { result = handwritten_sum_of_squares(bits, n); };
  run();
  bench::run_timed(state, 2.0 * n, n, run);
  benchmark::DoNotOptimize(result);
}
#endif

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
  detail::for_each_index({}, p.padded_size(), random_fill<>{static_cast<bfloat16*>(p.grad_data())});
  workspace ws;
  detail::device_buffer<double> norms(p.count());
  segment_l2_norms(p.layout(), static_cast<const bfloat16*>(p.grad_data()), detail::raw(norms), ws);
  bench::run_timed(state, 2.0 * total, total, [&] {
    segment_l2_norms(p.layout(), static_cast<const bfloat16*>(p.grad_data()), detail::raw(norms), ws);
  });
  state.counters["parameters"] = static_cast<double>(p.count());
}

// Unscaling and global-norm clipping of bf16 gradients, standing alone
// (written back into the gradients):
//   fused:      the statistics pass (read 2) + the pass applying the
//               decisions (read 2, write 2) = 6 bytes per parameter;
//   unfused:    non-finite check (2), unscale (2+2), norm (2), clip (2+2),
//               as separate passes with the norm read on the host = 12;
//   apply_only: the applying pass alone (a static scale: 4);
//   first_pass: the statistics pass alone (read 2), measured directly: the
//               gradients hold one inf, so the step is skipped and its
//               update pass touches nothing (one flag read per tile).
//   first_pass_fp16: the same with fp16 gradients (and model copy).
template <class T = bfloat16>
void first_pass(benchmark::State& state, int variant) {
  const std::size_t n = static_cast<std::size_t>(state.range(0));
  parameters<T, T> p;
  p.add("g", {n});
  p.finalize();
  detail::for_each_index({}, p.padded_size(), random_fill<T>{static_cast<T*>(p.grad_data())});
  dynamic_loss_scale d;
  d.init_scale = 1.0f;
  const auto fused = chain(d, clip_by_global_norm{1e9f});  // a large max_norm keeps the data unchanged
  const auto apply_only = chain(static_loss_scale{1.0f});
  auto sf = fused.init(p);
  auto sa = apply_only.init(p);
  workspace ws;
  device_scalar<std::uint64_t> non_finite;
  device_scalar<double> norm;
  const tensor_view<T> g(p.grad_data(), p.padded_size());
  if (variant == 0) {
    bench::run_timed(state, 6.0 * n, n, [&] { fused.transform_gradients(p, sf); });
  } else if (variant == 1) {
    bench::run_timed(state, 12.0 * n, n, [&] {
      count_non_finite(g, non_finite, ws);
      scale(g, 1.0f);
      l2_norm(g, norm, ws);
      scale(g, static_cast<float>(std::min(1.0, 1e9 / (norm.get() + 1e-6))));
    });
  } else if (variant == 2) {
    bench::run_timed(state, 4.0 * n, n, [&] { apply_only.transform_gradients(p, sa); });
  } else {
    d.min_scale = 1.0f;  // the scale stays 1 however many steps are skipped
    const auto guarded = chain(d, clip_by_global_norm{1e9f});
    auto sg = guarded.init(p);
    const T inf = convert<T>(std::numeric_limits<float>::infinity());
    detail::write_to_device(&inf, static_cast<T*>(p.grad_data()) + n / 2, 1, {});
    bench::run_timed(state, 2.0 * n, n, [&] { guarded.transform_gradients(p, sg); });
    if (!sg.last_step_skipped()) state.SkipWithError("the step was not skipped: the update pass ran");
  }
}
void first_pass_fused(benchmark::State& s) { first_pass(s, 0); }
void first_pass_unfused(benchmark::State& s) { first_pass(s, 1); }
void first_pass_apply_only(benchmark::State& s) { first_pass(s, 2); }
void first_pass_statistics(benchmark::State& s) { first_pass(s, 3); }
void first_pass_statistics_fp16(benchmark::State& s) { first_pass<half>(s, 3); }

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  bench::register_ceilings();
  benchmark::RegisterBenchmark("sum_of_squares/bf16", sum_of_squares_bf16)
      ->Arg(1000000)
      ->Arg(10000000)
      ->Arg(100000000)
      ->Unit(benchmark::kMillisecond)
      ->UseManualTime();
#if !defined(MIXPREC_BACKEND_CUDA)
  benchmark::RegisterBenchmark("handwritten/sum_of_squares_bf16", handwritten_sum_of_squares_bf16)
      ->Arg(100000000)
      ->Unit(benchmark::kMillisecond)
      ->UseManualTime();
#endif
  benchmark::RegisterBenchmark("segment_norms/bf16", segment_norms_bf16)
      ->Arg(10000000)
      ->Arg(100000000)
      ->Unit(benchmark::kMillisecond)
      ->UseManualTime();
  for (auto [name, f] :
       {std::pair{"scale_clip/fused_bf16", first_pass_fused}, std::pair{"scale_clip/unfused_bf16", first_pass_unfused},
        std::pair{"scale_clip/apply_only_bf16", first_pass_apply_only},
        std::pair{"scale_clip/first_pass_bf16", first_pass_statistics},
        std::pair{"scale_clip/first_pass_fp16", first_pass_statistics_fp16}})
    benchmark::RegisterBenchmark(name, f)->Arg(100000000)->Unit(benchmark::kMillisecond)->UseManualTime();
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
