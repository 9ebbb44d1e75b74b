// The worked example of docs/design.md ("Writing a component"), verbatim: a
// component with a scalar rule, a per-parameter rule, per-parameter state
// and statistics, written with no change to the library, planned into the
// statistics pass, saved by name in checkpoints.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include <mixprec/mixprec.hpp>

#include "../support/errors.hpp"

struct add_gradient_noise {
  static constexpr const char* name = "add_gradient_noise";
  // Noise changes norms, so it is a stage, not before_statistics.
  static constexpr mixprec::state_field state[] = {
      {"large_noise_steps", mixprec::format_id::f32, mixprec::extent::parameter}};
  static constexpr mixprec::field_id<mixprec::field_index(state, "large_noise_steps")> large{};
  static constexpr mixprec::statistic statistics[] = {
      {"update_sq", mixprec::scope::parameter, mixprec::reduction::power_sum, mixprec::source::input}};
  static constexpr mixprec::stat_id<mixprec::statistic_index(statistics, "update_sq")> update_sq{};

  float sigma = 1e-3f;
  std::uint64_t seed = 0;

  struct scalars {
    float sigma_t;
  };  // decays as sigma / sqrt(t)
  scalars initial_scalars() const {
    mixprec::require(sigma >= 0, "add_gradient_noise: sigma must be >= 0");
    return {sigma};
  }
  template <class Ctx>
  MIXPREC_HOST_DEVICE void decide(scalars& s, const Ctx& ctx) const {
    s.sigma_t = sigma / sqrtf(static_cast<float>(ctx.t()));
  }
  template <class E>  // one thread per parameter
  MIXPREC_HOST_DEVICE void decide_parameter(const E& e) const {
    const double rms = sqrt(e.statistic(update_sq) / double(e.geometry().size));
    if (rms < e.scalars().sigma_t) e.state(large).set(e.state(large).get() + 1.0f);
  }
  template <class Ctx>
  MIXPREC_HOST_DEVICE float update(float u, const Ctx& ctx) const {
    // Uniform in [-1, 1), a pure function of (seed, step, element): any launch shape, any backend.
    const float z = 2.0f * mixprec::uniform_from_bits(mixprec::random_bits(seed, ctx.t(), ctx.index())) - 1.0f;
    return u + ctx.scalars().sigma_t * z;
  }
  template <class V>
  void visit_hyperparameters(V&& v) const {
    v("sigma", sigma);
    v("seed", seed);
  }
  template <class V>
  static void visit_scalars(scalars& s, V&& v) {
    v("sigma_t", s.sigma_t);
  }
};

using namespace mixprec;

TEST_SUITE("train") {
  TEST_CASE("the worked example of the design document runs as described") {
    parameters<float> p;
    p.add("quiet", {100});  // tiny gradients: the noise is large
    p.add("loud", {100});   // gradients of 1: the noise is small
    p.finalize();
    add_gradient_noise noise;
    noise.sigma = 0.01f;
    sgd_options o;
    o.lr = 0.1f;
    const auto step = chain(dynamic_loss_scale{}, noise, sgd(o));
    const std::string plan = step.describe();
    CHECK(test::contains(plan, "pass 1 (statistics)"));
    CHECK(test::contains(plan, "add_gradient_noise.update_sq (per parameter sum |x|^p of its input)"));
    CHECK(decltype(step)::plan::passes() == 2);
    auto state = step.init(p);
    std::vector<float> g(200);
    for (std::size_t i = 0; i < 200; ++i) g[i] = 65536.0f * (i < 100 ? 1e-5f : 1.0f);  // scaled by the loss scale
    for (int t = 0; t < 4; ++t) {
      p.from_host(role::grad, g);
      step.apply(p, state);
    }
    const std::vector<float> counts = state.field<1>("large_noise_steps").to_host();
    CHECK(counts == std::vector<float>{4.0f, 0.0f});
    // The update is the noisy gradient: the quiet parameter moved by about sigma_t * lr per step, not by 1e-6.
    const std::vector<float> w = p.to_host(role::master, "quiet");
    double moved = 0;
    for (float x : w) moved += std::fabs(x);
    CHECK(moved / 100 > 1e-4);
    const std::string path = "/tmp/mixprec_test_worked_example.ckpt";
    save_checkpoint(path, step, p, state);
    auto other = step.init(p);
    load_checkpoint(path, step, p, other);
    CHECK(other.field<1>("large_noise_steps").to_host() == counts);
    CHECK(other.scalars<1>().sigma_t == state.scalars<1>().sigma_t);
    std::remove(path.c_str());
  }
}
