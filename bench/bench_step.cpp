// The training step, fused and unfused, against the machine's copy and
// triad bandwidth measured in the same run (docs/performance.md has the
// byte model). Sizes: 10^6 .. 2.5 * 10^8 parameters in 200 tensors.
//
//   step/adamw_bf16    dynamic loss scale + global-norm clip + AdamW; fp32
//                      master and moments, bf16 gradients and model copy
//                      (2 + 28 bytes per parameter: statistics + update pass)
//   step/adamw_fp32    the same with fp32 gradients, model = master (4 + 28)
//   step/adamw_bf16_sr the bf16 step with a stochastically rounded model copy
//   pair/adamw_bf16_sr adamw_bf16 and adamw_bf16_sr alternating on two
//                      arenas: the median ratio of back-to-back steps
//   step/adamw_bf16m   the bf16 step with bf16 moments (stochastically
//                      rounded): 2 + 20 bytes
//   pair/adamw_bf16m   adamw_bf16 (fp32 moments) and adamw_bf16m
//                      alternating: the median ratio bf16m / fp32 moments
//   step/adamw_q8      the bf16 step with 8-bit block-quantized moments
//                      (dynamic map, a float scale per 256): 2 + 16 bytes
//                      (and 1/32 of a byte of scales)
//   step/adamw_fp8m    the same with e4m3 moments (block 256)
//   pair/adamw_q8      adamw_bf16 (fp32 moments) and adamw_q8 alternating:
//                      the median ratio q8 / fp32 moments
//   pair/adamw_fp8m    the same for adamw_fp8m
//   *_philox           the same with Philox-4x32-10 for the stochastic
//                      rounding instead of the default generator (SplitMix64)
//   optimizer/adamw_bf16  AdamW alone, one update pass (28 bytes)
//   step/sgd_bf16      SGD with momentum, no statistics pass: read gradient,
//                      master, momentum (2+4+4), write master, momentum,
//                      model (4+4+2): 20
//   step/lamb_bf16     LAMB, no statistics pass: measuring pass reads
//                      2+4+4+4 and writes the moments 4+4; finishing pass
//                      reads 2+4+4+4, writes master and model 4+2: 42
//   step/lion_bf16     Lion: read 2+4+4, write 4+4+2: 20
//   unfused/adamw_*    the same pipelines as separate passes, in the dataflow
//                      of PyTorch's recipe (non-finite check, unscale, norm,
//                      clip, gradients to fp32, AdamW on the fp32 master, model
//                      copy): 52 bytes per parameter
//   handwritten/adamw_bf16  (host) step/adamw_bf16's arithmetic as two plain
//                      OpenMP loops over the same arena (statistics, then
//                      the update with the decisions applied): what a user
//                      would write by hand, 30 bytes per parameter
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <type_traits>
#include <vector>

#include <benchmark/benchmark.h>

#include <mixprec/mixprec.hpp>

#include "arena_fixture.hpp"
#include "bandwidth.hpp"

using namespace mixprec;

