// Adafactor against torch.optim.Adafactor of the newest PyTorch (reference
// trajectories from scripts/reference/adafactor.py in
// tests/data/adafactor_reference.txt): 200 steps on four parameters (rank
// 2, 1, 3 and 2: factored, unfactored, factored per matrix of a batch),
// with weight decay, maximize, other lr / d / eps, tiny gradients where eps
// decides, and gradients with zero rows, columns and slices; every checked
// weight within 1e-6 relative.
#include <cmath>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include <mixprec/mixprec.hpp>

#include "../support/errors.hpp"
#include "../support/trajectory.hpp"

using namespace mixprec;

namespace {

const std::vector<shape> adafactor_shapes = {{4, 5}, {7}, {2, 3, 2}, {6, 3}};

// The reference's zero_grad_rule rows_cols (tests/data/adafactor_reference.txt).
bool zeroed(std::uint64_t t, std::size_t k, std::size_t i) {
  switch (k) {
    case 0:
      return i / 5 == 3 || (i / 5 == 1 && t % 2 == 0);
    case 1:
      return i == 0 || i == 3;
    case 2:
      return (i / 6 == 1 && t % 2 == 1) || (i / 6 == 0 && (i % 6) / 2 == 2);
    default:
      return i % 3 == 0 || (i / 3 == 5 && t % 4 == 1);
  }
}

}  // namespace

TEST_SUITE("optim") {
  TEST_CASE("adafactor matches torch.optim.Adafactor over 200 steps") {
    const auto cases = test::read_reference("adafactor_reference.txt");
    REQUIRE(cases.size() >= 6);
    for (const auto& c : cases) {
      adafactor_options o;
      o.lr = static_cast<float>(c.number("lr"));
      o.beta2_decay = static_cast<float>(c.number("beta2_decay"));
      o.eps1 = static_cast<float>(c.number("eps1"));
      o.eps2 = static_cast<float>(c.number("eps2"));
      o.d = static_cast<float>(c.number("d"));
      o.weight_decay = static_cast<float>(c.number("weight_decay"));
      o.maximize = c.number("maximize") != 0;
      const float grad_scale = static_cast<float>(c.number("grad_scale"));
      const bool zeros = c.text("zero_grad_rule") == "rows_cols";
      REQUIRE((zeros || c.text("zero_grad_rule") == "none"));
      const auto r =
          test::run_trajectory(c, adafactor_shapes, {"default", "default", "default", "default"}, adafactor(o),
                               [&](std::uint64_t t, std::size_t k, std::size_t i) {
                                 return zeros && zeroed(t, k, i) ? 0.0f : test::synthetic_gradient(t, k, i, grad_scale);
                               });
      MESSAGE("adafactor " << c.name << ": worst relative error " << r.worst_relative << " over " << r.checked
                           << " values");
      CHECK(r.checked == 10 * (20 + 7 + 12 + 18));  // ten checked steps, every weight
      CHECK(r.worst_relative <= 1e-6);
    }
  }

  TEST_CASE("adafactor keeps factored state: rows and columns of matrices and elements of vectors") {
    parameters<bfloat16, bfloat16> p;
    p.add("w", {64, 32});
    p.add("conv", {8, 4, 3, 3});
    p.add("b", {32});
    p.finalize();
    const auto step = adafactor(adafactor_options{});
    auto state = step.init(p);
    // The rows' and columns' EMAs and the vector's elements, in floats (each
    // matrix's mean of its rows is a statistic of the row EMAs, not state).
    const double rows = 64 + 8 * 4 * 3, cols = 32 + 8 * 4 * 3;
    const double expected = 4.0 * (rows + cols + 32);
    CHECK(state.state_bytes() == static_cast<std::size_t>(expected));
    CHECK(state.bytes_per_parameter() < 1.0);  // Adam keeps 8
    CHECK(decltype(step)::plan::passes() == 3);
    CHECK(test::contains(step.describe(), "adafactor/scale_by_factored_rms.row_sq (per row sum |x|^p of its input)"));
    CHECK(test::contains(step.describe(),
                         "then reduces adafactor/scale_by_factored_rms.row_var_sum (per matrix sum of "
                         "its state row_var)"));
  }
}
