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
std::string plan_of(const Chain&) {
  return Chain::describe();
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
  CHECK(passes(chain(clip_by_global_norm{1.0f}, clip_by_value{0.1f}, clip_by_global_norm{0.5f}, sgd(sgd_options{}))) == 3);
}

TEST_CASE("plans say what each pass runs and measures") {
  const std::string p = plan_of(chain(dynamic_loss_scale{}, clip_by_global_norm{1.0f}, adamw(adamw_options{})));
  CHECK(test::contains(p, "pass 1 (statistics): runs dynamic_loss_scale; measures dynamic_loss_scale.non_finite "
                          "(global non-finite count of its output); clip_by_global_norm.norm (global sum |x|^p of its input)"));
  CHECK(test::contains(p, "then scalar rules: dynamic_loss_scale, clip_by_global_norm, decoupled_weight_decay, "
                          "scale_by_adam, scale_by_learning_rate"));
  CHECK(test::contains(p, "pass 2 (update): runs dynamic_loss_scale, clip_by_global_norm, scale_by_constant, "
                          "decoupled_weight_decay, scale_by_adam, scale_by_learning_rate; writes the weights (round_model_nearest)"));
  const std::string l = plan_of(lamb(lamb_options{}));
  CHECK(test::contains(l, "scalar rules before the first pass: scale_by_adam, scale_by_learning_rate"));
  CHECK(test::contains(l, "pass 1 (measure): runs scale_by_adam, add_decayed_weights; measures "
                          "scale_by_trust_ratio.update_sq (per parameter sum |x|^p of its input); "
                          "scale_by_trust_ratio.weight_sq (per parameter sum |x|^p of the weights)"));
  CHECK(test::contains(l, "recomputes scale_by_adam read-only"));
  const std::string two = plan_of(chain(clip_by_global_norm{1.0f}, clip_by_global_norm{0.5f}, sgd(sgd_options{})));
  CHECK(test::contains(two, "clip_by_global_norm.norm (global sum |x|^p of its input, scaled by later multipliers)"));
  const std::string w = plan_of(chain(sgd(sgd_options{}), round_model_stochastic{3}));
  CHECK(test::contains(w, "writes the weights (round_model_stochastic)"));
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
  CHECK(bytes(adafactor(adafactor_options{})) == doctest::Approx(4.0 * (256 + 256 + 256) / 65536));
  CHECK(bytes(chain(adamw(adamw_options{}), ema_of_weights{0.999f})) == 12.0);
  CHECK(bytes(chain(adamw(adamw_options{}), kahan_summation<bfloat16>{})) == 10.0);
}

}
