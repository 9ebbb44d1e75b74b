// Counts the passes a step makes over the gradient arena, from the library's
// own pass log (MIXPREC_TRACE_PASSES, set for this executable only).
#include <vector>

#include <doctest/doctest.h>

#include <mixprec/mixprec.hpp>

using namespace mixprec;

namespace {

struct pass_counts {
  int gradient_reads = 0, before_update = 0;
};

template <class F>
pass_counts count_passes(F&& step) {
  detail::pass_log().clear();
  step();
  pass_counts c;
  bool updated = false;
  for (const auto& r : detail::pass_log()) {
    c.gradient_reads += r.reads_gradients;
    if (!updated && r.reads_gradients && std::string(r.name).rfind("update", 0) != 0) ++c.before_update;
    updated = updated || std::string(r.name).rfind("update", 0) == 0;
  }
  return c;
}

}  // namespace

TEST_SUITE("train") {
  TEST_CASE("a scaler and clippers read the gradients once before the update pass") {
    parameters<bfloat16, bfloat16> p;
    for (int k = 0; k < 50; ++k) p.add("p" + std::to_string(k), {static_cast<std::size_t>(10 + 37 * k)});
    p.finalize();
    p.initialize_all(init::normal{0.0, 1.0}, 1);
    const auto step =
        chain(dynamic_loss_scale{}, clip_by_value{10.0f}, clip_by_global_norm{1.0f}, clip_adaptive{0.01f});
    auto state = step.init(p);
    const pass_counts c = count_passes([&] { step.transform_gradients(p, state); });
    CHECK(c.before_update == 1);
    CHECK(c.gradient_reads == 2);  // statistics + the pass that applies the decisions
    CHECK(detail::pass_log().size() == 2);
  }

  TEST_CASE("a purely element-wise chain makes one pass and a guard adds the statistics pass") {
    parameters<float> p;
    p.add("w", {1000});
    p.finalize();
    const auto step = chain(static_loss_scale{128.0f}, clip_by_value{1.0f});
    auto state = step.init(p);
    const pass_counts c = count_passes([&] { step.transform_gradients(p, state); });
    CHECK(c.gradient_reads == 1);
    CHECK(c.before_update == 0);
    const auto guarded = chain(static_loss_scale{128.0f}, skip_if_non_finite{}, clip_by_value{1.0f});
    auto guarded_state = guarded.init(p);
    const pass_counts g = count_passes([&] { guarded.transform_gradients(p, guarded_state); });
    CHECK(g.gradient_reads == 2);
    CHECK(g.before_update == 1);
  }

  TEST_CASE("each optimizer is one pass over the arena and LAMB two") {
    parameters<bfloat16, bfloat16> p;
    for (int k = 0; k < 30; ++k) p.add("p" + std::to_string(k), {static_cast<std::size_t>(5000 + 13 * k)});
    p.finalize();
    auto passes = [&](const auto& step) {
      auto state = step.init(p);
      return count_passes([&] { step.apply(p, state); }).gradient_reads;
    };
    CHECK(passes(sgd(sgd_options{})) == 1);
    CHECK(passes(adam(adam_options{})) == 1);
    CHECK(passes(adamw(adamw_options{})) == 1);
    CHECK(passes(adagrad(adagrad_options{})) == 1);
    CHECK(passes(lion(lion_options{})) == 1);
    CHECK(passes(lamb(lamb_options{})) == 2);  // per-parameter norms of the update, then the update
    CHECK(passes(chain(dynamic_loss_scale{}, clip_by_global_norm{1.0f}, adamw(adamw_options{}))) == 2);
  }
}
