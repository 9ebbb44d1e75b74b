// Benchmark support: arenas filled with real random data (never zeros), in
// the layout of a model with many parameter tensors of mixed sizes.
#pragma once

#include <algorithm>
#include <cstddef>
#include <string>

#include <mixprec/mixprec.hpp>

namespace bench {

template <class T>
struct random_fill {
  T* p;
  float scale;
  std::uint64_t seed;
  MIXPREC_HOST_DEVICE void operator()(std::size_t i) const {
    const float u = mixprec::uniform_from_bits(mixprec::random_bits(seed, 0, i)) * 2.0f - 1.0f;
    p[i] = mixprec::convert<T>(u * scale);
  }
};

template <class T>
void fill_random(T* p, std::size_t n, float scale, std::uint64_t seed) {
  mixprec::detail::for_each_index({}, n, random_fill<T>{p, scale, seed});
}

// An arena of about n elements in `tensors` parameters of varied sizes.
template <class Arena>
void build_arena(Arena& a, std::size_t n, std::size_t tensors = 200) {
  std::size_t total = 0;
  for (std::size_t k = 0; total < n; ++k) {
    // Sizes cycle through small (biases, norms) and large (matrices) tensors.
    const std::size_t base = n / tensors;
    std::size_t size = k % 4 == 3 ? std::max<std::size_t>(base / 64, 1) : base + (k % 7) * (base / 16);
    size = std::min(size, n - total);
    a.add("p" + std::to_string(k), {size}, k % 4 == 3 ? "no_decay" : "default");
    total += size;
  }
  a.finalize();
  if constexpr (Arena::has_master) fill_random(a.master_data(), a.padded_size(), 0.5f, 1);
  if constexpr (!Arena::model_is_master) fill_random(a.model_data(), a.padded_size(), 0.5f, 2);
  fill_random(a.grad_data(), a.padded_size(), 1e-2f, 3);
}

}  // namespace bench
