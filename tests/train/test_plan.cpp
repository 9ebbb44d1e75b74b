// The plans of the named optimizers and of mixed chains: how many passes a
// step makes, what each measures and runs, and which later pass recomputes
// a stage read-only; state bytes per parameter of every optimizer.
#include <string>

#include <doctest/doctest.h>

#include <mixprec/mixprec.hpp>

#include "../support/errors.hpp"

using namespace mixprec;

namespace {

template <class Chain>
int passes(const Chain&) {
  return Chain::plan::passes();
}
template <class Chain>
std::string plan_of(const Chain& c) {
  return c.describe();
}

}  // namespace

TEST_SUITE("train") {
  TEST_CASE("plans: the fewest passes the declarations allow") {
    const adamw_options aw{};
    CHECK(passes(sgd(sgd_options{})) == 1);
    CHECK(passes(adamw(aw)) == 1);
    CHECK(passes(chain(static_loss_scale{128.0f}, clip_by_value{1.0f}, sgd(sgd_options{}))) == 1);
    CHECK(passes(chain(dynamic_loss_scale{}, clip_by_global_norm{1.0f}, adamw(aw))) == 2);
    CHECK(passes(lamb(lamb_options{})) == 2);
    CHECK(passes(chain(dynamic_loss_scale{}, clip_by_global_norm{1.0f}, lamb(lamb_options{}))) == 3);
    CHECK(passes(chain(adamw(aw), clip_by_global_norm{1.0f})) == 2);  // a clip of Adam's output: measure, then update
    CHECK(passes(adafactor(adafactor_options{})) == 3);
    CHECK(passes(adam_mini(adam_mini_options{})) == 2);
    CHECK(passes(chain(dynamic_loss_scale{}, every_k{4}, clip_by_global_norm{1.0f}, adamw(aw))) == 3);
    // Two global clips: the second's norm is the first's scaled by its factor, in one pass.
    CHECK(passes(chain(clip_by_global_norm{1.0f}, clip_by_global_norm{0.5f}, sgd(sgd_options{}))) == 2);
    // A clip by value after a global clip: the next norm needs the first clip applied.
    CHECK(passes(chain(clip_by_global_norm{1.0f}, clip_by_value{0.1f}, clip_by_global_norm{0.5f},
                       sgd(sgd_options{}))) == 3);
  }

  TEST_CASE("plans say what each pass runs and measures") {
    const std::string p = plan_of(chain(dynamic_loss_scale{}, clip_by_global_norm{1.0f}, adamw(adamw_options{})));
    CHECK(test::contains(
        p,
        "pass 1 (statistics): runs dynamic_loss_scale; measures dynamic_loss_scale.non_finite "
        "(global non-finite count of its output); clip_by_global_norm.norm (global sum |x|^p of its input)"));
    CHECK(test::contains(p,
                         "then scalar rules: dynamic_loss_scale, clip_by_global_norm, adamw/decoupled_weight_decay, "
                         "adamw/scale_by_adam, adamw/scale_by_learning_rate"));
    CHECK(test::contains(p,
                         "pass 2 (update): runs dynamic_loss_scale, clip_by_global_norm, adamw/scale_by_constant, "
                         "adamw/decoupled_weight_decay, adamw/scale_by_adam, adamw/scale_by_learning_rate; writes the "
                         "weights (round_model_nearest)"));
    // Components are named by their paths, as checkpoints name them.
    const std::string l = plan_of(lamb(lamb_options{}));
    CHECK(test::contains(l, "scalar rules before the first pass: lamb/scale_by_adam, lamb/scale_by_learning_rate"));
    CHECK(test::contains(l,
                         "pass 1 (measure): runs lamb/scale_by_adam, lamb/add_decayed_weights; measures "
                         "lamb/scale_by_trust_ratio.update_sq (per parameter sum |x|^p of its input); "
                         "lamb/scale_by_trust_ratio.weight_sq (per parameter sum |x|^p of the weights)"));
    CHECK(test::contains(l, "recomputes lamb/scale_by_adam read-only"));
    const std::string two = plan_of(chain(clip_by_global_norm{1.0f}, clip_by_global_norm{0.5f}, sgd(sgd_options{})));
    CHECK(test::contains(two, "clip_by_global_norm.norm (global sum |x|^p of its input, scaled by later multipliers)"));
    const std::string w = plan_of(chain(sgd(sgd_options{}), round_model_stochastic{3}));
    CHECK(test::contains(w, "writes the weights (round_model_stochastic)"));
    CHECK(test::contains(w, "runs sgd/scale_by_constant"));
  }

  TEST_CASE("state bytes per parameter of every optimizer") {
    parameters<bfloat16, bfloat16> p;
    p.add("w", {256, 256});
    p.finalize();
    auto bytes = [&](const auto& step) { return step.init(p).bytes_per_parameter(); };
    sgd_options momentum;
    momentum.momentum = 0.9f;
    adam_options amsgrad;
    amsgrad.amsgrad = true;
    CHECK(bytes(sgd(sgd_options{})) == 0.0);
    CHECK(bytes(sgd(momentum)) == 4.0);
    CHECK(bytes(sgd<bfloat16>(momentum)) == 2.0);
    CHECK(bytes(adam(adam_options{})) == 8.0);
    CHECK(bytes(adam(amsgrad)) == 12.0);
    CHECK(bytes(adamw(adamw_options{})) == 8.0);
    CHECK(bytes(adamw<bfloat16>(adamw_options{})) == 4.0);
    CHECK(bytes(adagrad(adagrad_options{})) == 4.0);
    CHECK(bytes(lamb(lamb_options{})) == 8.0);
    CHECK(bytes(lion(lion_options{})) == 4.0);
    // m per element; v per parameter and per row of every matrix (for heads and rows), per element of
    // vectors (none here); the partition and the decay flag per parameter.
    CHECK(bytes(adam_mini(adam_mini_options{})) == doctest::Approx(4.0 + (4.0 + 4.0 * 256 + 4.0 + 4.0) / 65536));
    CHECK(bytes(adafactor(adafactor_options{})) == doctest::Approx(4.0 * (256 + 256) / 65536));
    CHECK(bytes(chain(adamw(adamw_options{}), ema_of_weights{0.999f})) == 12.0);
    CHECK(bytes(chain(adamw(adamw_options{}), kahan_summation<bfloat16>{})) == 10.0);
  }
}

