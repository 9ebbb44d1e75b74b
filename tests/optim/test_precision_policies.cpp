// Precision policies: over a long run of updates far below bfloat16's
// resolution, pure-bfloat16 weights with stochastic rounding track the fp32
// trajectory while round-to-nearest stalls, and Kahan-compensated bfloat16
// weights stay within a stated bound of fp32; bfloat16 optimizer state; fp32
// master weights with fp16/fp8 model copies written with either rounding.
#include <cmath>
#include <fstream>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include <mixprec/mixprec.hpp>

#include "../support/adamw_golden.hpp"
#include "../support/formats.hpp"
#include "../support/generators.hpp"
#include "../support/reference_file.hpp"
#include "../support/sgd_golden.hpp"
#include "../support/stochastic_golden.hpp"
#include "../support/synthetic.hpp"

using namespace mixprec;

namespace {

constexpr std::size_t n = 4096;
constexpr int steps = 3000;
constexpr float lr = 1e-4f;

template <class T>
std::vector<float> values_of(const T* device, std::size_t count) {
  std::vector<T> raw(count);
  detail::copy_to_host(device, raw.data(), count);
  std::vector<float> out(count);
  for (std::size_t i = 0; i < count; ++i) out[i] = to_float(raw[i]);
  return out;
}

// Gradients in [0.5, 1.5): each SGD update lr * g is 1/100 to 1/30 of a
// bfloat16 ulp at 1, so rounding to nearest never moves a weight.
std::vector<float> gradients(int t) {
  std::vector<float> g(n);
  for (std::size_t i = 0; i < n; ++i) g[i] = 1.0f + 0.5f * test::unit_value(static_cast<std::uint64_t>(t) * n + i);
  return g;
}

template <class Arena, class Step>
std::vector<float> run_policy(Arena& p, const Step& step) {
  p.initialize("w", init::constant{1.0}, 0);
  auto state = step.init(p);
  for (int t = 1; t <= steps; ++t) {
    const std::vector<float> g = gradients(t);
    detail::write_to_device(g.data(), p.grad_data(), n);
    step.apply(p, state);
  }
  return values_of(p.model_data(), n);
}

}  // namespace

