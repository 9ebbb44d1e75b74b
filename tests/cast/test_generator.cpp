// The generator policies of stochastic rounding (cast/generator.hpp), each
// tested the same way: SR is unbiased at every sixteenth of the gap between
// two neighbours; the 16-bit draws pass a chi-square test of uniformity;
// draws of neighbouring elements, consecutive steps and neighbouring seeds
// are uncorrelated; and a range's bits are the same on any thread count and
// in any pieces. The statistics, their thresholds and the observed values
// are printed (doctest MESSAGE; run with -s to see them).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include <mixprec/cast/all.hpp>

#if defined(MIXPREC_BACKEND_OMP)
#include <omp.h>
#endif

#include "../support/device.hpp"
#include "../support/formats.hpp"
#include "../support/generators.hpp"

using namespace mixprec;

namespace {

// Upper-tail p-value of a chi-square statistic with k degrees of freedom
// (Wilson-Hilferty: (x / k)^(1/3) is nearly normal; for k = 65535 the error
// is far below the thresholds used here).
double chi_square_upper_p(double x, double k) {
  const double v = 2.0 / (9.0 * k);
  const double z = (std::cbrt(x / k) - (1.0 - v)) / std::sqrt(v);
  return 0.5 * std::erfc(z / std::sqrt(2.0));
}
// The statistic whose upper-tail p-value is p (the same approximation).
double chi_square_quantile_upper(double p, double k) {
  // z with 0.5 erfc(z / sqrt 2) = p, by bisection.
  double lo = -40, hi = 40;
  for (int i = 0; i < 200; ++i) {
    const double mid = 0.5 * (lo + hi);
    (0.5 * std::erfc(mid / std::sqrt(2.0)) > p ? lo : hi) = mid;
  }
  const double z = 0.5 * (lo + hi), v = 2.0 / (9.0 * k);
  return k * std::pow(1.0 - v + z * std::sqrt(v), 3.0);
}

// Pearson's correlation of two samples of the same size.
double correlation(const std::vector<double>& a, const std::vector<double>& b) {
  const double n = static_cast<double>(a.size());
  double ma = 0, mb = 0;
  for (std::size_t i = 0; i < a.size(); ++i) ma += a[i], mb += b[i];
  ma /= n, mb /= n;
  double sab = 0, saa = 0, sbb = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    sab += (a[i] - ma) * (b[i] - mb);
    saa += (a[i] - ma) * (a[i] - ma);
    sbb += (b[i] - mb) * (b[i] - mb);
  }
  return sab / std::sqrt(saa * sbb);
}

// The 16-bit draws of elements [first, first + n) as uniforms in [0, 1).
template <class G>
std::vector<double> uniforms16(std::uint64_t seed, std::uint64_t stream, std::uint64_t first, std::size_t n) {
  std::vector<std::uint16_t> d(n + draw_slack);
  const std::uint16_t* at = fill_draws<G>(seed, stream, first, n, d.data());
  std::vector<double> u(n);
  for (std::size_t i = 0; i < n; ++i) u[i] = (at[i] + 0.5) / 65536.0;
  return u;
}
template <class G>
std::vector<double> uniforms32(std::uint64_t seed, std::uint64_t stream, std::uint64_t first, std::size_t n) {
  std::vector<std::uint32_t> d(n + draw_slack);
  const std::uint32_t* at = fill_draws<G>(seed, stream, first, n, d.data());
  std::vector<double> u(n);
  for (std::size_t i = 0; i < n; ++i) u[i] = (at[i] + 0.5) / 4294967296.0;
  return u;
}

