// The EMA of the weights against a float64 transcription of timm's
// ModelEmaV2 (and Optax's ema): the average starts at the initial weights,
// follows every completed step (not skipped or held ones), warms up its
// decay as min(decay, (1 + t) / (10 + t)) when asked, is readable as a view
// and survives a checkpoint round trip.
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include <mixprec/mixprec.hpp>

#include "../support/synthetic.hpp"

using namespace mixprec;

TEST_SUITE("optim") {

TEST_CASE("the EMA of the weights follows timm's ModelEmaV2 with and without warmup") {
  for (const bool warmup : {false, true}) {
    parameters<float> p;
    p.add("w", {33});
    p.add("b", {5});
    p.finalize();
    p.initialize_all(init::normal{0.0, 0.5}, 4);
    sgd_options o;
    o.lr = 0.1f;
    const float decay = 0.9f;
    const auto step = chain(skip_if_non_finite{}, sgd(o), ema_of_weights{decay, warmup});
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
      const double t_before = static_cast<double>(completed++);
      const double d = warmup ? std::min<double>(decay, (1.0 + t_before) / (10.0 + t_before)) : decay;
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

}
