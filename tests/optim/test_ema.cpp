// The EMA of the weights against timm's own code (scripts/reference/ema.py,
// tests/data/ema_reference.txt: timm 1.0.31's ModelEmaV2 with decimal
// decays 0.99, 0.999, 0.9999, and ModelEmaV3 with its warm-up) over 200
// SGD steps, within 1e-6 relative; TensorFlow's num_updates warm-up against
// a float64 transcription of its rule, over completed steps only (not
// skipped ones); the average as a view and through a checkpoint; bad
// hyperparameters refused.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include <mixprec/mixprec.hpp>

#include "../support/errors.hpp"
#include "../support/reference_file.hpp"
#include "../support/synthetic.hpp"

using namespace mixprec;

namespace {

// max |got - want| / max(|want|, largest |want| of the tensor) over one
// reference line; got[offset + i] is element i. The reference values are
// float32 printed with 9 digits: read back as float they are exact.
double worst_relative(const test::reference_line& line, const std::vector<float>& got, std::size_t offset) {
  const std::size_t n = static_cast<std::size_t>(line.number(2));
  double scale = 0, worst = 0;
  for (std::size_t i = 0; i < n; ++i) scale = std::max(scale, std::fabs(line.number(3 + i)));
  for (std::size_t i = 0; i < n; ++i) {
    const double want = static_cast<float>(line.number(3 + i));
    worst = std::max(worst, std::fabs(got.at(offset + i) - want) / std::max(std::fabs(want), scale));
  }
  return worst;
}

}  // namespace

