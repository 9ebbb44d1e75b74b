// round_model_stochastic<G>: a writer (writers/writer.hpp) rounding the model
// copy stochastically, keyed on (seed, step, element), its bits from
// generator G (cast/generator.hpp; SplitMix64 by default). Without master
// weights the model tracks the fp32 trajectory in expectation.
#pragma once

#include <cstdint>

#include <mixprec/cast/convert.hpp>
#include <mixprec/cast/generator.hpp>
#include <mixprec/core/pinned_arithmetic.hpp>
#include <mixprec/writers/writer.hpp>

MIXPREC_PINNED_BEGIN

namespace mixprec {

template <class G = default_generator>
struct round_model_stochastic {
  static_assert(is_generator_v<G>,
                "round_model_stochastic<G>: G must be a generator policy (cast/generator.hpp), "
                "e.g. splitmix_generator or philox_generator");
  static constexpr const char* name = "round_model_stochastic";
  using traits = writer_traits;
  using generator = G;
  static constexpr bool works_with_master = true;
  static constexpr bool needs_narrow_model = true;  // rounding to float would change nothing
  // The host runner draws this writer's bits a generator call per 2 * words
  // (16-bit model) or words (8-bit) elements before each row
  // (train/pass_runner.hpp).
  static constexpr bool draws_per_row = true;
  std::uint64_t seed = 0;
  round_model_stochastic() = default;
  explicit round_model_stochastic(std::uint64_t s) : seed(s) {}
  template <class Model, class Ctx>
  MIXPREC_HOST_DEVICE Model round_weight(float v, const Ctx& ctx) const {
    // The same bits as convert<Model>(v, round_stochastic<G>{seed, ctx.t()}, ctx.index()).
    return stochastic_round<Model, weight_overflow<Model>>(v, ctx.template stochastic_bits<Model>(seed));
  }
  template <class Model, class Ctx>
  MIXPREC_HOST_DEVICE Model write_weight(float, float updated, float, const Ctx& ctx) const {
    return round_weight<Model>(updated, ctx);
  }
  template <class V>
  void visit_hyperparameters(V&& v) const {
    v("seed", seed);
  }
};
round_model_stochastic()->round_model_stochastic<>;
round_model_stochastic(std::uint64_t)->round_model_stochastic<>;

}  // namespace mixprec

MIXPREC_PINNED_END