TEST_SUITE("optim") {
  TEST_CASE(
      "tiny updates: stochastic rounding tracks fp32 while round-to-nearest stalls and Kahan stays within one ulp") {
    sgd_options o;
    o.lr = lr;
    parameters<float, float> reference;
    reference.add("w", {n});
    reference.finalize();
    const std::vector<float> fp32 = run_policy(reference, sgd(o));

    parameters<bfloat16, float, void> nearest, stochastic, kahan;
    for (auto* p : {&nearest, &stochastic, &kahan}) {
      p->add("w", {n});
      p->finalize();
    }
    const std::vector<float> stalled = run_policy(nearest, chain(sgd(o), round_model_nearest{}));
    const std::vector<float> sr = run_policy(stochastic, chain(sgd(o), round_model_stochastic{2024}));
    const std::vector<float> compensated = run_policy(kahan, chain(sgd(o), kahan_summation<bfloat16>{}));

    double fp32_mean = 0, sr_mean = 0, sr_var_bound = 0, kahan_worst = 0;
    std::size_t moved = 0;
    for (std::size_t i = 0; i < n; ++i) {
      fp32_mean += fp32[i];
      sr_mean += sr[i];
      moved += stalled[i] != 1.0f;
      // Kahan: the weight is the fp32 trajectory rounded once, plus the
      // compensation's own rounding: within one bfloat16 ulp of fp32.
      const double ulp = std::ldexp(1.0, std::ilogb(fp32[i]) - 7);
      kahan_worst = std::max(kahan_worst, std::fabs(compensated[i] - fp32[i]) / ulp);
    }
    fp32_mean /= n;
    sr_mean /= n;
    // Each stochastic rounding adds variance <= ulp^2 / 4 (ulp <= 2^-7 here).
    sr_var_bound = steps * std::ldexp(1.0, -14) / 4.0;
    const double sigma_of_mean = std::sqrt(sr_var_bound / n);
    MESSAGE("fp32 mean " << fp32_mean << ", stochastic mean " << sr_mean << " (4 sigma " << 4 * sigma_of_mean
                         << "), nearest moved " << moved << " weights, Kahan worst " << kahan_worst << " ulp");
    CHECK(fp32_mean < 0.8);                                     // the weights really moved
    CHECK(moved == 0);                                          // round-to-nearest stalls
    CHECK(std::fabs(sr_mean - fp32_mean) < 4 * sigma_of_mean);  // stochastic rounding is unbiased
    CHECK(kahan_worst <= 1.0);
  }

  TEST_CASE("bfloat16 moments with stochastic rounding stay close to fp32 moments") {
    adamw_options o;
    o.lr = 1e-3f;
    parameters<float> a, b;
    for (auto* p : {&a, &b}) {
      p->add("w", {n});
      p->finalize();
      p->initialize("w", init::normal{0.0, 1.0}, 5);
    }
    const auto wide = adamw(o);
    const auto narrow = adamw<bfloat16>(o);
    auto sa = wide.init(a);
    auto sb = narrow.init(b);
    for (int t = 1; t <= 300; ++t) {
      const std::vector<float> g = gradients(t);
      detail::write_to_device(g.data(), a.grad_data(), n);
      detail::write_to_device(g.data(), b.grad_data(), n);
      wide.apply(a, sa);
      narrow.apply(b, sb);
    }
    const auto wa = values_of(a.master_data(), n), wb = values_of(b.master_data(), n);
    double worst = 0, drift = 0;
    for (std::size_t i = 0; i < n; ++i) {
      worst = std::max(worst, static_cast<double>(std::fabs(wa[i] - wb[i])));
      drift += wa[i] - wb[i];
    }
    // 300 steps of lr 1e-3 move each weight by about 0.3. The second moment
    // changes by (1 - b2) = 1e-3 of itself per step, below bfloat16's 2^-8
    // resolution, so in bfloat16 it moves by stochastic rounding alone: each
    // weight carries zero-mean noise of a few percent of its movement, and the
    // mean over 4096 weights stays on the fp32 trajectory.
    MESSAGE("largest difference " << worst << ", mean difference " << drift / n);
    CHECK(worst < 0.3 * 0.1);
    CHECK(std::fabs(drift / n) < 1e-4);
  }

  TEST_CASE_TEMPLATE("model copies in half and fp8 are the master rounded under the writer's policy", Model, half,
                     fp8_e4m3, fp8_e5m2) {
    parameters<Model, float> p;
    p.add("w", {1000});
    p.finalize();
    p.initialize("w", init::normal{0.0, 2.0}, 3);
    sgd_options o;
    o.lr = 0.01f;
    const auto nearest = chain(sgd(o), round_model_nearest{});
    const auto stochastic = chain(sgd(o), round_model_stochastic{9});
    auto s1 = nearest.init(p);
    auto s2 = stochastic.init(p);
    std::vector<float> g(p.padded_size(), 0.5f);
    detail::write_to_device(g.data(), p.grad_data(), g.size());
    using over = weight_overflow<Model>;
    nearest.apply(p, s1);
    auto master = values_of(p.master_data(), 1000);
    std::vector<Model> model(1000);
    detail::copy_to_host(p.model_data(), model.data(), 1000);
    std::size_t wrong = 0;
    for (std::size_t i = 0; i < 1000; ++i)
      wrong += test::bits_of(model[i]) != test::bits_of(convert<Model, over>(master[i]));
    CHECK(wrong == 0);
    stochastic.apply(p, s2);
    master = values_of(p.master_data(), 1000);
    detail::copy_to_host(p.model_data(), model.data(), 1000);
    // The second chain's first step: stochastic rounding keyed on (9, step 1, i).
    for (std::size_t i = 0; i < 1000; ++i)
      wrong += test::bits_of(model[i]) != test::bits_of(convert<Model, over>(master[i], round_stochastic{9, 1}, i));
    CHECK(wrong == 0);
  }

  TEST_CASE("per-group multipliers give no weight decay on biases and another learning rate in one kernel") {
    parameters<float> p;
    p.add("w", {8});
    p.add("b", {8}, "no_decay");
    p.add("frozen", {8}, "frozen");
    p.finalize();
    p.initialize_all(init::constant{1.0}, 0);
    adamw_options o;
    o.lr = 0.1f;
    o.weight_decay = 0.5f;
    const auto step = adamw(o);
    auto state = step.init(p);
    state.set_group("no_decay", {1.0f, 0.0f});
    state.set_group("frozen", {0.0f, 1.0f});
    CHECK_THROWS_WITH_AS(state.set_group("nope", {}), doctest::Contains("no group named \"nope\""), error);
    std::vector<float> g(p.padded_size(), 0.0f);  // zero gradient: only weight decay moves weights
    detail::write_to_device(g.data(), p.grad_data(), g.size());
    step.apply(p, state);
    const auto w = values_of(p.master_data(), p.padded_size());
    CHECK(w[p["w"].offset] == doctest::Approx(1.0 - 0.1 * 0.5));  // decayed
    CHECK(w[p["b"].offset] == 1.0f);                              // no decay
    CHECK(w[p["frozen"].offset] == 1.0f);                         // learning rate 0
  }

  TEST_CASE_TEMPLATE("pure-bfloat16 SGD with stochastic rounding gives the committed host bits on this backend", G,
                     splitmix_generator, philox_generator) {
    std::ifstream in(std::string(MIXPREC_TEST_DATA_DIR) + "/" + test::golden_file<G>("sgd_stochastic_golden"));
    std::vector<std::uint16_t> golden;
    std::string line;
    while (std::getline(in, line))
      if (!line.empty() && line[0] != '#') golden.push_back(static_cast<std::uint16_t>(std::stoul(line, nullptr, 16)));
    REQUIRE(golden.size() == test::sgd_golden_size);
    const std::vector<std::uint16_t> got = test::run_sgd_golden<G>();
    std::size_t wrong = 0;
    for (std::size_t i = 0; i < got.size(); ++i) wrong += got[i] != golden[i];
    INFO(std::string(G::name) << ", backend " << backend_name(current_backend));
    CHECK(wrong == 0);
  }

  TEST_CASE_TEMPLATE(
      "AdamW with bfloat16 moments and a stochastically rounded bfloat16 copy gives the committed host bits", G,
      splitmix_generator, philox_generator) {
    // Pinned arithmetic: the GPU must give these bits too (the CUDA build runs this).
    std::ifstream in(std::string(MIXPREC_TEST_DATA_DIR) + "/" + test::golden_file<G>("adamw_stochastic_golden"));
    std::vector<std::uint32_t> golden;
    std::string line;
    while (std::getline(in, line))
      if (!line.empty() && line[0] != '#') golden.push_back(static_cast<std::uint32_t>(std::stoul(line, nullptr, 16)));
    REQUIRE(golden.size() == 4 * test::adamw_golden_size);
    const std::vector<std::uint32_t> got = test::run_adamw_golden<G>();
    const char* part[] = {"master weights", "model copy", "exp_avg", "exp_avg_sq"};
    for (std::size_t k = 0; k < 4; ++k) {
      std::size_t wrong = 0;
      for (std::size_t i = 0; i < test::adamw_golden_size; ++i)
        wrong += got[k * test::adamw_golden_size + i] != golden[k * test::adamw_golden_size + i];
      INFO(std::string(G::name) << ", " << part[k] << ", backend " << backend_name(current_backend));
      CHECK(wrong == 0);
    }
  }
}
