// Loss-scale underflow cannot turn weights into NaN: the scale stops at its
// floor (the smallest normal float by default), every step whose unscaled
// gradients are non-finite is skipped whatever else is in the chain, and
// scales that would be subnormal, zero or whose reciprocal overflows are
// refused. A 10^5-step fp16 run with 1% overflowing steps follows a
// transcription of PyTorch's GradScaler (with the floor) at every step.
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <vector>

#include <doctest/doctest.h>

#include <mixprec/mixprec.hpp>

#include "../support/errors.hpp"
#include "../support/synthetic.hpp"

using namespace mixprec;

namespace {

// torch._amp_update_scale_ (aten/src/ATen/native/cpu/AmpGradScalerKernels.cpp),
// transcribed: float scale, double factors, float(double(scale) * factor);
// plus mixprec's floor on backoff.
struct grad_scaler_reference {
  float scale = 65536.0f;
  std::uint32_t tracker = 0;
  double growth = 2.0, backoff = 0.5;
  std::uint32_t interval = 2000;
  float floor = FLT_MIN;
  void update(bool found_inf) {
    if (found_inf) {
      const float backed = static_cast<float>(static_cast<double>(scale) * backoff);
      scale = backed < floor ? floor : backed;
      tracker = 0;
    } else if (tracker + 1 == interval) {
      const float grown = static_cast<float>(static_cast<double>(scale) * growth);
      if (std::isfinite(grown)) scale = grown;
      tracker = 0;
    } else {
      ++tracker;
    }
  }
};

bool any_non_finite(const std::vector<float>& v) {
  for (float x : v)
    if (!std::isfinite(x)) return true;
  return false;
}

}  // namespace

TEST_SUITE("scaling") {
  TEST_CASE("scales that are subnormal or zero or whose reciprocal overflows are refused") {
    parameters<half, half> p;
    p.add("w", {4});
    p.finalize();
    auto message = [&](auto component) { return test::error_message([&] { (void)chain(component).init(p); }); };
    dynamic_loss_scale d;
    d.init_scale = 1e-39f;  // subnormal
    CHECK(test::contains(message(d), "init_scale must be finite and at least 2^-126"));
    d = {};
    d.min_scale = 1e-40f;
    CHECK(test::contains(message(d), "min_scale must be finite and at least 2^-126"));
    d = {};
    d.min_scale = 0.0f;
    CHECK(test::contains(message(d), "min_scale must be finite and at least 2^-126"));
    d = {};
    d.growth_factor = INFINITY;
    CHECK(test::contains(message(d), "growth_factor must be finite and greater than 1"));
    d = {};
    d.growth_factor = NAN;
    CHECK(test::contains(message(d), "growth_factor must be finite and greater than 1"));
    d = {};
    d.backoff_factor = 0.0;
    CHECK(test::contains(message(d), "backoff_factor must lie in (0, 1)"));
    CHECK(test::contains(message(static_loss_scale{1e-39f}), "scale must be finite and at least 2^-126"));
    CHECK(test::contains(message(static_loss_scale{0.0f}), "scale must be finite and at least 2^-126"));
    CHECK(test::contains(message(static_loss_scale{INFINITY}), "scale must be finite and at least 2^-126"));
    CHECK(dynamic_loss_scale{}.min_scale == FLT_MIN);
  }

  TEST_CASE(
      "the scale stops at its floor and a step whose unscaled gradient overflows is skipped with or without a "
      "clipper") {
    parameters<half, half> p;
    p.add("w", {5});
    p.finalize();
    p.from_host(role::master, {0.5f, -0.25f, 1.0f, 2.0f, -1.0f});
    dynamic_loss_scale scaler;
    scaler.init_scale = 0x1p-100f;
    const auto plain = chain(scaler, sgd(sgd_options{}));
    const auto clipped = chain(scaler, clip_by_global_norm{1.0f}, sgd(sgd_options{}));
    auto run = [&](const auto& step) {
      parameters<half, half> q;
      q.add("w", {5});
      q.finalize();
      q.from_host(role::master, p.to_host(role::master));
      auto state = step.init(q);
      // 60 overflowing steps: 2^-100 halves down to the floor and stays there.
      for (int t = 0; t < 60; ++t) {
        q.from_host(role::grad, {1.0f, INFINITY, 0.0f, 0.0f, 0.0f});
        step.apply(q, state);
        CHECK(state.last_step_skipped());
      }
      CHECK(state.loss_scale() == FLT_MIN);
      // At the floor the reciprocal is 2^126: a finite fp16 gradient of 8
      // unscales to 2^129 = inf, so the step must be skipped ...
      q.from_host(role::grad, {8.0f, 0.0f, 0.0f, 0.0f, 0.0f});
      const std::vector<float> before = q.to_host(role::master);
      step.apply(q, state);
      CHECK(state.last_step_skipped());
      CHECK(q.to_host(role::master) == before);
      // ... and one that unscales to a finite value proceeds.
      q.from_host(role::grad, {0.0f, 0.0f, 0.0f, 0.0f, 0.0f});
      step.apply(q, state);
      CHECK_FALSE(state.last_step_skipped());
      CHECK_FALSE(any_non_finite(q.to_host(role::master)));
      CHECK_FALSE(any_non_finite(q.to_host(role::model)));
      CHECK(state.loss_scale() >= FLT_MIN);
    };
    SUBCASE("without a clipper") { run(plain); }
    SUBCASE("with a clipper") { run(clipped); }
  }
}

