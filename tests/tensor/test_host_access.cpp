// Host access that works on every backend: a parameter's master weights,
// model copy or gradients copied to and from host memory by index, by name
// or for the whole role; views copy too. Writes round to nearest even in the
// role's format (fp8 saturates); writing the master weights rounds them into
// the model copy; misuse is a clear error that changes nothing.
#include <cmath>
#include <vector>

#include <doctest/doctest.h>

#include <mixprec/mixprec.hpp>

#include "../support/errors.hpp"

using namespace mixprec;

TEST_SUITE("tensor") {
  TEST_CASE("parameters are copied to and from the host by index or name and role") {
    parameters<bfloat16, half> p;
    p.add("w", {2, 3});
    p.add("b", {3}, "no_decay");
    p.finalize();
    const std::vector<float> w = {1.0f, -2.0f, 0.5f, 3.0f, 1.0f / 3.0f, -0.125f};
    p.from_host(role::master, "w", w);
    CHECK(p.to_host(role::master, "w") == w);
    // The model copy follows the master weights, rounded to bfloat16.
    const std::vector<float> model = p.to_host(role::model, 0);
    for (std::size_t i = 0; i < w.size(); ++i) CHECK(model[i] == to_float(convert<bfloat16>(w[i])));
    CHECK(model[4] != w[4]);  // 1/3 is not a bfloat16
    p.from_host(role::grad, "b", {65504.0f, 70000.0f, 1e-8f});
    const std::vector<float> g = p.to_host(role::grad, "b");
    CHECK(g[0] == 65504.0f);
    CHECK(std::isinf(g[1]));  // beyond half's range: IEEE overflow for gradients
    CHECK(g[2] == to_float(convert<half>(1e-8f)));
    // The whole role, in parameter order, without padding.
    const std::vector<float> all = p.to_host(role::grad);
    REQUIRE(all.size() == 9);
    CHECK(all[6] == 65504.0f);
    std::vector<float> ones(9, 1.0f);
    p.from_host(role::master, ones);
    CHECK(p.to_host(role::model) == ones);
  }

  TEST_CASE("fp8 model copies saturate when written") {
    parameters<fp8_e4m3, bfloat16> p;
    p.add("w", {3});
    p.finalize();
    p.from_host(role::master, {1000.0f, -1000.0f, 1.0f});
    CHECK(p.to_host(role::model) == std::vector<float>{448.0f, -448.0f, 1.0f});
    CHECK(p.to_host(role::master) == std::vector<float>{1000.0f, -1000.0f, 1.0f});
  }

  TEST_CASE("host access misuse is a clear error that changes nothing") {
    parameters<bfloat16, bfloat16> p;
    p.add("w", {4});
    p.finalize();
    p.from_host(role::master, {1.0f, 2.0f, 3.0f, 4.0f});
    const std::vector<float> before = p.to_host(role::model);
    CHECK(test::contains(test::error_message([&] {
                           p.from_host(role::model, "w", {0.0f, 0.0f, 0.0f, 0.0f});
                         }),
                         "write role::master (the model copy follows)"));
    CHECK(test::contains(test::error_message([&] { p.from_host(role::master, "w", {1.0f}); }),
                         "1 values for shape [4] (4 elements)"));
    CHECK(test::contains(test::error_message([&] { (void)p.to_host(role::grad, "x"); }), "no parameter named \"x\""));
    CHECK(test::contains(test::error_message([&] { (void)p.to_host(role::grad, 3); }), "no parameter with index 3"));
    CHECK(p.to_host(role::model) == before);

    parameters<bfloat16, bfloat16, void> pure;
    pure.add("w", {2});
    pure.finalize();
    CHECK(test::contains(test::error_message([&] { (void)pure.to_host(role::master); }), "no master weights"));
    CHECK(test::contains(test::error_message([&] {
                           pure.from_host(role::master, {1.0f, 2.0f});
                         }),
                         "no master weights"));
    pure.from_host(role::model, {1.0f, 2.0f});
    CHECK(pure.to_host(role::model) == std::vector<float>{1.0f, 2.0f});

    parameters<float> unfinished;
    unfinished.add("w", {2});
    CHECK(test::contains(test::error_message([&] { (void)unfinished.to_host(role::grad); }), "before finalize()"));
  }

  TEST_CASE("views copy to and from the host") {
    tensor<half> t({2, 2});
    t.view().from_host_float({1.0f, 2.0f, 1e6f, -0.5f});
    const std::vector<float> back = t.view().to_host_float();
    CHECK(back[0] == 1.0f);
    CHECK(std::isinf(back[2]));  // only 8-bit formats saturate: half overflows to inf
    tensor_view<const half> ro = t.view();
    CHECK(ro.to_host().size() == 4);
    CHECK(test::contains(test::error_message([&] { t.view().from_host_float({1.0f}); }), "1 values for shape [2, 2]"));
  }
}