// SR of x = lo + k/16 of the gap to the next value up, n times (elements 0..n-1 of
// one stream): the mean against x, in standard errors of the mean.
template <class T, class G>
double sr_mean_error(double lo, double gap, int k, std::uint64_t seed, std::uint64_t stream, std::size_t n,
                     double& worst_exact) {
  const float x = static_cast<float>(lo + gap * k / 16.0);
  REQUIRE(static_cast<double>(x) == lo + gap * k / 16.0);  // representable in float
  thrust::device_vector<float> in(n, x);
  thrust::device_vector<T> out(n);
  convert_n(test::ptr(in), n, test::ptr(out), round_stochastic<G>{seed, stream});
  const std::vector<T> got = test::to_host(out);
  double sum = 0;
  for (const T v : got) sum += static_cast<double>(to_float(v));
  const double mean = sum / static_cast<double>(n);
  const double p = k / 16.0;
  const double se = std::fabs(gap) * std::sqrt(p * (1 - p) / static_cast<double>(n));
  if (se == 0) {  // x is a value of T: every rounding gives it
    worst_exact = std::max(worst_exact, std::fabs(mean - x));
    return 0;
  }
  return (mean - x) / se;
}

// `seed`: one per format, so that formats whose draws have the same width
// (bfloat16 and half) are not tested on the same bits.
template <class T, class G>
void check_unbiased(const std::string& format, std::uint64_t seed) {
  using F = format_traits<T>;
  constexpr std::size_t n = 65536;
  // Neighbours: 1 and the next value up, -1.5 and the next value down
  // (toward -inf: the gap is negative), and the smallest subnormal pair.
  const double eps = static_cast<double>(F::epsilon());
  const double dmin = static_cast<double>(F::denorm_min());
  const struct { double lo, gap; } pairs[] = {{1.0, eps}, {-1.5, -eps}, {dmin, dmin}};
  double worst = 0, worst_exact = 0, sum_sq = 0;
  int values = 0, inexact = 0;
  std::uint64_t stream = 0;  // a stream per value: independent samples
  for (const auto& pr : pairs)
    for (int k = 0; k <= 16; ++k) {
      const double e = sr_mean_error<T, G>(pr.lo, pr.gap, k, seed, ++stream, n, worst_exact);
      worst = std::max(worst, std::fabs(e));
      sum_sq += e * e;
      ++values;
      inexact += k % 16 != 0 ? 1 : 0;
      CHECK_MESSAGE(std::fabs(e) <= 4.0, format, " ", std::string(G::name), ": lo ", pr.lo, " + ", k,
                    "/16 of the gap: mean is ", e, " standard errors from x");
    }
  MESSAGE(std::string(G::name) << " " << format << ": " << values << " values x " << n
                               << " roundings, largest |mean - x| " << worst
                               << " standard errors (bound 4), sum of squares " << sum_sq << " over " << inexact
                               << " inexact values; exact values: largest |mean - x| " << worst_exact);
  CHECK(worst_exact == 0);
}

}  // namespace