// The planner's phases (train/plan.hpp), each on its own: the plan up to
// a phase is made by the phases before it.
namespace {

template <class... C>
constexpr detail::plan_data plan_until(int phases) {
  detail::plan_data d;
  if (phases >= 1) detail::summarize_components<C...>(d);
  if (phases >= 2) detail::flatten_statistics<C...>(d);
  if (phases >= 3) detail::assign_roles(d);
  if (phases >= 4) detail::assign_levels(d);
  if (phases >= 5) detail::form_measuring_passes(d);
  if (phases >= 6) detail::reveal_non_finite_counts(d);
  if (phases >= 7) detail::place_update_pass(d);
  return d;
}
using lamb_stage = scale_by_adam<float>;

}  // namespace

TEST_SUITE("train") {
  TEST_CASE("plan phase 1: summaries with an identity's traits derived") {
    constexpr auto d = plan_until<dynamic_loss_scale, skip_if_non_finite, clip_by_global_norm>(1);
    CHECK(d.n == 3);
    CHECK(d.comp[0].loss_scaler);
    CHECK(d.comp[0].before_statistics);
    // skip_if_non_finite declares only may_skip: without an element rule it is an identity.
    CHECK(d.comp[1].before_statistics);
    CHECK(d.comp[1].linear);
    CHECK(d.comp[1].may_skip);
    CHECK(d.comp[2].multiplier);
    CHECK(d.comp[2].linear);
    CHECK_FALSE(d.comp[2].before_statistics);
    CHECK(d.comp[2].nstats == 1);
  }

  TEST_CASE("plan phase 2: statistics flattened in chain order") {
    constexpr auto d = plan_until<dynamic_loss_scale, clip_by_global_norm, scale_by_trust_ratio>(2);
    REQUIRE(d.nstats == 4);
    CHECK(d.stats[0].component == 0);
    CHECK(d.stats[1].component == 1);
    CHECK(d.stats[2].component == 2);
    CHECK(d.stats[2].local == 0);
    CHECK(d.stats[3].local == 1);
    CHECK(d.comp[2].first_stat == 2);
    CHECK(d.stats[3].decl.of == source::weights);
  }

  TEST_CASE("plan phase 3: roles and their rules") {
    constexpr auto ok = plan_until<dynamic_loss_scale, every_k, round_model_stochastic<>>(3);
    CHECK(ok.error == detail::plan_error::none);
    CHECK(ok.scaler == 0);
    CHECK(ok.holder == 1);
    CHECK(ok.writer == 2);
    constexpr auto two = plan_until<round_model_nearest, round_model_stochastic<>>(3);
    CHECK(two.error == detail::plan_error::two_writers);
    CHECK(two.error_component == 1);
    CHECK(two.error_other == 0);
  }

  TEST_CASE("plan phase 4: levels") {
    // Unscaling and the clip's norm are known at the step's start; Adam's
    // state is written in the update pass.
    constexpr auto amp = plan_until<dynamic_loss_scale, clip_by_global_norm, lamb_stage, scale_by_trust_ratio>(4);
    CHECK(amp.level[0] == 0);
    CHECK(amp.level[1] == 0);
    CHECK(amp.level[2] == 0);
    // The trust ratio measures Adam's output: a later level.
    CHECK(amp.level[3] == 1);
    CHECK(amp.max_level == 1);
    // A global clip after another: measured at level 0 and scaled by the first clip's factor.
    constexpr auto clips = plan_until<clip_by_global_norm, clip_by_global_norm>(4);
    CHECK(clips.level[1] == 0);
    CHECK(clips.stats[1].derived_mask == 1u);
    // A guard after a stage cannot skip before the stage writes.
    constexpr auto late = plan_until<lamb_stage, skip_if_non_finite>(4);
    CHECK(late.error == detail::plan_error::guard_after_stage);
  }

  TEST_CASE("plan phase 5: one measuring pass per level with statistics") {
    constexpr auto d = plan_until<dynamic_loss_scale, clip_by_global_norm, lamb_stage, scale_by_trust_ratio>(5);
    REQUIRE(d.npasses == 2);
    CHECK(d.passes[0].kind == pass_kind::statistics);
    CHECK(d.passes[0].fields == 2);  // the loss scale's non-finite count, the clip's norm
    CHECK(d.passes[1].kind == pass_kind::measure);
    CHECK(d.passes[1].level == 1);
    CHECK(d.passes[1].fields == 2);  // the trust ratio's two per-parameter sums
    CHECK(d.stats[2].pass == 1);
    CHECK(d.stats[3].slot == 1);
  }

  TEST_CASE("plan phase 6: a non-finite count revealed by a later sum of squares") {
    constexpr auto d = plan_until<dynamic_loss_scale, clip_by_global_norm>(6);
    CHECK(d.stats[0].revealed_by == 1);  // through the linear unscaling
    constexpr auto none = plan_until<dynamic_loss_scale, clip_by_value, clip_by_global_norm>(6);
    CHECK(none.stats[0].revealed_by == -1);  // clipping by value is not linear
  }

  TEST_CASE("plan phase 7: the update pass and where each stage first runs") {
    constexpr auto d = plan_until<lamb_stage, add_decayed_weights, scale_by_trust_ratio>(7);
    REQUIRE(d.npasses == 2);
    CHECK(d.passes[1].kind == pass_kind::update);
    CHECK(d.first_pass[0] == 0);  // Adam writes its state in the measuring pass
    CHECK(d.first_pass[2] == 1);
    CHECK(detail::replays_in(d, 0, 1));  // and is recomputed read-only in the update pass
    constexpr auto lion_clip = plan_until<scale_by_lion<float>, clip_by_global_norm>(7);
    CHECK(lion_clip.error == detail::plan_error::not_replayable);
    CHECK(lion_clip.error_other == 1);
  }

}  // TEST_SUITE
