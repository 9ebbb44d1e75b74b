// The full training step: a skipped step leaves every byte of every role and
// state as it was; accumulating N micro-batches (in the gradient arena, or
// with every_k) equals one batch N times the size; every_k handles a loss
// scale change between micro-batches; a step is capturable in a CUDA graph
// (CUDA builds on a GPU).
#include <cmath>
#include <cstring>
#include <string>
#include <tuple>
#include <vector>

#include <doctest/doctest.h>

#include <mixprec/mixprec.hpp>

#include "../support/synthetic.hpp"

using namespace mixprec;

namespace {

template <class T>
std::vector<unsigned char> bytes_of(const T* device, std::size_t n) {
  std::vector<unsigned char> b(n * sizeof(T));
  detail::copy_to_host(reinterpret_cast<const unsigned char*>(device), b.data(), b.size());
  return b;
}

// The bytes of every role (master, model copy, gradients) and of every
// per-element state array of the chain.
template <class Arena, class State>
std::vector<unsigned char> role_and_state_bytes(Arena& p, State& s) {
  std::vector<unsigned char> all;
  auto add = [&](const std::vector<unsigned char>& b) { all.insert(all.end(), b.begin(), b.end()); };
  if constexpr (Arena::has_master) add(bytes_of(p.master_data(), p.padded_size()));
  add(bytes_of(p.model_data(), p.padded_size()));
  add(bytes_of(p.grad_data(), p.padded_size()));
  for (auto& f : s.storage().fields)
    if (f.used) add(bytes_of(detail::raw(f.bytes), f.bytes.size()));
  return all;
}

// Per-sample gradients of a least-squares model: sample j contributes
// (w . x_j - y_j) x_j; a batch's gradient is the mean over its samples.
struct least_squares {
  static constexpr std::size_t dim = 37, samples = 64;
  std::vector<float> x, y;
  least_squares() : x(dim * samples), y(samples) {
    for (std::size_t i = 0; i < x.size(); ++i) x[i] = test::unit_value(i + 17);
    for (std::size_t j = 0; j < samples; ++j) y[j] = test::unit_value(j + 99991);
  }
  // Mean gradient over samples [b, e) at weights w, times `scale`.
  std::vector<float> gradient(const std::vector<float>& w, std::size_t b, std::size_t e, float scale) const {
    std::vector<double> g(dim, 0.0);
    for (std::size_t j = b; j < e; ++j) {
      double r = -y[j];
      for (std::size_t i = 0; i < dim; ++i) r += double(w[i]) * x[j * dim + i];
      for (std::size_t i = 0; i < dim; ++i) g[i] += r * x[j * dim + i];
    }
    std::vector<float> out(dim);
    for (std::size_t i = 0; i < dim; ++i) out[i] = static_cast<float>(scale * g[i] / double(e - b));
    return out;
  }
};

std::vector<float> host_weights(parameters<float>& p) {
  std::vector<float> w(p.padded_size());
  detail::copy_to_host(p.master_data(), w.data(), w.size());
  return w;
}

}  // namespace

using bf16_model_fp16_grads = parameters<bfloat16, half>;
using fp32_model = parameters<float, float>;
using pure_bf16 = parameters<bfloat16, bfloat16, void>;
TYPE_TO_STRING(bf16_model_fp16_grads);
TYPE_TO_STRING(fp32_model);
TYPE_TO_STRING(pure_bf16);

