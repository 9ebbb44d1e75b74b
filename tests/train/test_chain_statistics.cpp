// The fused statistics pass of a scaler + clipper chain: the non-finite flag
// and every norm come from one read of the gradients; injecting inf or NaN
// at any position of any parameter skips the step and changes nothing; norms
// of low-precision gradients accumulate wider than the format; unit-wise
// clipping against a direct implementation; zero and subnormal counts of
// clipped values.
#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include <doctest/doctest.h>

#include <mixprec/mixprec.hpp>

#include "../support/device.hpp"
#include "../support/errors.hpp"
#include "../support/formats.hpp"
#include "../support/random.hpp"

using namespace mixprec;

namespace {

template <class Arena>
void set_grads(Arena& p, const std::vector<float>& values) {
  using G = typename Arena::grad_type;
  std::vector<G> g(values.size());
  for (std::size_t i = 0; i < values.size(); ++i) g[i] = convert<G>(values[i]);
  detail::write_to_device(g.data(), p.grad_data(), g.size());
}

// Random gradients in the arena's padded layout (padding stays zero).
template <class Arena>
std::vector<float> random_grads(Arena& p, unsigned seed, float scale) {
  std::vector<float> v(p.padded_size(), 0.0f);
  std::mt19937 gen(seed);
  std::normal_distribution<float> d(0.0f, scale);
  for (const auto& q : p.list())
    for (std::size_t i = 0; i < q.size; ++i) v[q.offset + i] = to_float(convert<typename Arena::grad_type>(d(gen)));
  return v;
}

}  // namespace

// Counts the zeros and the subnormals of its input (into its scalars).
// (Outside the anonymous namespace: nvcc warns about the protocol's
// detection of member templates of a type with internal linkage.)
namespace counting {
struct count_small_values {
  static constexpr const char* name = "count_small_values";
  static constexpr statistic statistics[] = {{"zeros", scope::global, reduction::zero_count, source::input},
                                             {"subnormals", scope::global, reduction::subnormal_count, source::input}};
  struct scalars {
    double zeros, subnormals;
  };
  scalars initial_scalars() const { return {0, 0}; }
  template <class Ctx>
  MIXPREC_HOST_DEVICE void decide(scalars& s, const Ctx& ctx) const {
    s.zeros = ctx.statistic(stat_id<0>{});
    s.subnormals = ctx.statistic(stat_id<1>{});
  }
  template <class V>
  static void visit_scalars(scalars& s, V&& v) {
    v("zeros", s.zeros);
    v("subnormals", s.subnormals);
  }
};
}  // namespace counting