TEST_SUITE("optim") {
  TEST_CASE("the EMA of the weights matches timm's ModelEmaV2 and ModelEmaV3 over 200 steps") {
    const auto cases = test::read_reference("ema_reference.txt");
    REQUIRE(cases.size() == 5);
    const std::vector<shape> shapes = {{4, 5}, {7}, {2, 3, 2}};
    for (const auto& c : cases) {
      const std::string kind = c.text("kind");
      REQUIRE((kind == "v2" || kind == "v3_warmup"));
      parameters<float> p;
      for (std::size_t k = 0; k < shapes.size(); ++k) p.add("p" + std::to_string(k), shapes[k]);
      p.finalize();
      for (std::size_t k = 0; k < shapes.size(); ++k) {
        std::vector<float> w(p[k].size);
        for (std::size_t i = 0; i < w.size(); ++i) w[i] = test::initial_weight(k, i);
        p.from_host(role::master, k, w);
      }
      sgd_options o;
      o.lr = static_cast<float>(c.number("lr"));
      // The decimal decay timm was given, as a double.
      const ema_of_weights ema(c.number("decay"), kind == "v2" ? ema_warmup::none : ema_warmup::timm_v3);
      const auto step = chain(sgd(o), ema);
      auto state = step.init(p);
      const auto weights = c.all("weights"), averages = c.all("ema");
      REQUIRE(weights.size() == 30);
      REQUIRE(averages.size() == 30);
      std::size_t next = 0;
      double worst_weight = 0, worst_ema = 0;
      for (std::uint64_t t = 1; t <= 200; ++t) {
        for (std::size_t k = 0; k < shapes.size(); ++k) {
          std::vector<float> g(p[k].size);
          for (std::size_t i = 0; i < g.size(); ++i) g[i] = test::synthetic_gradient(t, k, i, 1.0f);
          p.from_host(role::grad, k, g);
        }
        step.apply(p, state);
        if (next < weights.size() && static_cast<std::uint64_t>(weights[next]->number(0)) == t) {
          const std::vector<float> avg = state.field<4>("ema").to_host();
          for (; next < weights.size() && static_cast<std::uint64_t>(weights[next]->number(0)) == t; ++next) {
            const std::size_t k = static_cast<std::size_t>(weights[next]->number(1));
            REQUIRE(static_cast<std::size_t>(averages[next]->number(1)) == k);
            REQUIRE(static_cast<std::size_t>(weights[next]->number(2)) == p[k].size);
            worst_weight = std::max(worst_weight, worst_relative(*weights[next], p.to_host(role::master, k), 0));
            worst_ema = std::max(worst_ema, worst_relative(*averages[next], avg, p[k].offset));
          }
        }
      }
      REQUIRE(next == weights.size());
      MESSAGE("ema " << c.name << ": weights within " << worst_weight << ", average within " << worst_ema
                     << " relative of timm");
      CHECK(worst_weight == 0.0);  // the same SGD arithmetic as torch's
      CHECK(worst_ema <= 1e-6);
    }
  }

  TEST_CASE("the EMA follows TensorFlow's num_updates warm-up over completed steps only") {
    for (const bool warmup : {false, true}) {
      parameters<float> p;
      p.add("w", {33});
      p.add("b", {5});
      p.finalize();
      p.initialize_all(init::normal{0.0, 0.5}, 4);
      sgd_options o;
      o.lr = 0.1f;
      const double decay = 0.9;
      const auto step = chain(skip_if_non_finite{}, sgd(o),
                              ema_of_weights{decay, warmup ? ema_warmup::tensorflow : ema_warmup::none});
      auto state = step.init(p);
      const std::vector<float> initial = p.to_host(role::master);
      std::vector<double> ema(initial.begin(), initial.end());
      std::uint64_t completed = 0;
      double worst = 0;
      for (int t = 1; t <= 60; ++t) {
        std::vector<float> g(p.element_count());
        for (std::size_t i = 0; i < g.size(); ++i) g[i] = test::unit_value(t * 1009ull + i);
        const bool skip = t % 17 == 0;
        if (skip) g[3] = NAN;
        p.from_host(role::grad, g);
        step.apply(p, state);
        REQUIRE(state.last_step_skipped() == skip);
        if (skip) continue;
        // tf.train.ExponentialMovingAverage(decay, num_updates=n): min(decay, (1 + n) / (10 + n)).
        const double n = static_cast<double>(completed++);
        const double d = warmup ? std::min(decay, (1.0 + n) / (10.0 + n)) : decay;
        const std::vector<float> w = p.to_host(role::master);
        for (std::size_t i = 0; i < ema.size(); ++i) ema[i] = d * ema[i] + (1.0 - d) * w[i];
        const std::vector<float> got = state.field<5>("ema").to_host();
        for (std::size_t k = 0; k < p.count(); ++k)
          for (std::size_t i = 0; i < p[k].size; ++i) {
            const std::size_t flat = (k == 0 ? 0 : p[0].size) + i;
            worst = std::max(worst, std::fabs(got[p[k].offset + i] - ema[flat]));
          }
      }
      INFO("warmup " << warmup);
      // float32 arithmetic against float64 over 57 updates of values below 2.
      CHECK(worst < 1e-6);
      // A checkpoint keeps it.
      const std::string path = "/tmp/mixprec_test_ema.ckpt";
      save_checkpoint(path, step, p, state);
      parameters<float> q;
      q.add("w", {33});
      q.add("b", {5});
      q.finalize();
      auto sq = step.init(q);
      load_checkpoint(path, step, q, sq);
      CHECK(sq.field<5>("ema").to_host() == state.field<5>("ema").to_host());
      std::remove(path.c_str());
    }
  }

  TEST_CASE("the EMA refuses decays and warm-up settings out of range") {
    parameters<float> p;
    p.add("w", {8});
    p.finalize();
    const auto message = [&](const ema_of_weights& e) {
      return test::error_message([&] { (void)chain(sgd(sgd_options{}), e).init(p); });
    };
    CHECK(test::contains(message(ema_of_weights{1.5}), "decay must lie in [0, 1]"));
    CHECK(test::contains(message(ema_of_weights{NAN}), "decay must lie in [0, 1]"));
    ema_of_weights v3{0.999, ema_warmup::timm_v3};
    v3.warmup_gamma = 0.0;
    CHECK(test::contains(message(v3), "warmup_gamma must be finite and positive"));
    v3.warmup_gamma = 1.0;
    v3.warmup_power = -1.0;
    CHECK(test::contains(message(v3), "warmup_power must be finite and positive"));
    v3.warmup_power = 0.75;
    v3.min_decay = 0.9999;
    CHECK(test::contains(message(v3), "min_decay must lie in [0, decay]"));
    v3.min_decay = 0.5;
    CHECK(message(v3) == "<no exception>");
  }
}