TEST_SUITE("train") {
  TEST_CASE_TEMPLATE("a step on non-finite gradients changes no byte of any role or state", Arena,
                     bf16_model_fp16_grads, fp32_model, pure_bf16) {
    Arena p;
    p.add("w", {8, 9});
    p.add("b", {9});
    p.finalize();
    p.initialize_all(init::normal{0.0, 0.3}, 2);
    dynamic_loss_scale scaler;
    scaler.init_scale = 64.0f;
    // Stochastic rounding of the model copy where there is a narrower one.
    using writer = std::conditional_t<std::is_same_v<typename Arena::model_type, float>, round_model_nearest,
                                      round_model_stochastic<>>;
    const auto step = chain(scaler, clip_by_global_norm{1.0f}, adamw<bfloat16>(adamw_options{}), writer{});
    auto state = step.init(p);
    using G = typename Arena::grad_type;
    std::vector<G> g(p.padded_size());
    for (int t = 1; t <= 3; ++t) {  // some real steps first: moments and counters are non-trivial
      for (std::size_t i = 0; i < g.size(); ++i) g[i] = convert<G>(test::unit_value(t * 7777ull + i));
      detail::write_to_device(g.data(), p.grad_data(), g.size());
      step.apply(p, state);
    }
    REQUIRE(state.count() == 3);
    g[p["b"].offset + 4] = convert<G>(NAN);
    detail::write_to_device(g.data(), p.grad_data(), g.size());
    const auto before = role_and_state_bytes(p, state);
    const float scale = state.loss_scale();
    step.apply(p, state);
    CHECK(state.last_step_skipped());
    CHECK(state.count() == 3);
    CHECK(state.loss_scale() == scale / 2);
    CHECK(role_and_state_bytes(p, state) == before);
    // The next finite step proceeds from exactly where the skipped one found it.
    g[p["b"].offset + 4] = convert<G>(0.5f);
    detail::write_to_device(g.data(), p.grad_data(), g.size());
    step.apply(p, state);
    CHECK_FALSE(state.last_step_skipped());
    CHECK(state.count() == 4);
    CHECK(role_and_state_bytes(p, state) != before);
  }

  TEST_CASE("N micro-batches accumulated in the gradient arena equal one batch N times the size") {
    const least_squares ls;
    sgd_options o;
    o.lr = 0.1f;
    dynamic_loss_scale scaler;
    scaler.init_scale = 1024.0f;
    const auto step = chain(scaler, sgd(o));
    parameters<float> big, acc;
    for (auto* p : {&big, &acc}) {
      p->add("w", {least_squares::dim});
      p->finalize();
      p->initialize("w", init::uniform{-0.5, 0.5}, 4);
    }
    auto sb = step.init(big);
    auto sa = step.init(acc);
    for (int t = 0; t < 5; ++t) {
      const std::vector<float> w = host_weights(big);
      // One batch of 64, the loss scaled once.
      const std::vector<float> g = ls.gradient(w, 0, 64, sb.loss_scale());
      detail::write_to_device(g.data(), big.grad_data(), g.size());
      step.apply(big, sb);
      // Four micro-batches of 16, each backward adding (scaled loss) / 4 into the arena.
      std::vector<float> sum(least_squares::dim, 0.0f);
      for (std::size_t m = 0; m < 4; ++m) {
        const std::vector<float> gm = ls.gradient(host_weights(acc), 16 * m, 16 * (m + 1), sa.loss_scale() / 4.0f);
        for (std::size_t i = 0; i < sum.size(); ++i) sum[i] += gm[i];
      }
      detail::write_to_device(sum.data(), acc.grad_data(), sum.size());
      step.apply(acc, sa);
    }
    const auto wb = host_weights(big), wa = host_weights(acc);
    for (std::size_t i = 0; i < least_squares::dim; ++i) CHECK(wa[i] == doctest::Approx(wb[i]).epsilon(8 * 1.2e-7));
    CHECK(sa.count() == 5);
  }

  TEST_CASE("every_k accumulates micro-batches and updates once with their mean") {
    const least_squares ls;
    sgd_options o;
    o.lr = 0.1f;
    parameters<float> big, acc;
    for (auto* p : {&big, &acc}) {
      p->add("w", {least_squares::dim});
      p->finalize();
      p->initialize("w", init::uniform{-0.5, 0.5}, 4);
    }
    const auto one = chain(dynamic_loss_scale{}, clip_by_global_norm{0.5f}, sgd(o));
    const auto multi = chain(dynamic_loss_scale{}, every_k{4}, clip_by_global_norm{0.5f}, sgd(o));
    auto sb = one.init(big);
    auto sa = multi.init(acc);
    for (int t = 0; t < 3; ++t) {
      const std::vector<float> g = ls.gradient(host_weights(big), 0, 64, sb.loss_scale());
      detail::write_to_device(g.data(), big.grad_data(), g.size());
      one.apply(big, sb);
      const std::vector<float> w0 = host_weights(acc);
      for (std::size_t m = 0; m < 4; ++m) {
        const std::vector<float> gm = ls.gradient(w0, 16 * m, 16 * (m + 1), sa.loss_scale());
        detail::write_to_device(gm.data(), acc.grad_data(), gm.size());
        multi.apply(acc, sa);
        if (m < 3) CHECK(host_weights(acc) == w0);  // accumulating only
      }
    }
    CHECK(sa.count() == 3);
    const auto wb = host_weights(big), wa = host_weights(acc);
    for (std::size_t i = 0; i < least_squares::dim; ++i) CHECK(wa[i] == doctest::Approx(wb[i]).epsilon(8 * 1.2e-7));
    CHECK(sa.scalars<2>().norm == doctest::Approx(sb.scalars<1>().norm).epsilon(1e-6));
  }

  TEST_CASE("every_k handles a loss-scale change between micro-batches") {
    const least_squares ls;
    sgd_options o;
    o.lr = 0.1f;
    dynamic_loss_scale scaler;
    scaler.init_scale = 1024.0f;
    parameters<float, half> acc;
    acc.add("w", {least_squares::dim});
    acc.finalize();
    acc.initialize("w", init::uniform{-0.5, 0.5}, 4);
    const auto multi = chain(scaler, every_k{4}, sgd(o));
    auto sa = multi.init(acc);
    std::vector<float> w0(acc.padded_size());
    detail::copy_to_host(acc.master_data(), w0.data(), w0.size());
    w0.resize(least_squares::dim);
    // Micro-batches 0..4 of 12 samples; micro-batch 1 overflows (and is dropped).
    std::vector<float> expected_mean(least_squares::dim, 0.0f);
    std::vector<float> scales;
    for (std::size_t m = 0; m < 5; ++m) {
      const float scale = sa.loss_scale();
      scales.push_back(scale);
      std::vector<float> gm = ls.gradient(w0, 12 * m, 12 * (m + 1), scale);
      std::vector<half> gh(gm.size());
      for (std::size_t i = 0; i < gm.size(); ++i) gh[i] = convert<half>(gm[i]);
      if (m == 1) gh[3] = convert<half>(INFINITY);
      else
        for (std::size_t i = 0; i < gm.size(); ++i) expected_mean[i] += to_float(gh[i]) / scale / 4.0f;
      detail::write_to_device(gh.data(), acc.grad_data(), gh.size());
      multi.apply(acc, sa);
      CHECK(sa.last_step_skipped() == (m == 1));
    }
    CHECK(scales == std::vector<float>{1024.0f, 1024.0f, 512.0f, 512.0f, 512.0f});
    CHECK(sa.count() == 1);
    std::vector<float> w(acc.padded_size());
    detail::copy_to_host(acc.master_data(), w.data(), w.size());
    for (std::size_t i = 0; i < least_squares::dim; ++i)
      CHECK(w[i] == doctest::Approx(w0[i] - 0.1f * expected_mean[i]).epsilon(4e-7));
  }

#if defined(MIXPREC_BACKEND_CUDA)
  TEST_CASE("a whole step is captured in a CUDA graph and replays like direct calls") {
    parameters<bfloat16, bfloat16> a, b;
    for (auto* p : {&a, &b}) {
      for (int k = 0; k < 20; ++k) p->add("p" + std::to_string(k), {static_cast<std::size_t>(100 + 97 * k)});
      p->finalize();
      p->initialize_all(init::normal{0.0, 0.5}, 8);
    }
    const auto step =
        chain(dynamic_loss_scale{}, clip_by_global_norm{1.0f}, adamw(adamw_options{}), round_model_stochastic{1});
    auto sa = step.init(a);
    auto sb = step.init(b);
    cudaStream_t s;
    MIXPREC_CUDA_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
    cudaGraph_t graph;
    MIXPREC_CUDA_CHECK(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal));
    step.apply(a, sa, stream{s});
    MIXPREC_CUDA_CHECK(cudaStreamEndCapture(s, &graph));
    cudaGraphExec_t exec;
    MIXPREC_CUDA_CHECK(cudaGraphInstantiate(&exec, graph, 0));
    std::vector<bfloat16> g(a.padded_size());
    for (int t = 1; t <= 5; ++t) {
      for (std::size_t i = 0; i < g.size(); ++i) g[i] = convert<bfloat16>(1000.0f * test::unit_value(t * 31ull + i));
      if (t == 3) g[7] = convert<bfloat16>(INFINITY);
      detail::write_to_device(g.data(), a.grad_data(), g.size(), stream{s});
      detail::write_to_device(g.data(), b.grad_data(), g.size());
      MIXPREC_CUDA_CHECK(cudaGraphLaunch(exec, s));
      step.apply(b, sb);
    }
    synchronize(stream{s});
    synchronize({});
    CHECK(role_and_state_bytes(a, sa) == role_and_state_bytes(b, sb));
    CHECK(sa.count() == 4);
    CHECK(sa.step().skipped_total == 1);
    MIXPREC_CUDA_CHECK(cudaGraphExecDestroy(exec));
    MIXPREC_CUDA_CHECK(cudaGraphDestroy(graph));
    MIXPREC_CUDA_CHECK(cudaStreamDestroy(s));
  }
#endif
}
