// FP8 scaling against Transformer Engine's recipe, transcribed in
// scripts/reference/fp8_scaling.py (tests/data/fp8_scaling_reference.txt):
// delayed scaling with amax histories of length 1..1024, max and
// most_recent, margins, both formats; current scaling. Also the casts.
#include <cmath>
#include <vector>

#include <doctest/doctest.h>

#include <mixprec/mixprec.hpp>

#include "../support/formats.hpp"
#include "../support/reference_file.hpp"

using namespace mixprec;

namespace {
bool same(float a, double b) { return (std::isnan(a) && std::isnan(b)) || a == static_cast<float>(b); }
}  // namespace

TEST_SUITE("scaling") {
  TEST_CASE("fp8 delayed and current scaling follow the Transformer Engine recipe") {
    const auto cases = test::read_reference("fp8_scaling_reference.txt");
    REQUIRE(cases.size() >= 12);
    for (const auto& c : cases) {
      fp8_delayed_scaling recipe;
      recipe.margin = static_cast<std::uint32_t>(c.number("margin"));
      recipe.history_length = static_cast<std::uint32_t>(c.number("history_len"));
      recipe.algorithm = c.text("algo") == "max" ? amax_algorithm::max : amax_algorithm::most_recent;
      const fp8_kind kind = c.number("fp8_max") == 448 ? fp8_kind::e4m3 : fp8_kind::e5m2;
      fp8_scaler scaler(kind, recipe);
      const bool current = c.text("recipe") == "current";
      std::size_t wrong = 0, n = 0;
      for (const auto* line : c.all("step")) {
        const float amax = static_cast<float>(line->number(0));
        if (current) {
          // A tensor whose largest magnitude is the observed amax.
          std::vector<float> v = {0.5f * amax, -amax, 0.25f * amax, 0.0f};
          tensor<float> src = tensor<float>::from_host({4}, v);
          if (kind == fp8_kind::e4m3) {
            tensor<fp8_e4m3> dst(shape{4});
            scaler.quantize_current(src.view(), dst.view());
          } else {
            tensor<fp8_e5m2> dst(shape{4});
            scaler.quantize_current(src.view(), dst.view());
          }
        } else {
          scaler.record_amax(amax);
          scaler.update();
        }
        const bool ok = same(scaler.amax_used(), line->number(1)) && same(scaler.scale(), line->number(2)) &&
                        same(scaler.scale_inv(), line->number(3));
        wrong += !ok;
        ++n;
      }
      INFO("case " << c.name << ": " << wrong << " of " << n << " steps differ");
      CHECK(wrong == 0);
    }
  }

  TEST_CASE_TEMPLATE("quantize records amax and round-trips within the fp8 unit roundoff", F8, fp8_e4m3, fp8_e5m2) {
    const fp8_kind kind = std::is_same_v<F8, fp8_e4m3> ? fp8_kind::e4m3 : fp8_kind::e5m2;
    fp8_delayed_scaling recipe;
    recipe.history_length = 4;
    fp8_scaler scaler(kind, recipe);
    std::vector<float> v(1000);
    for (std::size_t i = 0; i < v.size(); ++i)
      v[i] = 0.003f * std::sin(0.1f * static_cast<float>(i)) + (i == 17 ? 0.05f : 0.0f);
    tensor<float> src = tensor<float>::from_host({1000}, v), back(shape{1000});
    tensor<F8> q(shape{1000});
    float amax = 0;
    for (float x : v) amax = std::max(amax, std::fabs(x));
    scaler.quantize(src.view(), q.view());  // scale 1: tiny values mostly underflow
    CHECK(scaler.history(0) == amax);
    scaler.update();
    CHECK(scaler.history(0) == 0.0f);
    CHECK(scaler.history(1) == amax);
    CHECK(scaler.scale() == scaler.fp8_max() / amax);
    scaler.quantize(src.view(), q.view());
    scaler.dequantize(q.view(), back.view());
    const auto out = back.to_host_float();
    std::size_t bad = 0;
    const double u = format_traits<F8>::unit_roundoff();
    const double floor = format_traits<F8>::denorm_min() / scaler.scale();  // below this, fp8 subnormals
    for (std::size_t i = 0; i < v.size(); ++i) bad += std::fabs(out[i] - v[i]) > u * std::fabs(v[i]) * 1.0001 + floor;
    CHECK(bad == 0);
  }

  TEST_CASE("a reserved fp8 scaler quantizes without growing its workspace") {
    fp8_scaler scaler(fp8_kind::e4m3);
    CHECK(scaler.workspace_bytes() == 0);
    const std::size_t n = 3 * detail::tile_size + 5;
    scaler.reserve(n);
    const std::size_t reserved = scaler.workspace_bytes();
    CHECK(reserved >= detail::tile_count(n) * sizeof(float));
    scaler.reserve(10);  // smaller: keeps what it has
    CHECK(scaler.workspace_bytes() == reserved);
    std::vector<float> v(n);
    for (std::size_t i = 0; i < n; ++i) v[i] = std::cos(0.01f * static_cast<float>(i));
    tensor<float> src = tensor<float>::from_host({n}, v);
    tensor<fp8_e4m3> q(shape{n});
    scaler.quantize(src.view(), q.view());
    scaler.quantize_current(src.view(), q.view());
    CHECK(scaler.workspace_bytes() == reserved);
    CHECK(scaler.amax_used() == 1.0f);  // cos(0)
    // The standalone reductions: the same size rule.
    workspace ws;
    ws.reserve(reduction_workspace_bytes(n));
    const std::size_t before = ws.capacity();
    auto sum = detail::allocate<double>(1, "a test");
    auto largest = detail::allocate<float>(1, "a test");
    sum_of_squares(src.view(), detail::raw(sum), ws);
    max_abs(src.view(), detail::raw(largest), ws);
    CHECK(ws.capacity() == before);
  }

#if defined(MIXPREC_BACKEND_CUDA)
  TEST_CASE("a reserved fp8 scaler's quantize and update are captured in a CUDA graph") {
    const std::size_t n = 5000;
    fp8_delayed_scaling recipe;
    recipe.history_length = 3;
    fp8_scaler a(fp8_kind::e5m2, recipe), b(fp8_kind::e5m2, recipe);
    a.reserve(n);
    std::vector<float> v(n);
    tensor<float> src(shape{n});
    tensor<fp8_e5m2> qa(shape{n}), qb(shape{n});
    cudaStream_t s;
    MIXPREC_CUDA_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
    cudaGraph_t graph;
    MIXPREC_CUDA_CHECK(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal));
    a.quantize(src.view(), qa.view(), stream{s});
    a.update(stream{s});
    MIXPREC_CUDA_CHECK(cudaStreamEndCapture(s, &graph));
    cudaGraphExec_t exec;
    MIXPREC_CUDA_CHECK(cudaGraphInstantiate(&exec, graph, 0));
    for (int t = 1; t <= 4; ++t) {
      for (std::size_t i = 0; i < n; ++i) v[i] = static_cast<float>(t) * std::sin(0.003f * static_cast<float>(i * t));
      detail::write_to_device(v.data(), src.data(), n, stream{s});
      MIXPREC_CUDA_CHECK(cudaGraphLaunch(exec, s));
      synchronize(stream{s});
      b.quantize(src.view(), qb.view());
      b.update();
      CHECK(a.scale() == b.scale());
      CHECK(qa.to_host_float() == qb.to_host_float());
    }
    MIXPREC_CUDA_CHECK(cudaGraphExecDestroy(exec));
    MIXPREC_CUDA_CHECK(cudaGraphDestroy(graph));
    MIXPREC_CUDA_CHECK(cudaStreamDestroy(s));
  }
#endif

  TEST_CASE("fp8 scaler misuse is a clear error") {
    fp8_scaler scaler(fp8_kind::e4m3);
    tensor<float> src(shape{4});
    tensor<fp8_e5m2> wrong_format(shape{4});
    tensor<fp8_e4m3> wrong_shape(shape{5});
    CHECK_THROWS_WITH_AS(scaler.quantize(src.view(), wrong_format.view()),
                         doctest::Contains("differs from the scaler's"), error);
    CHECK_THROWS_WITH_AS(scaler.quantize(src.view(), wrong_shape.view()), doctest::Contains("shape mismatch"), error);
    fp8_delayed_scaling r;
    r.history_length = 0;
    CHECK_THROWS_WITH_AS(fp8_scaler(fp8_kind::e5m2, r), doctest::Contains("history_length"), error);
  }
}
