// Test support for the distributed tests: a least-squares problem whose
// batches split over any number of ranks. Sample s of step t pulls element
// i towards target(t, s, i) with weight a(s); a batch's gradient is the
// mean over its samples of a(s) * (w_i - target(t, s, i)), taken in double
// and rounded once. R ranks with B samples each therefore see, after
// averaging, the gradient one process sees with the R*B samples, up to the
// fp32 roundings of the per-rank means and of their average.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include <mixprec/mixprec.hpp>

#include "../support/synthetic.hpp"

namespace test::dist {

// Parameters of mixed shapes whose sizes put shard boundaries inside them.
template <class Arena>
void add_parameters(Arena& p) {
  p.add("embed", {37, 12});
  p.add("w1", {12, 20});
  p.add("b1", {20}, "no_decay");
  p.add("w2", {20, 9});
  p.add("norm", {9}, "no_decay");
  p.add("head", {3, 5, 7});
}

inline float target(int t, std::size_t s, std::size_t i) {
  return 0.8f * unit_value((static_cast<std::uint64_t>(t) * 131ull + s) * 1000003ull + i);
}
inline double sample_weight(std::size_t s) { return 0.5 + static_cast<double>(s % 7) / 7.0; }

// The mean gradient of samples [first, first + count) at step t, for the
// model copy w (as float, arena order).
inline std::vector<float> gradient(const std::vector<float>& w, int t, std::size_t first, std::size_t count) {
  std::vector<float> g(w.size());
  for (std::size_t i = 0; i < w.size(); ++i) {
    double sum = 0.0;
    for (std::size_t s = first; s < first + count; ++s)
      sum += sample_weight(s) * (static_cast<double>(w[i]) - static_cast<double>(target(t, s, i)));
    g[i] = static_cast<float>(sum / static_cast<double>(count));
  }
  return g;
}

// The arena's model copy as float (every padded element).
template <class Arena>
std::vector<float> model_as_float(Arena& p) {
  using M = typename Arena::model_type;
  std::vector<M> m(p.padded_size());
  mixprec::detail::copy_to_host(p.model_data(), m.data(), m.size());
  std::vector<float> out(m.size());
  for (std::size_t i = 0; i < m.size(); ++i) out[i] = mixprec::to_float(m[i]);
  return out;
}

// Writes g * scale into the arena's gradients, rounded to their format.
template <class Arena>
void write_gradients(Arena& p, const std::vector<float>& g, float scale) {
  using G = typename Arena::grad_type;
  std::vector<G> out(g.size());
  for (std::size_t i = 0; i < g.size(); ++i) out[i] = mixprec::convert<G>(g[i] * scale);
  mixprec::detail::write_to_device(out.data(), p.grad_data(), out.size());
}

template <class T>
std::vector<T> device_range(const T* data, std::size_t n) {
  std::vector<T> out(n);
  mixprec::detail::copy_to_host(data, out.data(), n);
  return out;
}

}  // namespace test::dist
