// dynamic_loss_scale against reference trajectories
// (tests/data/loss_scale_reference.txt, scripts/reference/loss_scale.py):
// PyTorch GradScaler's update rule, DeepSpeed's hysteresis, and mixprec's
// min/max bounds, over thousands of steps of finite / non-finite gradients.
// Each overflow is an inf or NaN injected at a different position of a
// different parameter; scale, growth tracker, hysteresis and the skip flag
// must equal the reference after every step.
#include <cmath>
#include <cstring>
#include <vector>

#include <doctest/doctest.h>

#include <mixprec/mixprec.hpp>

#include "../support/reference_file.hpp"

using namespace mixprec;

TEST_SUITE("scaling") {
  TEST_CASE("dynamic loss scaling follows the PyTorch and DeepSpeed trajectories exactly") {
    const auto cases = test::read_reference("loss_scale_reference.txt");
    REQUIRE(cases.size() >= 20);
    parameters<half, half> p;
    p.add("w", {3, 7});
    p.add("b", {7});
    p.add("s", {1});
    p.finalize();
    std::vector<half> clean(p.padded_size());
    for (std::size_t i = 0; i < clean.size(); ++i) clean[i] = convert<half>(0.25f * static_cast<float>(i % 9) - 1.0f);
    for (const auto& c : cases) {
      dynamic_loss_scale scaler;
      scaler.init_scale = static_cast<float>(c.number("init_scale"));
      scaler.growth_factor = c.number("growth_factor");
      scaler.backoff_factor = c.number("backoff_factor");
      scaler.growth_interval = static_cast<std::uint32_t>(c.number("growth_interval"));
      scaler.hysteresis = static_cast<std::uint32_t>(c.number("hysteresis"));
      scaler.consecutive_hysteresis = c.number("consecutive_hysteresis") != 0;
      scaler.min_scale = static_cast<float>(c.number("min_scale"));
      scaler.max_scale = static_cast<float>(c.number("max_scale"));
      const bool pytorch = c.text("algorithm") == "pytorch";
      const auto step = chain(scaler);
      auto state = step.init(p);
      std::size_t wrong = 0, first_wrong = 0, n = 0;
      for (const auto* line : c.all("step")) {
        detail::write_to_device(clean.data(), p.grad_data(), clean.size());
        const bool overflow = line->number(0) != 0;
        if (overflow) {
          // A different parameter and position each time.
          const auto& q = p[n % p.count()];
          const half bad = convert<half>(n % 3 == 0 ? NAN : (n % 3 == 1 ? INFINITY : -INFINITY));
          detail::write_to_device(&bad, p.grad_data() + q.offset + (n * 7) % q.size, 1);
        }
        step.transform_gradients(p, state);
        const auto s = state.scalars<0>();
        const bool ok = s.scale == static_cast<float>(line->number(1)) &&
                        (pytorch ? s.growth_tracker == static_cast<std::uint32_t>(line->number(2))
                                 : s.hysteresis_left == static_cast<std::uint32_t>(line->number(3))) &&
                        state.last_step_skipped() == (line->number(4) != 0) &&
                        s.inv_scale == static_cast<float>(1.0 / static_cast<double>(s.scale));
        if (!ok && wrong++ == 0) first_wrong = n + 1;
        ++n;
      }
      INFO("case " << c.name << ": " << wrong << " of " << n << " steps differ, first at step " << first_wrong);
      CHECK(n == static_cast<std::size_t>(c.number("steps")));
      CHECK(wrong == 0);
    }
  }

  TEST_CASE("the loss scale is on the device for the backward pass to read") {
    parameters<half> p;
    p.add("w", {4});
    p.finalize();
    const auto step = chain(dynamic_loss_scale{});
    auto state = step.init(p);
    const float* device_scale = state.loss_scale_data();
    float host = 0;
    detail::copy_to_host(device_scale, &host, 1);
    CHECK(host == 65536.0f);
    CHECK(state.loss_scale() == 65536.0f);
  }
}
