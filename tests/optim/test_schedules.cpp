// Learning-rate schedules against their closed forms, and their evaluation on
// the device from the step count (a skipped step does not advance it); decay
// factors that grow the rate are refused, a warm-up of 0 steps is none.
#include <cmath>
#include <vector>

#include <doctest/doctest.h>

#include <mixprec/mixprec.hpp>

#include "../support/errors.hpp"

using namespace mixprec;

TEST_SUITE("optim") {
  TEST_CASE("schedules follow their closed forms") {
    const double pi = 3.14159265358979323846;
    for (std::uint64_t s : {0ull, 1ull, 7ull, 99ull, 100ull, 250ull, 1000ull, 5000ull}) {
      CAPTURE(s);
      CHECK(constant_schedule{0.5f}(s) == 0.5f);
      const double lin = s >= 100 ? 1.0 : 0.2 + 0.8 * s / 100.0;
      CHECK(linear_schedule{0.2f, 1.0f, 100}(s) == doctest::Approx(lin).epsilon(1e-6));
      const double cosd = 0.1 * ((1 - 0.05) * 0.5 * (1 + std::cos(pi * std::min<double>(s, 1000) / 1000)) + 0.05);
      CHECK(cosine_decay{0.1f, 1000, 0.05f}(s) == doctest::Approx(cosd).epsilon(1e-6));
      CHECK(step_decay{1.0f, 100, 0.5f}(s) == doctest::Approx(std::pow(0.5, double(s / 100))).epsilon(1e-6));
      CHECK(exponential_decay{2.0f, 0.999f}(s) == doctest::Approx(2.0 * std::pow(0.999, double(s))).epsilon(1e-5));
      CHECK(inverse_time_decay{0.01f, 0.1f}(s) == doctest::Approx(0.01 / (1 + 0.1 * s)).epsilon(1e-6));
      const warmup<cosine_decay> wc{100, 0.0f, cosine_decay{0.1f, 1000, 0.0f}};
      const double warm =
          s < 100 ? 0.1 * s / 100.0 : 0.1 * 0.5 * (1 + std::cos(pi * std::min<double>(s - 100, 1000) / 1000));
      CHECK(wc(s) == doctest::Approx(warm).epsilon(1e-6));
    }
  }

  TEST_CASE("the schedule is evaluated on the device from the step count that skipped steps do not advance") {
    parameters<float> p;
    p.add("w", {4});
    p.finalize();
    sgd_options o;
    const auto step = chain(skip_if_non_finite{}, sgd(o, step_decay{1.0f, 1, 0.5f}));
    auto state = step.init(p);
    std::vector<float> g(p.padded_size(), 1.0f);
    std::vector<float> expected;
    double w = 0;
    for (int t = 1; t <= 6; ++t) {
      std::vector<float> gt = g;
      const bool bad = t == 3;
      if (bad) gt[1] = NAN;
      detail::write_to_device(gt.data(), p.grad_data(), gt.size());
      step.apply(p, state);
      if (!bad) w -= std::pow(0.5, double(state.count() - 1));
      float got;
      detail::copy_to_host(p.master_data(), &got, 1);
      CAPTURE(t);
      CHECK(got == static_cast<float>(w));
      CHECK(state.last_step_skipped() == bad);
    }
    CHECK(state.count() == 5);
  }

  TEST_CASE("decay factors above 1 are refused and a warm-up of 0 steps is no warm-up") {
    parameters<float> p;
    p.add("w", {4});
    p.finalize();
    sgd_options o;
    // gamma > 1 grows the rate without bound (every weight ends non-finite).
    CHECK(test::contains(test::error_message([&] {
                           step_decay{1e-2f, 10, 1.5f}.validate();
                         }),
                         "step_decay: gamma must lie in [0, 1] (got 1.5)"));
    CHECK(test::contains(test::error_message([&] {
                           exponential_decay{1e-2f, 1.0001f}.validate();
                         }),
                         "exponential_decay: gamma must lie in (0, 1] (got 1.0001)"));
    CHECK(test::contains(test::error_message([&] {
                           (void)chain(sgd(o, exponential_decay{1e-2f, 2.0f})).init(p);
                         }),
                         "exponential_decay: gamma must lie in (0, 1]"));
    CHECK(test::contains(test::error_message([&] {
                           (void)chain(sgd(o, step_decay{1e-2f, 1, INFINITY})).init(p);
                         }),
                         "step_decay: gamma must lie in [0, 1]"));
    // The boundaries: a constant rate, and a rate that drops to 0.
    CHECK(test::error_message([&] { step_decay{1e-2f, 10, 1.0f}.validate(); }) == "<no exception>");
    CHECK(test::error_message([&] { step_decay{1e-2f, 10, 0.0f}.validate(); }) == "<no exception>");
    CHECK(test::error_message([&] { exponential_decay{1e-2f, 1.0f}.validate(); }) == "<no exception>");

    // No warm-up: the schedule after it from the first step.
    const warmup<step_decay> none{0, 0.0f, step_decay{0.5f, 2, 0.5f}};
    CHECK(test::error_message([&] { none.validate(); }) == "<no exception>");
    for (std::uint64_t s : {0ull, 1ull, 2ull, 5ull}) CHECK(none(s) == step_decay{0.5f, 2, 0.5f}(s));
    const auto warm = chain(sgd(o, none));
    const auto plain = chain(sgd(o, step_decay{0.5f, 2, 0.5f}));
    parameters<float> q;
    q.add("w", {4});
    q.finalize();
    auto sw = warm.init(p);
    auto sp = plain.init(q);
    const std::vector<float> g(p.padded_size(), 1.0f);
    for (int t = 1; t <= 5; ++t) {
      detail::write_to_device(g.data(), p.grad_data(), g.size());
      detail::write_to_device(g.data(), q.grad_data(), g.size());
      warm.apply(p, sw);
      plain.apply(q, sp);
    }
    CHECK(p.to_host(role::master) == q.to_host(role::master));
    CHECK(p.to_host(role::master)[0] == -(0.5f + 0.5f + 0.25f + 0.25f + 0.125f));
  }
}
