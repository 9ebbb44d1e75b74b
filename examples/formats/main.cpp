// Prints the formats mixprec stores tensors in, and one value rounded under
// each rounding style and overflow policy.
#include <cstdio>

#include <mixprec/mixprec.hpp>

using namespace mixprec;

template <class T>
void row(float x) {
  using F = format_traits<T>;
  double sr_mean = 0;
  constexpr int draws = 10000;
  for (int i = 0; i < draws; ++i) sr_mean += to_float(convert<T>(x, round_stochastic{1, 0}, i));
  std::printf("%-9s %4d %4d %4d %12.6g %12.6g %12.6g | %12.8g %12.8g %14.8g | %10.6g %10.6g\n", F::name, F::total_bits,
              F::exponent_bits, F::mantissa_bits, F::max(), F::min_normal(), F::epsilon(), to_float(convert<T>(x)),
              to_float(convert<T>(x, round_toward_zero{})), sr_mean / draws, to_float(convert<T>(1e6f)),
              to_float(convert<T, overflow_saturate>(1e6f)));
}

int main() {
  const float x = 3.14159265f;
  std::printf("mixprec %d.%d.%d, backend: %s\n\n", version_major, version_minor, version_patch,
              backend_name(current_backend));
  std::printf("%-9s %4s %4s %4s %12s %12s %12s | %-40s | 1e6 rounded to\n", "format", "bits", "exp", "man", "max",
              "min normal", "epsilon", "pi rounded: nearest, toward 0, mean of stochastic");
  std::printf("%-9s %4s %4s %4s %12s %12s %12s | %12s %12s %14s | %10s %10s\n", "", "", "", "", "", "", "", "nearest",
              "toward 0", "stoch. mean", "to inf", "saturate");
  row<float>(x);
  row<half>(x);
  row<bfloat16>(x);
  row<fp8_e4m3>(x);
  row<fp8_e5m2>(x);
  return 0;
}