namespace {

const std::vector<std::int64_t> sizes = {1000000, 10000000, 100000000, 250000000};

template <class Arena, class Step>
void run_step(benchmark::State& state, const Step& step, double bytes_per_param) {
  const std::size_t n = static_cast<std::size_t>(state.range(0));
  Arena a;
  bench::build_arena(a, n);
  auto s = step.init(a);
  step.apply(a, s);  // warm up
  const double elements = static_cast<double>(a.element_count());
  bench::run_timed(state, bytes_per_param * elements, elements, [&] { step.apply(a, s); });
  state.counters["skipped"] = static_cast<double>(s.step().skipped_total);
}

dynamic_loss_scale scaler() {
  dynamic_loss_scale d;
  d.init_scale = 1.0f;  // the random gradients are already unscaled
  return d;
}

void adamw_bf16(benchmark::State& state) {
  run_step<parameters<bfloat16, bfloat16>>(state, chain(scaler(), clip_by_global_norm{1.0f}, adamw(adamw_options{})),
                                           30);
}
void adamw_fp32(benchmark::State& state) {
  run_step<parameters<float, float>>(state, chain(scaler(), clip_by_global_norm{1.0f}, adamw(adamw_options{})), 32);
}
template <class G>
void adamw_bf16_sr(benchmark::State& state) {
  run_step<parameters<bfloat16, bfloat16>>(
      state, chain(scaler(), clip_by_global_norm{1.0f}, adamw(adamw_options{}), round_model_stochastic<G>{1}), 30);
}
template <class G>
void adamw_bf16m(benchmark::State& state) {
  run_step<parameters<bfloat16, bfloat16>>(
      state, chain(scaler(), clip_by_global_norm{1.0f}, adamw<bfloat16, G>(adamw_options{})), 22);
}
template <class Code>
void adamw_coded(benchmark::State& state) {
  run_step<parameters<bfloat16, bfloat16>>(
      state, chain(scaler(), clip_by_global_norm{1.0f}, adamw<block_quantized<Code>>(adamw_options{})), 18);
}
// Two steps measured in pairs: each iteration runs step `first` on one arena,
// then step `second` on a second arena, and `ratio` (named by the caller) is
// the median of the iterations' ratios second / first. The machine's
// bandwidth drifts by 10-30% over seconds; two steps taken back to back see
// nearly the same machine, so this ratio is steadier than one of two medians
// taken apart. The reported time is the second step's.
template <class First, class Second>
void run_pair(benchmark::State& state, const First& first, const Second& second, double second_bytes,
              const char* ratio) {
  using arena = parameters<bfloat16, bfloat16>;
  const std::size_t n = static_cast<std::size_t>(state.range(0));
  arena a, b;
  bench::build_arena(a, n);
  bench::build_arena(b, n);
  auto sa = first.init(a);
  auto sb = second.init(b);
  first.apply(a, sa);  // warm up
  second.apply(b, sb);
  const auto timed = [](auto&& f) {
    const auto t0 = std::chrono::steady_clock::now();
    f();
    mixprec::synchronize({});
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  };
  std::vector<double> ratios;
  for (auto _ : state) {
    const double t_first = timed([&] { first.apply(a, sa); });
    const double t_second = timed([&] { second.apply(b, sb); });
    state.SetIterationTime(t_second);
    ratios.push_back(t_second / t_first);
  }
  // The second step's bytes, as run_timed reports them.
  state.SetBytesProcessed(static_cast<std::int64_t>(second_bytes * static_cast<double>(b.element_count()) *
                                                    static_cast<double>(state.iterations())));
  std::sort(ratios.begin(), ratios.end());
  const std::size_t k = ratios.size();
  state.counters[ratio] = k == 0 ? 0.0 : (k % 2 ? ratios[k / 2] : 0.5 * (ratios[k / 2 - 1] + ratios[k / 2]));
}
// What stochastic rounding of the model copy costs: the nearest step, then
// the SR step (30 bytes per parameter each).
template <class G>
void pair_adamw_bf16_sr(benchmark::State& state) {
  run_pair(state, chain(scaler(), clip_by_global_norm{1.0f}, adamw(adamw_options{})),
           chain(scaler(), clip_by_global_norm{1.0f}, adamw(adamw_options{}), round_model_stochastic<G>{1}), 30,
           "sr_over_nearest");
}
// What bf16 moments save: the fp32-moment step (30 bytes), then the same
// chain with stochastically rounded bf16 moments (22 bytes).
template <class G>
void pair_adamw_bf16m(benchmark::State& state) {
  run_pair(state, chain(scaler(), clip_by_global_norm{1.0f}, adamw(adamw_options{})),
           chain(scaler(), clip_by_global_norm{1.0f}, adamw<bfloat16, G>(adamw_options{})), 22, "bf16m_over_fp32m");
}

// What 8-bit moments save: the fp32-moment step (30 bytes), then the same
// chain with block-quantized dynamic8 moments (18 bytes).
template <class Code>
void pair_adamw_coded(benchmark::State& state) {
  run_pair(state, chain(scaler(), clip_by_global_norm{1.0f}, adamw(adamw_options{})),
           chain(scaler(), clip_by_global_norm{1.0f}, adamw<block_quantized<Code>>(adamw_options{})), 18,
           std::is_same_v<Code, dynamic8> ? "q8_over_fp32m" : "fp8m_over_fp32m");
}

// The optimizer alone: AdamW with fp32 master and moments, bf16 gradients
// and model copy, one pass (read 2+4+4+4, write 4+4+4+2 = 28).
void optimizer_adamw_bf16(benchmark::State& state) {
  run_step<parameters<bfloat16, bfloat16>>(state, adamw(adamw_options{}), 28);
}
void sgd_bf16(benchmark::State& state) {
  sgd_options o;
  o.momentum = 0.9f;
  run_step<parameters<bfloat16, bfloat16>>(state, chain(sgd(o)), 20);
}
void lamb_bf16(benchmark::State& state) {
  run_step<parameters<bfloat16, bfloat16>>(state, chain(lamb(lamb_options{})), 42);
}
void lion_bf16(benchmark::State& state) {
  run_step<parameters<bfloat16, bfloat16>>(state, chain(lion(lion_options{})), 20);
}

// The same pipeline as separate passes built from the library's pieces, in
// the dataflow of PyTorch's master-weight recipe: the bf16 model and its bf16
// gradients, an fp32 master arena with fp32 gradients and moments.
//   non-finite check (2) + unscale (4) + norm (2) + clip (4)
//   + gradients to fp32 (2 + 4) + AdamW on the master (4 + 12 + 12)
//   + model copy (4 + 2) = 52 bytes per parameter; fp32 gradients skip the
//   two casts and read/write 4-byte gradients: also 52.
template <class G>
void unfused_adamw(benchmark::State& state) {
  const std::size_t n = static_cast<std::size_t>(state.range(0));
  parameters<float, float> master;
  bench::build_arena(master, n);
  const std::size_t padded = master.padded_size();
  detail::device_buffer<G> grads_storage(std::is_same_v<G, float> ? 0 : padded);
  detail::device_buffer<bfloat16> model_storage(std::is_same_v<G, float> ? 0 : padded);
  G* grad_data;
  if constexpr (std::is_same_v<G, float>) {
    grad_data = master.grad_data();
  } else {
    grad_data = detail::raw(grads_storage);
    bench::fill_random(grad_data, padded, 1e-2f, 3);
  }
  const tensor_view<G> grads(grad_data, padded);
  const tensor_view<float> master_grads(master.grad_data(), padded);
  const tensor_view<float> weights(master.master_data(), padded);
  const tensor_view<bfloat16> model(detail::raw(model_storage), model_storage.size());
  const auto update = adamw(adamw_options{});
  auto s = update.init(master);
  workspace ws;
  device_scalar<std::uint64_t> non_finite;
  device_scalar<double> norm;
  const float inv_scale = 1.0f;
  auto pipeline = [&] {
    count_non_finite(grads, non_finite, ws);  // found_inf
    scale(grads, inv_scale);                  // unscale_
    l2_norm(grads, norm, ws);                 // clip_grad_norm_: the norm ...
    const double coef = std::min(1.0, 1.0 / (norm.get() + 1e-6));
    scale(grads, static_cast<float>(coef));  // ... and the scaling
    if (non_finite.get() != 0) return;       // the step is skipped
    if constexpr (!std::is_same_v<G, float>) {
      cast(master_grads, grads);  // master.grad = model.grad.float()
      update.apply(master, s);    // optimizer.step() on the fp32 master
      cast(model, weights);       // model.copy_(master)
    } else {
      update.apply(master, s);
    }
  };
  pipeline();
  const double elements = static_cast<double>(master.element_count());
  bench::run_timed(state, 52.0 * elements, elements, pipeline);
}
void unfused_adamw_bf16(benchmark::State& state) { unfused_adamw<bfloat16>(state); }
void unfused_adamw_fp32(benchmark::State& state) { unfused_adamw<float>(state); }

#if !defined(MIXPREC_BACKEND_CUDA)
// step/adamw_bf16 written by hand: loop 1 sums the squares of the bf16
// gradients (a NaN or inf shows in the sum), the host takes the loss-scale
// and clipping decisions, loop 2 applies them and AdamW to the fp32 master
// and moments and writes the bf16 model copy (nearest-even by the usual bit
// trick). One weight decay for the whole arena; the bf16 conversions assume
// finite values, as a hand-written loop would. Free functions: inside a
// lambda capturing by reference, GCC reloads the pointers from the closure
// and the loops run several times slower.
inline float widen_bf16(std::uint16_t b) { return detail::bit_cast<float>(static_cast<std::uint32_t>(b) << 16); }

double handwritten_sum_of_squares(const std::uint16_t* grad, std::size_t n) {
  double sum = 0.0;
#pragma omp parallel for simd reduction(+ : sum) schedule(static)
  for (std::size_t i = 0; i < n; ++i) {
    const float g = widen_bf16(grad[i]);
    sum += static_cast<double>(g * g);
  }
  return sum;
}

struct handwritten_adamw_args {
  float g_factor, b1, b2, eps, step_size, bc2_sqrt, decay;
};
void handwritten_adamw_update(const std::uint16_t* grad, float* w, float* m, float* v, std::uint16_t* model,
                              std::size_t n, handwritten_adamw_args a) {
  const float g_factor = a.g_factor, b1 = a.b1, b2 = a.b2, eps = a.eps, step_size = a.step_size, bc2_sqrt = a.bc2_sqrt,
              decay = a.decay;
#pragma omp parallel for simd schedule(static)
  for (std::size_t i = 0; i < n; ++i) {
    const float g = widen_bf16(grad[i]) * g_factor;
    const float mi = b1 * m[i] + (1.0f - b1) * g;
    const float vi = b2 * v[i] + (1.0f - b2) * g * g;
    const float wi = w[i] * decay - step_size * mi / (std::sqrt(vi) / bc2_sqrt + eps);
    m[i] = mi;
    v[i] = vi;
    w[i] = wi;
    const std::uint32_t u = detail::bit_cast<std::uint32_t>(wi);
    model[i] = static_cast<std::uint16_t>((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
  }
}

void handwritten_adamw_bf16(benchmark::State& state) {
  const std::size_t n = static_cast<std::size_t>(state.range(0));
  parameters<bfloat16, bfloat16> a;
  bench::build_arena(a, n);
  const std::size_t size = a.padded_size();
  const std::uint16_t* grad = reinterpret_cast<const std::uint16_t*>(a.grad_data());
  std::uint16_t* model = reinterpret_cast<std::uint16_t*>(a.model_data());
  float* w = a.master_data();
  detail::device_buffer<float> m_storage(size), v_storage(size);  // zeros
  float* m = detail::raw(m_storage);
  float* v = detail::raw(v_storage);
  const adamw_options o;
  float loss_scale = 1.0f;
  int step = 0;
  auto run = [&] {
    const double sum = handwritten_sum_of_squares(grad, size);
    const float inv_scale = 1.0f / loss_scale;
    const double norm = std::sqrt(sum) * inv_scale;
    if (!std::isfinite(norm)) {
      loss_scale *= 0.5f;
      return;
    }
    ++step;
    handwritten_adamw_args args;
    args.g_factor = inv_scale * std::min(1.0f, 1.0f / (static_cast<float>(norm) + 1e-6f));
    args.b1 = o.beta1;
    args.b2 = o.beta2;
    args.eps = o.eps;
    args.step_size = o.lr / (1.0f - std::pow(o.beta1, static_cast<float>(step)));
    args.bc2_sqrt = std::sqrt(1.0f - std::pow(o.beta2, static_cast<float>(step)));
    args.decay = 1.0f - o.lr * o.weight_decay;
    handwritten_adamw_update(grad, w, m, v, model, size, args);
  };
  run();  // warm up
  const double elements = static_cast<double>(a.element_count());
  bench::run_timed(state, 30.0 * elements, elements, run);
}
#endif

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  bench::register_ceilings();
  auto add = [](const char* name, void (*f)(benchmark::State&)) {
    auto* b = benchmark::RegisterBenchmark(name, f)->Unit(benchmark::kMillisecond)->UseManualTime();
    for (std::int64_t n : sizes) b->Arg(n);
  };
  add("step/adamw_bf16", adamw_bf16);
  add("step/adamw_fp32", adamw_fp32);
  add("step/adamw_bf16_sr", adamw_bf16_sr<default_generator>);
  add("step/adamw_bf16_sr_philox", adamw_bf16_sr<philox_generator>);
  add("step/adamw_bf16m", adamw_bf16m<default_generator>);
  add("step/adamw_bf16m_philox", adamw_bf16m<philox_generator>);
  add("step/adamw_q8", adamw_coded<dynamic8>);
  add("step/adamw_fp8m", adamw_coded<fp8_e4m3>);
  auto add_pair = [](const char* name, void (*f)(benchmark::State&)) {
    benchmark::RegisterBenchmark(name, f)
        ->Arg(10000000)
        ->Arg(100000000)
        ->Unit(benchmark::kMillisecond)
        ->UseManualTime()
        ->MinTime(2.0);
  };
  add_pair("pair/adamw_bf16_sr", pair_adamw_bf16_sr<default_generator>);
  add_pair("pair/adamw_bf16_sr_philox", pair_adamw_bf16_sr<philox_generator>);
  add_pair("pair/adamw_bf16m", pair_adamw_bf16m<default_generator>);
  add_pair("pair/adamw_bf16m_philox", pair_adamw_bf16m<philox_generator>);
  add_pair("pair/adamw_q8", pair_adamw_coded<dynamic8>);
  add_pair("pair/adamw_fp8m", pair_adamw_coded<fp8_e4m3>);
  add("unfused/adamw_bf16", unfused_adamw_bf16);
  add("unfused/adamw_fp32", unfused_adamw_fp32);
  add("optimizer/adamw_bf16", optimizer_adamw_bf16);
  add("step/sgd_bf16", sgd_bf16);
  add("step/lamb_bf16", lamb_bf16);
  add("step/lion_bf16", lion_bf16);
#if !defined(MIXPREC_BACKEND_CUDA)
  add("handwritten/adamw_bf16", handwritten_adamw_bf16);
#endif
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
