// Clipping against reference vectors (tests/data/clip_reference.txt): torch
// 1.13's clip_grad_norm_ and clip_grad_value_ on fp32 gradients, and exact
// float64 results for bf16/fp16 gradients, for p in {1, 2, 3.5, inf}. The
// clipped gradient is read where the library uses it, in fp32 (through a
// chain that adds it to zero fp32 weights), so bf16/fp16 results are
// compared at fp32 rounding too. Also checked against an exact float64
// computation done here.
#include <cmath>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include <mixprec/mixprec.hpp>

#include "../support/reference_file.hpp"

using namespace mixprec;

namespace {

struct clip_outcome {
  float norm;
  std::vector<std::vector<float>> clipped;
};

template <class G, bool HasNorm, class Step>
clip_outcome run_clip(const test::reference_case& c, const Step& step) {
  const std::vector<shape> shapes = {{7, 13}, {64}, {3, 3, 5}, {1}};
  parameters<float, G> p;
  for (std::size_t k = 0; k < shapes.size(); ++k) p.add("g" + std::to_string(k), shapes[k]);
  p.finalize();
  std::vector<G> g(p.padded_size(), convert<G>(0.0f));
  for (const auto* in : c.all("input")) {
    const std::size_t k = static_cast<std::size_t>(in->number(0)), n = static_cast<std::size_t>(in->number(1));
    REQUIRE(n == p[k].size);
    for (std::size_t i = 0; i < n; ++i) g[p[k].offset + i] = convert<G>(static_cast<float>(in->number(2 + i)));
  }
  detail::write_to_device(g.data(), p.grad_data(), g.size());
  auto state = step.init(p);
  step.apply(p, state);  // weights start at 0: afterwards they hold the clipped gradient, in fp32
  std::vector<float> w(p.padded_size());
  detail::copy_to_host(p.master_data(), w.data(), w.size());
  clip_outcome o{};
  if constexpr (HasNorm) o.norm = state.template scalars<0>().norm;
  for (std::size_t k = 0; k < shapes.size(); ++k)
    o.clipped.emplace_back(w.begin() + p[k].offset, w.begin() + p[k].offset + p[k].size);
  return o;
}

template <class G>
clip_outcome run_clip_case(const test::reference_case& c) {
  if (c.text("kind") == "value")
    return run_clip<G, false>(
        c, chain(clip_by_value{static_cast<float>(c.number("clip_value"))}, scale_by_constant{1.0f}));
  return run_clip<G, true>(
      c, chain(clip_by_global_norm{static_cast<float>(c.number("max_norm")), static_cast<float>(c.number("p"))},
               scale_by_constant{1.0f}));
}

}  // namespace

TEST_SUITE("clipping") {
  TEST_CASE("clipping matches torch and exact references to fp32 rounding for every format and norm order") {
    const auto cases = test::read_reference("clip_reference.txt");
    REQUIRE(cases.size() >= 30);
    const double ulp = std::ldexp(1.0, -23);
    for (const auto& c : cases) {
      const std::string format = c.text("format");
      const clip_outcome o = format == "f32"    ? run_clip_case<float>(c)
                             : format == "bf16" ? run_clip_case<bfloat16>(c)
                                                : run_clip_case<half>(c);
      const bool torch = format == "f32";
      INFO("case " << c.name);
      if (c.text("kind") == "norm") {
        const double p = c.number("p");
        // Exact float64 norm of the inputs, computed here.
        double acc = 0;
        for (const auto* in : c.all("input"))
          for (std::size_t i = 2; i < in->values.size(); ++i) {
            const double a = std::fabs(in->number(i));
            acc = std::isinf(p) ? std::max(acc, a) : acc + std::pow(a, p);
          }
        const double exact = std::isinf(p) ? acc : std::pow(acc, 1.0 / p);
        CHECK(std::fabs(o.norm - exact) <= ulp * exact);
        // torch's own fp32 norm is accurate to about 1e-6 at p = 3.5 (pow in float).
        const double norm_tol = torch ? (p == 2 || p == 1 || std::isinf(p) ? 4 * ulp : 2e-6) : 2 * ulp;
        CHECK(std::fabs(o.norm - c.number("norm")) <= norm_tol * c.number("norm"));
      }
      // Clipped values: within fp32 rounding of the reference (torch's coef may
      // differ by an ulp from a true division, as its norm may at p = 3.5).
      const double value_tol = torch && c.text("kind") == "norm" && c.number("p") == 3.5 ? 3e-6 : 4 * ulp;
      std::size_t wrong = 0;
      for (const auto* out : c.all("clipped")) {
        const std::size_t k = static_cast<std::size_t>(out->number(0));
        for (std::size_t i = 0; i < o.clipped[k].size(); ++i) {
          const double want = out->number(2 + i);
          wrong += std::fabs(o.clipped[k][i] - want) > value_tol * std::fabs(want);
        }
      }
      CHECK(wrong == 0);
    }
  }
}