TEST_SUITE("cast") {
  TEST_CASE_TEMPLATE("stochastic rounding is unbiased at every sixteenth of the gap (4 standard errors)", G,
                     splitmix_generator, philox_generator) {
    check_unbiased<bfloat16, G>("bfloat16", 0x5eed);
    check_unbiased<half, G>("half", 0x5eee);
    check_unbiased<fp8_e4m3, G>("fp8_e4m3", 0x5eef);
    check_unbiased<fp8_e5m2, G>("fp8_e5m2", 0x5ef0);
  }

  TEST_CASE_TEMPLATE("the 16-bit draws pass a chi-square test of uniformity", G, splitmix_generator, philox_generator) {
    // 2^24 draws of one stream in 2^16 cells (expected 256 each): X^2 has
    // 65535 degrees of freedom. Refused below the lower or above the upper
    // 10^-6 tail (too uniform, e.g. a 16-bit counter, is a failure too). Then
    // the same for pairs of neighbouring draws (the top 8 bits of each: 2^16
    // cells), which a dependence between neighbours would show.
    constexpr std::size_t n = std::size_t{1} << 24;
    constexpr double df = 65535, tail = 1e-6;
    const double upper = chi_square_quantile_upper(tail, df), lower = chi_square_quantile_upper(1 - tail, df);
    for (const std::uint64_t first : {std::uint64_t{0}, (std::uint64_t{1} << 32) - (n / 2)}) {
      std::vector<std::uint16_t> d(n + draw_slack);
      const std::uint16_t* at = fill_draws<G>(2024, 7, first, n, d.data());
      std::vector<double> cells(65536, 0.0), pairs(65536, 0.0);
      for (std::size_t i = 0; i < n; ++i) cells[at[i]] += 1;
      for (std::size_t i = 0; i + 1 < n; i += 2) pairs[(at[i] >> 8) << 8 | (at[i + 1] >> 8)] += 1;
      auto chi2 = [](const std::vector<double>& c, double total) {
        const double e = total / static_cast<double>(c.size());
        double x = 0;
        for (const double o : c) x += (o - e) * (o - e) / e;
        return x;
      };
      const double x1 = chi2(cells, static_cast<double>(n)), x2 = chi2(pairs, static_cast<double>(n / 2));
      MESSAGE(std::string(G::name) << ", elements from " << first << ": 16-bit draws X^2 = " << x1
                                   << ", pairs X^2 = " << x2 << " (df 65535, accepted in [" << lower << ", " << upper
                                   << "]), p = " << chi_square_upper_p(x1, df) << " and "
                                   << chi_square_upper_p(x2, df));
      CHECK(x1 > lower);
      CHECK(x1 < upper);
      CHECK(x2 > lower);
      CHECK(x2 < upper);
    }
  }

  TEST_CASE_TEMPLATE("draws of neighbouring elements and consecutive steps and neighbouring seeds are uncorrelated", G,
                     splitmix_generator, philox_generator) {
    // Pearson's r of N pairs of independent uniforms is about normal with
    // standard deviation 1 / sqrt(N): refused beyond 4 / sqrt(N). Element i
    // against i + lag (lags 1..16 cover neighbours inside one generator call
    // and across calls), step s against s + 1 for the same elements, seed q
    // against q + 1 (the engine keys the state fields of a component on
    // consecutive seeds), for 16-bit draws, and lags 1..4 of 32-bit draws.
    constexpr std::size_t n = std::size_t{1} << 22;
    const double bound = 4.0 / std::sqrt(static_cast<double>(n));
    double worst = 0;
    std::string where;
    auto check = [&](double r, const std::string& what) {
      CHECK_MESSAGE(std::fabs(r) <= bound, std::string(G::name), " ", what, ": r = ", r, ", bound ", bound);
      if (std::fabs(r) > worst) worst = std::fabs(r), where = what;
    };
    const std::vector<double> base = uniforms16<G>(11, 3, 0, n + 16);
    for (std::size_t lag = 1; lag <= 16; ++lag) {
      const std::vector<double> a(base.begin(), base.begin() + n), b(base.begin() + lag, base.begin() + lag + n);
      check(correlation(a, b), "16-bit, element lag " + std::to_string(lag));
    }
    const std::vector<double> a(base.begin(), base.begin() + n);
    for (const std::uint64_t s : {std::uint64_t{0}, std::uint64_t{1}, std::uint64_t{2}, std::uint64_t{1000}}) {
      check(correlation(uniforms16<G>(11, s, 0, n), uniforms16<G>(11, s + 1, 0, n)),
            "16-bit, step " + std::to_string(s) + " against " + std::to_string(s + 1));
    }
    for (const std::uint64_t q : {std::uint64_t{7}, std::uint64_t{0x6d69787072656300ull}}) {
      check(correlation(uniforms16<G>(q, 5, 0, n), uniforms16<G>(q + 1, 5, 0, n)),
            "16-bit, seed " + std::to_string(q) + " against the next");
    }
    const std::vector<double> words = uniforms32<G>(11, 3, 0, n + 4);
    for (std::size_t lag = 1; lag <= 4; ++lag) {
      const std::vector<double> w0(words.begin(), words.begin() + n), w1(words.begin() + lag, words.begin() + lag + n);
      check(correlation(w0, w1), "32-bit, element lag " + std::to_string(lag));
    }
    MESSAGE(std::string(G::name) << ": " << n << " pairs per statistic, largest |r| " << worst << " (" << where
                                 << "), bound 4/sqrt(N) = " << bound);
  }

  TEST_CASE_TEMPLATE("fill_draws gives stochastic_draw's bits for every start and count", G, splitmix_generator,
                     philox_generator) {
    for (const std::uint64_t base : {std::uint64_t{0}, (std::uint64_t{1} << 32) - 37}) {
      for (std::uint64_t skew = 0; skew < 9; ++skew) {
        for (const std::uint64_t n : {1, 2, 3, 5, 8, 13, 64, 100, 1024}) {
          const std::uint64_t first = base + skew;
          std::vector<std::uint16_t> d16(n + draw_slack);
          std::vector<std::uint32_t> d32(n + draw_slack);
          const std::uint16_t* a16 = fill_draws<G>(99, 4, first, n, d16.data());
          const std::uint32_t* a32 = fill_draws<G>(99, 4, first, n, d32.data());
          int wrong = 0;
          for (std::uint64_t i = 0; i < n; ++i) {
            wrong += (static_cast<std::uint32_t>(a16[i]) << 16) != stochastic_draw<16, G>(99, 4, first + i) ? 1 : 0;
            wrong += a32[i] != stochastic_draw<8, G>(99, 4, first + i) ? 1 : 0;
          }
          CHECK_MESSAGE(wrong == 0, std::string(G::name), ": first ", first, " n ", n);
        }
      }
    }
  }

  TEST_CASE_TEMPLATE("convert_n gives each element its own bits on any thread count and in any pieces", G,
                     splitmix_generator, philox_generator) {
    // Elements keyed by index_offset + i: 10007 elements converted whole (1,
    // 2 and 3 threads), in uneven pieces with matching offsets, and one at a
    // time with convert; at offsets 0 and just below 2^32.
    constexpr std::size_t n = 10007;
    std::vector<float> x(n);
    for (std::size_t i = 0; i < n; ++i)
      x[i] = std::ldexp(1.0f + static_cast<float>((i * 2654435761u) % 1000) / 999.0f, static_cast<int>(i % 30) - 15);
    auto d_in = test::to_device(x);
    auto run = [&](auto t, std::uint64_t offset) {
      using T = decltype(t);
      const round_stochastic<G> r{31, 4};
      thrust::device_vector<T> whole(n), pieces(n);
      convert_n(test::ptr(d_in), n, test::ptr(whole), r, {}, offset);
      const std::vector<T> ref = test::to_host(whole);
      std::size_t wrong = 0;
      for (std::size_t i = 0; i < n; ++i)
        wrong += test::bits_of(ref[i]) != test::bits_of(convert<T>(x[i], r, offset + i));
#if defined(MIXPREC_BACKEND_OMP)
      const int threads = omp_get_max_threads();
      for (int k : {1, 2, 3}) {
        omp_set_num_threads(k);
        thrust::device_vector<T> again(n);
        convert_n(test::ptr(d_in), n, test::ptr(again), r, {}, offset);
        const std::vector<T> got = test::to_host(again);
        for (std::size_t i = 0; i < n; ++i) wrong += test::bits_of(got[i]) != test::bits_of(ref[i]);
      }
      omp_set_num_threads(threads);
#endif
      std::size_t at = 0;
      for (const std::size_t len :
           {std::size_t{1}, std::size_t{7}, std::size_t{1000}, std::size_t{4099}, std::size_t{3}}) {
        convert_n(test::ptr(d_in) + at, len, test::ptr(pieces) + at, r, {}, offset + at);
        at += len;
      }
      convert_n(test::ptr(d_in) + at, n - at, test::ptr(pieces) + at, r, {}, offset + at);
      const std::vector<T> got = test::to_host(pieces);
      for (std::size_t i = 0; i < n; ++i) wrong += test::bits_of(got[i]) != test::bits_of(ref[i]);
      return wrong;
    };
    for (const std::uint64_t offset : {std::uint64_t{0}, (std::uint64_t{1} << 32) - 5000}) {
      CHECK_MESSAGE(run(bfloat16{}, offset) == 0, std::string(G::name), " bfloat16, offset ", offset);
      CHECK_MESSAGE(run(half{}, offset) == 0, std::string(G::name), " half, offset ", offset);
      CHECK_MESSAGE(run(fp8_e4m3{}, offset) == 0, std::string(G::name), " fp8_e4m3, offset ", offset);
    }
  }
}
