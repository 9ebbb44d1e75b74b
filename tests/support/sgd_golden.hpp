// Test support: a pure-bfloat16 SGD run with stochastic rounding whose
// arithmetic is exact up to the rounding itself (learning rate 2^-10,
// gradients of 8 significant bits), so every backend must produce the same
// bits. tests/tools/make_stochastic_golden.cpp writes the host result to
// tests/data/sgd_stochastic_golden.txt (the default generator) and
// sgd_stochastic_golden_philox.txt; the test compares any backend to them.
#pragma once

#include <cstdint>
#include <vector>

#include <mixprec/mixprec.hpp>

#include "synthetic.hpp"

namespace test {

inline constexpr std::size_t sgd_golden_size = 1000;
inline constexpr int sgd_golden_steps = 30;

template <class G = mixprec::default_generator>
std::vector<std::uint16_t> run_sgd_golden() {
  using namespace mixprec;
  parameters<bfloat16, float, void> p;
  p.add("w", {sgd_golden_size});
  p.finalize();
  p.initialize("w", init::uniform{-1.0, 1.0}, 11);
  sgd_options o;
  o.lr = 0x1p-10f;
  const auto step = chain(sgd(o), round_model_stochastic<G>{7});
  auto state = step.init(p);
  std::vector<float> g(p.padded_size(), 0.0f);
  for (int t = 1; t <= sgd_golden_steps; ++t) {
    for (std::size_t i = 0; i < sgd_golden_size; ++i)
      g[i] =
          static_cast<float>(static_cast<int>(mix64(static_cast<std::uint64_t>(t) * 100003u + i) % 255) - 127) / 128.0f;
    detail::write_to_device(g.data(), p.grad_data(), g.size());
    step.apply(p, state);
  }
  std::vector<bfloat16> w(sgd_golden_size);
  detail::copy_to_host(p.model_data(), w.data(), w.size());
  std::vector<std::uint16_t> bits(w.size());
  for (std::size_t i = 0; i < w.size(); ++i) bits[i] = to_bits(w[i]);
  return bits;
}

}  // namespace test