// Long: its own label, so that quick runs can leave it out (ctest -LE long).
TEST_SUITE("long") {
  TEST_CASE("10^5 fp16 steps with 1% overflows follow GradScaler with its floor with and without a clipper") {
    constexpr std::size_t n = 24;
    constexpr int steps = 100000;
    auto run = [&](const auto& step) {
      parameters<half, half> p;
      p.add("w", {n});
      p.finalize();
      p.initialize_all(init::normal{0.0, 0.1}, 1);
      auto state = step.init(p);
      grad_scaler_reference ref;
      std::size_t mismatched_scale = 0, mismatched_skip = 0, skipped = 0, at_floor = 0;
      std::vector<half> g(p.padded_size());
      for (int t = 1; t <= steps; ++t) {
        const float scale = ref.scale;
        bool overflow = false;
        for (std::size_t i = 0; i < n; ++i) {
          g[i] = convert<half>(scale * 1e-3f * test::unit_value(std::uint64_t(t) * 131 + i));
          overflow = overflow || !std::isfinite(to_float(g[i]) * (1.0f / scale));
        }
        if (test::mix64(std::uint64_t(t)) % 100 == 0) {  // 1% of the steps overflow in the backward pass
          g[test::mix64(std::uint64_t(t) + 7) % n] = convert<half>(INFINITY);
          overflow = true;
        }
        detail::write_to_device(g.data(), p.grad_data(), g.size());
        step.apply(p, state);
        ref.update(overflow);
        skipped += overflow;
        at_floor += ref.scale == FLT_MIN;
        mismatched_skip += state.last_step_skipped() != overflow;
        mismatched_scale += state.loss_scale() != ref.scale;
      }
      CHECK(mismatched_skip == 0);
      CHECK(mismatched_scale == 0);
      CHECK(skipped > 500);
      CHECK(at_floor > 1000);  // the run spends a long time at the floor, where PyTorch's scale would be 0
      CHECK_FALSE(any_non_finite(p.to_host(role::master)));
      CHECK_FALSE(any_non_finite(p.to_host(role::model)));
    };
    sgd_options o;
    o.lr = 1e-3f;
    SUBCASE("scaler + sgd") { run(chain(dynamic_loss_scale{}, sgd(o))); }
    SUBCASE("scaler + clip + sgd") { run(chain(dynamic_loss_scale{}, clip_by_global_norm{1.0f}, sgd(o))); }
  }
}
