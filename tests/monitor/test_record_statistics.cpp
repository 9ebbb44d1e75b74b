// record_statistics writes, every step and without a host synchronisation,
// the loss scale in effect, the skip and non-finite flags, the unscaled
// gradient norm, the clip coefficient and learning rate the other
// components report, the fractions of the stored fp16 gradients that are
// exactly zero and that are fp16 subnormals (counted apart), and
// per-parameter gradient norms, into a ring the host reads later; each
// checked against a direct computation from the same gradients.
#include <cmath>
#include <vector>

#include <doctest/doctest.h>

#include <mixprec/mixprec.hpp>

#include "../support/errors.hpp"

using namespace mixprec;

TEST_SUITE("monitor") {
  TEST_CASE("record_statistics logs every step's scale and flags and norms and zeros and subnormals") {
    parameters<half, half> p;
    p.add("w", {10, 10});
    p.add("b", {10});
    p.finalize();
    statistics_log log(4, p.count());
    dynamic_loss_scale scaler;
    scaler.init_scale = 1024.0f;
    adamw_options o;
    o.lr = 1e-3f;
    const auto step = chain(scaler, log.recorder<true>(), clip_by_global_norm{0.5f}, adamw(o));
    CHECK(decltype(step)::plan::passes() == 2);  // the recorder adds no pass
    auto state = step.init(p);
    struct expect {
      double scale, norm, zeros, subnormals;
      std::vector<double> norms;
      bool skipped;
    };
    std::vector<expect> want;
    for (int t = 1; t <= 6; ++t) {
      const float scale = state.loss_scale();
      std::vector<float> g(p.element_count());
      // Scaled by 1024: 1e-9 is an fp16 subnormal, 1e-12 flushes to zero, and
      // every 11th gradient is an exact zero.
      for (std::size_t i = 0; i < g.size(); ++i)
        g[i] = i % 7 == 0    ? 1e-9f * scale
               : i % 11 == 0 ? 0.0f
               : i % 13 == 0 ? 1e-12f * scale
                             : scale * 0.01f * std::sin(0.37f * (i + t));
      if (t == 3) g[4] = INFINITY;
      p.from_host(role::grad, g);
      const std::vector<float> stored = p.to_host(role::grad);
      expect e{scale, 0, 0, 0, {0, 0}, t == 3};
      for (std::size_t i = 0; i < stored.size(); ++i) {
        const double u = static_cast<double>(stored[i]) / scale;
        e.norm += u * u;
        e.norms[i < 100 ? 0 : 1] += u * u;
        e.zeros += stored[i] == 0.0f ? 1 : 0;
        e.subnormals += stored[i] != 0.0f && std::fabs(stored[i]) < format_traits<half>::min_normal() ? 1 : 0;
      }
      e.norm = std::sqrt(e.norm);
      for (double& n : e.norms) n = std::sqrt(n);
      REQUIRE(e.zeros > 0);
      REQUIRE(e.subnormals > 0);
      e.zeros /= static_cast<double>(stored.size());
      e.subnormals /= static_cast<double>(stored.size());
      want.push_back(e);
      step.apply(p, state);
    }
    const auto records = log.read();
    REQUIRE(records.size() == 4);  // the last four of six
    CHECK(log.recorded() == 6);
    for (std::size_t k = 0; k < records.size(); ++k) {
      const auto& r = records[k];
      const expect& e = want[k + 2];
      INFO("record " << k);
      CHECK(r.loss_scale == e.scale);
      CHECK(r.skipped == e.skipped);
      CHECK(r.non_finite == e.skipped);
      CHECK(r.learning_rate == doctest::Approx(1e-3));
      if (!e.skipped) {
        CHECK(r.gradient_norm == doctest::Approx(e.norm).epsilon(1e-6));
        CHECK(r.clip_coefficient == doctest::Approx(std::min(1.0, 0.5 / (e.norm + 1e-6))).epsilon(1e-6));
        REQUIRE(r.parameter_norms.size() == 2);
        CHECK(r.parameter_norms[0] == doctest::Approx(e.norms[0]).epsilon(1e-6));
        CHECK(r.parameter_norms[1] == doctest::Approx(e.norms[1]).epsilon(1e-6));
      }
      CHECK(r.zero_fraction == e.zeros);
      CHECK(r.subnormal_fraction == e.subnormals);
    }
    CHECK(records.back().step == state.count());
  }

  TEST_CASE("a recorder needs a log that fits the arena") {
    parameters<float> p;
    p.add("w", {4});
    p.add("b", {4});
    p.finalize();
    statistics_log small(8, 1);
    const auto step = chain(small.recorder<true>(), sgd(sgd_options{}));
    CHECK(test::contains(test::error_message([&] { (void)step.init(p); }),
                         "the log holds 1 parameter norms but the arena has 2"));
    const auto bare = chain(record_statistics<>{}, sgd(sgd_options{}));
    CHECK(test::contains(test::error_message([&] { (void)bare.init(p); }), "make it with statistics_log::recorder()"));
  }
}
