// Test support: AdamW with bfloat16 moments (stochastically rounded) and
// fp32 master weights whose bfloat16 model copy is rounded stochastically,
// 50 steps on 1000 elements. Every element rule is pinned (no fused
// multiply-add contraction, correctly rounded sqrt and division; the bias
// corrections are double pow rounded to float), so every backend must
// produce the same bits: tests/tools/make_stochastic_golden.cpp writes the
// host result to tests/data/adamw_stochastic_golden.txt (the default
// generator, moments and copy) and adamw_stochastic_golden_philox.txt, and
// the test compares any backend to them.
#pragma once

#include <cstdint>
#include <vector>

#include <mixprec/mixprec.hpp>

#include "synthetic.hpp"

namespace test {

inline constexpr std::size_t adamw_golden_size = 1000;
inline constexpr int adamw_golden_steps = 50;

// The master weights, model copy, first and second moments, as bits, in that order.
template <class G = mixprec::default_generator>
std::vector<std::uint32_t> run_adamw_golden() {
  using namespace mixprec;
  parameters<bfloat16, bfloat16> p;
  p.add("w", {adamw_golden_size});
  p.finalize();
  p.initialize("w", init::uniform{-1.0, 1.0}, 13);
  adamw_options o;
  o.lr = 1e-3f;
  o.weight_decay = 0.01f;
  const auto step = chain(adamw<bfloat16, G>(o), round_model_stochastic<G>{17});
  auto state = step.init(p);
  std::vector<bfloat16> g(p.padded_size(), convert<bfloat16>(0.0f));
  for (int t = 1; t <= adamw_golden_steps; ++t) {
    for (std::size_t i = 0; i < adamw_golden_size; ++i)
      g[i] = convert<bfloat16>(synthetic_gradient(static_cast<std::uint64_t>(t), 3, i, 0.5f));
    detail::write_to_device(g.data(), p.grad_data(), g.size());
    step.apply(p, state);
  }
  std::vector<std::uint32_t> out;
  std::vector<float> master(adamw_golden_size);
  detail::copy_to_host(p.master_data(), master.data(), master.size());
  for (float x : master) out.push_back(to_bits(x));
  std::vector<bfloat16> b(adamw_golden_size);
  detail::copy_to_host(p.model_data(), b.data(), b.size());
  for (bfloat16 x : b) out.push_back(to_bits(x));
  for (const char* moment : {"exp_avg", "exp_avg_sq"}) {
    detail::copy_to_host(state.template field<2, bfloat16>(moment).data(), b.data(), b.size());
    for (bfloat16 x : b) out.push_back(to_bits(x));
  }
  return out;
}

}  // namespace test
