// Parameter initialisers, driven by the counter-based generator: element i of
// a parameter gets its random bits from philox(seed, stream, i), where the
// stream is the parameter's position in its arena. Values are computed on the
// host in double and rounded once to float, so the same seed gives the same
// weights on every backend (device math libraries differ in the last bits of
// log and cos; initialisation is a one-time cost).
//
// Fan-in and fan-out follow PyTorch's convention for a weight of shape
// [out, in, k...]: fan_in = in * prod(k), fan_out = out * prod(k). PyTorch
// refuses parameters of rank < 2; here their fan_in = fan_out = their size.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>

#include <mixprec/cast/philox.hpp>
#include <mixprec/core/error.hpp>
#include <mixprec/core/pinned_arithmetic.hpp>
#include <mixprec/tensor/shape.hpp>

MIXPREC_PINNED_BEGIN

namespace mixprec::init {

struct fans {
  double in, out;
};

inline fans fans_of(const shape& s) {
  const std::size_t n = s.size();
  if (s.rank() < 2) return {static_cast<double>(n), static_cast<double>(n)};
  const double receptive = static_cast<double>(n) / static_cast<double>(s[0] * s[1]);
  return {static_cast<double>(s[1]) * receptive, static_cast<double>(s[0]) * receptive};
}

namespace detail {
// Uniform double in (0, 1) from 53 random bits (never 0, so log() is finite).
inline double uniform_open(std::uint32_t hi, std::uint32_t lo) {
  const std::uint64_t bits = (static_cast<std::uint64_t>(hi) << 21) ^ (lo >> 11);
  return (static_cast<double>(bits & ((1ull << 53) - 1)) + 0.5) / 9007199254740992.0;  // 2^53
}
inline double standard_normal(std::uint64_t seed, std::uint64_t stream, std::size_t i) {
  const philox_block r = random_block(seed, stream, i);
  const double u1 = uniform_open(r.v[0], r.v[1]), u2 = uniform_open(r.v[2], r.v[3]);
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586476925286766559 * u2);  // Box-Muller
}
inline double uniform(std::uint64_t seed, std::uint64_t stream, std::size_t i, double lo, double hi) {
  const philox_block r = random_block(seed, stream, i);
  return lo + (hi - lo) * uniform_open(r.v[0], r.v[1]);
}
}  // namespace detail

struct zeros {
  double operator()(std::uint64_t, std::uint64_t, std::size_t, const shape&) const { return 0.0; }
};
struct constant {
  double value;
  double operator()(std::uint64_t, std::uint64_t, std::size_t, const shape&) const { return value; }
};
struct uniform {
  double low = 0.0, high = 1.0;
  double operator()(std::uint64_t seed, std::uint64_t stream, std::size_t i, const shape&) const {
    return detail::uniform(seed, stream, i, low, high);
  }
};
struct normal {
  double mean = 0.0, stddev = 1.0;
  double operator()(std::uint64_t seed, std::uint64_t stream, std::size_t i, const shape&) const {
    return mean + stddev * detail::standard_normal(seed, stream, i);
  }
};
// He et al. 2015: U(-b, b), b = gain * sqrt(3 / fan_in); gain sqrt(2) suits ReLU.
struct kaiming_uniform {
  double gain = 1.4142135623730951;
  double operator()(std::uint64_t seed, std::uint64_t stream, std::size_t i, const shape& s) const {
    const double b = gain * std::sqrt(3.0 / fans_of(s).in);
    return detail::uniform(seed, stream, i, -b, b);
  }
};
// He et al. 2015: N(0, gain^2 / fan_in).
struct kaiming_normal {
  double gain = 1.4142135623730951;
  double operator()(std::uint64_t seed, std::uint64_t stream, std::size_t i, const shape& s) const {
    return gain / std::sqrt(fans_of(s).in) * detail::standard_normal(seed, stream, i);
  }
};
// Glorot & Bengio 2010: U(-b, b), b = gain * sqrt(6 / (fan_in + fan_out)).
struct xavier_uniform {
  double gain = 1.0;
  double operator()(std::uint64_t seed, std::uint64_t stream, std::size_t i, const shape& s) const {
    const fans f = fans_of(s);
    const double b = gain * std::sqrt(6.0 / (f.in + f.out));
    return detail::uniform(seed, stream, i, -b, b);
  }
};
// Glorot & Bengio 2010: N(0, gain^2 * 2 / (fan_in + fan_out)).
struct xavier_normal {
  double gain = 1.0;
  double operator()(std::uint64_t seed, std::uint64_t stream, std::size_t i, const shape& s) const {
    const fans f = fans_of(s);
    return gain * std::sqrt(2.0 / (f.in + f.out)) * detail::standard_normal(seed, stream, i);
  }
};

}  // namespace mixprec::init

MIXPREC_PINNED_END