TEST_SUITE("train") {
  TEST_CASE_TEMPLATE("an inf or NaN anywhere skips the step and changes nothing", G, float, half, bfloat16) {
    parameters<bfloat16, G> p;
    p.add("w", {3, 5});
    p.add("b", {5});
    p.add("one", {1});
    p.add("v", {2, 2, 3});
    p.finalize();
    const std::vector<float> clean = random_grads(p, 1, 100.0f);
    dynamic_loss_scale scaler;
    scaler.init_scale = 1024.0f;
    scaler.growth_interval = 3;
    const auto step = chain(scaler, clip_by_global_norm{1.0f});
    for (float bad : {INFINITY, -INFINITY, NAN}) {
      for (const auto& q : p.list())
        for (std::size_t i = 0; i < q.size; ++i) {
          auto state = step.init(p);
          // Two good steps build up the growth tracker first.
          for (int k = 0; k < 2; ++k) {
            set_grads(p, clean);
            step.transform_gradients(p, state);
          }
          std::vector<float> g = clean;
          g[q.offset + i] = bad;
          set_grads(p, g);
          const auto before = test::to_host(p.grad_data(), p.padded_size());
          step.transform_gradients(p, state);
          const auto after = test::to_host(p.grad_data(), p.padded_size());
          INFO("value " << bad << " in " << q.name << "[" << i << "]");
          CHECK(state.last_step_skipped());
          CHECK(std::memcmp(before.data(), after.data(), before.size() * sizeof(G)) == 0);
          const auto s = state.template scalars<0>();
          CHECK(s.scale == 512.0f);
          CHECK(s.growth_tracker == 0);
          CHECK(state.count() == 2);
          CHECK(state.step().skipped_total == 1);
        }
    }
  }

  TEST_CASE_TEMPLATE("the global norm of low-precision gradients accumulates wider than fp32", G, float, half,
                     bfloat16) {
    // 2^20 equal elements: a float accumulator would lose the small ones.
    parameters<float, G> p;
    p.add("big", {1});
    p.add("many", {1 << 20});
    p.finalize();
    std::vector<float> g(p.padded_size(), 0.0f);
    g[p["big"].offset] = 1024.0f;
    for (std::size_t i = 0; i < (1u << 20); ++i) g[p["many"].offset + i] = 0.0625f;
    set_grads(p, g);
    for (float order : {1.0f, 2.0f, 3.5f, infinity_norm}) {
      const auto step = chain(clip_by_global_norm{1.0f, order});
      auto state = step.init(p);
      set_grads(p, g);
      step.transform_gradients(p, state);
      double ref;
      if (order == infinity_norm) ref = 1024.0;
      else
        ref = std::pow(std::pow(1024.0, double(order)) + std::ldexp(std::pow(0.0625, double(order)), 20), 1.0 / order);
      const float norm = state.template scalars<0>().norm;
      INFO("p = " << order);
      CHECK(std::fabs(norm - ref) <= std::ldexp(ref, -23));
    }
  }

  TEST_CASE("unscaling feeds the norm: the clip sees the unscaled gradient") {
    parameters<float, half> p;
    p.add("w", {100});
    p.finalize();
    std::vector<float> g(p.padded_size(), 0.0f);
    for (int i = 0; i < 100; ++i) g[i] = 512.0f;  // scaled by 2^10: unscaled 0.5 each, norm 5
    set_grads(p, g);
    dynamic_loss_scale scaler;
    scaler.init_scale = 1024.0f;
    const auto step = chain(scaler, clip_by_global_norm{1.0f});
    auto state = step.init(p);
    step.transform_gradients(p, state);
    CHECK(state.scalars<1>().norm == doctest::Approx(5.0).epsilon(1e-6));
    const auto out = test::to_host(p.grad_data(), 100);
    CHECK(to_float(out[0]) == doctest::Approx(0.5 * 1.0 / (5.0 + 1e-6)).epsilon(format_traits<half>::unit_roundoff()));
  }

  TEST_CASE("clip_by_value and a scaler before a global clip are applied in the statistics pass") {
    parameters<float> p;
    p.add("w", {4});
    p.finalize();
    set_grads(p, {8.0f, -16.0f, 2.0f, 0.5f});
    static_loss_scale scaler;
    scaler.scale = 2.0f;
    const auto step = chain(scaler, clip_by_value{2.0f}, clip_by_global_norm{100.0f});
    auto state = step.init(p);
    step.transform_gradients(p, state);
    // unscaled: 4, -8, 1, 0.25; clipped to [-2, 2]: 2, -2, 1, 0.25
    CHECK(state.scalars<2>().norm == doctest::Approx(std::sqrt(4.0 + 4.0 + 1.0 + 0.0625)).epsilon(1e-7));
    const auto out = test::to_host(p.grad_data(), 4);
    CHECK(out == std::vector<float>{2.0f, -2.0f, 1.0f, 0.25f});
  }

  TEST_CASE("a second global clip sees the first one's multiplier") {
    parameters<float> p;
    p.add("w", {2});
    p.finalize();
    set_grads(p, {3.0f, 4.0f});  // norm 5
    const auto step = chain(clip_by_global_norm{2.5f}, clip_by_global_norm{1.0f});
    auto state = step.init(p);
    step.transform_gradients(p, state);
    CHECK(state.scalars<0>().norm == doctest::Approx(5.0));
    CHECK(state.scalars<1>().norm == doctest::Approx(2.5).epsilon(1e-6));  // measured after the first clip
    const auto out = test::to_host(p.grad_data(), 2);
    CHECK(out[0] == doctest::Approx(0.6).epsilon(1e-5));
    CHECK(out[1] == doctest::Approx(0.8).epsilon(1e-5));
  }

  TEST_CASE("a subnormal count after a global clip counts the clipped values") {
    // Clipping by 2^-8 / sqrt(10) moves 2^-120, -2^-120 and 2^-118 below
    // float's smallest normal 2^-126; 2^-127 was subnormal already; +0 and -0
    // stay zeros. Counted before the clip's factor there would be 1 subnormal.
    parameters<float> p;
    p.add("w", {8});
    p.finalize();
    set_grads(p, {1.0f, 0.0f, -0.0f, 0x1p-120f, -0x1p-120f, 0x1p-118f, 3.0f, 0x1p-127f});
    const auto step = chain(clip_by_global_norm{0x1p-8f}, counting::count_small_values{});
    // The norm, then the counts of the clipped values, then the update.
    CHECK(decltype(step)::plan::passes() == 3);
    auto state = step.init(p);
    step.transform_gradients(p, state);
    const std::vector<float> out = test::to_host(p.grad_data(), 8);
    double zeros = 0, subnormals = 0;
    for (const float v : out) {
      zeros += v == 0.0f ? 1 : 0;
      subnormals += v != 0.0f && std::fabs(v) < format_traits<float>::min_normal() ? 1 : 0;
    }
    REQUIRE(zeros == 2);
    REQUIRE(subnormals == 4);
    CHECK(state.scalars<1>().zeros == zeros);
    CHECK(state.scalars<1>().subnormals == subnormals);
  }

  TEST_CASE_TEMPLATE("adaptive clipping matches a direct unit-wise implementation", G, float, bfloat16) {
    parameters<float, G> p;
    p.add("conv", {4, 3, 2, 2});
    p.add("fc", {5, 7});
    p.add("bias", {5});
    p.add("scalar", {1});
    p.finalize();
    p.initialize_all(init::normal{0.0, 0.2}, 3);
    std::vector<float> g = random_grads(p, 7, 0.05f);
    // Make some units clip and others not.
    for (std::size_t i = 0; i < 12; ++i)
      g[p["conv"].offset + i] = to_float(convert<G>(g[p["conv"].offset + i] * 40.0f));
    set_grads(p, g);
    const float clipping = 0.1f, eps = 1e-3f;
    const auto step = chain(clip_adaptive{clipping, eps});
    auto state = step.init(p);
    step.transform_gradients(p, state);
    const auto w = test::to_host(p.master_data(), p.padded_size());
    const auto out = test::to_host(p.grad_data(), p.padded_size());
    std::size_t clipped_units = 0;
    for (const auto& q : p.list()) {
      const std::size_t units = q.shape.rank() >= 2 ? q.shape[0] : 1;
      const std::size_t len = q.size / units;
      for (std::size_t u = 0; u < units; ++u) {
        double gn = 0, wn = 0;
        for (std::size_t i = 0; i < len; ++i) {
          gn += double(g[q.offset + u * len + i]) * g[q.offset + u * len + i];
          wn += double(w[q.offset + u * len + i]) * w[q.offset + u * len + i];
        }
        gn = std::sqrt(gn);
        wn = std::sqrt(wn);
        const double max = std::max(wn, double(eps)) * clipping;
        const double coef = gn < max ? 1.0 : max / std::max(gn, 1e-6);
        clipped_units += coef < 1.0;
        for (std::size_t i = 0; i < len; ++i) {
          const double want = g[q.offset + u * len + i] * coef;
          const double got = to_float(out[q.offset + u * len + i]);
          INFO(q.name << " unit " << u << " element " << i);
          CHECK(std::fabs(got - want) <= (format_traits<G>::unit_roundoff() + 1e-6) * std::fabs(want) + 1e-30);
        }
      }
    }
    CHECK(clipped_units > 0);
  }

  TEST_CASE("invalid hyperparameters are clear errors at init") {
    parameters<float> p;
    p.add("w", {4});
    p.finalize();
    auto message = [&](auto component) { return test::error_message([&] { (void)chain(component).init(p); }); };
    dynamic_loss_scale d;
    d.growth_factor = 1.0;
    CHECK(test::contains(message(d), "growth_factor must be finite and greater than 1"));
    d = {};
    d.backoff_factor = 1.0;
    CHECK(test::contains(message(d), "backoff_factor must lie in (0, 1)"));
    d = {};
    d.growth_interval = 0;
    CHECK(test::contains(message(d), "growth_interval must be at least 1"));
    d = {};
    d.init_scale = -1.0f;
    CHECK(test::contains(message(d), "init_scale must be finite and at least 2^-126"));
    d.init_scale = INFINITY;
    CHECK(test::contains(message(d), "init_scale must be finite and at least 2^-126"));
    CHECK(test::contains(message(clip_by_global_norm{0.0f}), "max_norm must be positive"));
    CHECK(test::contains(message(clip_by_global_norm{1.0f, 0.5f}), "order p must be >= 1"));
    CHECK(test::contains(message(clip_by_value{-1.0f}), "limit must be positive"));
    CHECK(test::contains(message(clip_adaptive{0.0f}), "clipping must be positive"));
  }
}
