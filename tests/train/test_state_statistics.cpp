// Per-matrix statistics (scope::matrix) of the update, and statistics of
// state (source::state): a component's row or column field reduced per
// matrix, per parameter or over the arena after its entry rules of the
// step, read by the element rule. Checked against the same
// reductions of the gradients done here in long double, over two steps (so
// that a value reduced before this step's entry rules would show), with a
// rank-3 and a rank-4 parameter (several matrices each) and a vector the
// row field does not cover.
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include <mixprec/mixprec.hpp>

#include "../support/errors.hpp"

using namespace mixprec;

namespace {

enum class state_probe_output { matrix_sum, parameter_sum, global_max };

// decide_row adds the row's sum of the input to row_total (of matrices);
// decide_column sets col_peak to the column's max |x| (of every
// parameter); the update becomes one statistic of those fields.
template <state_probe_output Out>
struct state_statistic_probe {
  static constexpr const char* name = "state_statistic_probe";
  static constexpr state_field state[] = {{"row_total", format_id::f32, extent::row, parameter_set::matrices},
                                          {"col_peak", format_id::f32, extent::column}};
  static constexpr field_id<field_index(state, "row_total")> row_total{};
  static constexpr field_id<field_index(state, "col_peak")> col_peak{};
  static constexpr statistic statistics[] = {
      {"row_sum", scope::row, reduction::sum, source::input},
      {"col_max", scope::column, reduction::max_abs, source::input},
      field_statistic("matrix_total", scope::matrix, reduction::sum, "row_total"),
      field_statistic("parameter_total", scope::parameter, reduction::sum, "row_total"),
      field_statistic("global_peak", scope::global, reduction::max_abs, "col_peak")};
  static constexpr stat_id<statistic_index(statistics, "row_sum")> row_sum{};
  static constexpr stat_id<statistic_index(statistics, "col_max")> col_max{};
  static constexpr stat_id<statistic_index(statistics, "matrix_total")> matrix_total{};
  static constexpr stat_id<statistic_index(statistics, "parameter_total")> parameter_total{};
  static constexpr stat_id<statistic_index(statistics, "global_peak")> global_peak{};

  template <class E>
  MIXPREC_HOST_DEVICE void decide_row(const E& e) const {
    if (!e.covers(row_total)) return;
    const auto v = e.state(row_total);
    v.set(v.get() + static_cast<float>(e.statistic(row_sum)));
  }
  template <class E>
  MIXPREC_HOST_DEVICE void decide_column(const E& e) const {
    e.state(col_peak).set(static_cast<float>(e.statistic(col_max)));
  }
  template <class Ctx>
  MIXPREC_HOST_DEVICE float update(float, const Ctx& ctx) const {
    if constexpr (Out == state_probe_output::matrix_sum) return static_cast<float>(ctx.statistic(matrix_total));
    else if constexpr (Out == state_probe_output::parameter_sum)
      return static_cast<float>(ctx.statistic(parameter_total));
    else return static_cast<float>(ctx.statistic(global_peak));
  }
};

// Two matrices of 4 x 6 with one of 5 x 3 and three of 4 x 2, and a vector.
const std::vector<std::vector<std::size_t>> state_test_shapes = {{4, 6}, {2, 5, 3}, {3, 1, 4, 2}, {7}};

float state_test_gradient(std::size_t k, std::size_t i) {
  const float v = std::ldexp(static_cast<float>((i * 2654435761u + k * 131u) % 1999u) - 999.0f, -8);
  return (i + k) % 4 == 1 ? -v : v;
}

// Two SGD steps (lr 1, weights 0) behind the probe with the same
// gradients: the weights become minus the sum of the two steps' values.
template <state_probe_output Out>
std::vector<std::vector<float>> two_steps(std::vector<std::vector<float>>& grads) {
  parameters<float> p;
  for (std::size_t k = 0; k < state_test_shapes.size(); ++k)
    p.add("p" + std::to_string(k), shape(state_test_shapes[k].begin(), state_test_shapes[k].end()));
  p.finalize();
  grads.assign(state_test_shapes.size(), {});
  for (std::size_t k = 0; k < state_test_shapes.size(); ++k) {
    const std::size_t n = p.list()[k].shape.size();
    p.from_host(role::master, k, std::vector<float>(n, 0.0f));
    for (std::size_t i = 0; i < n; ++i) grads[k].push_back(state_test_gradient(k, i));
  }
  sgd_options o;
  o.lr = 1.0f;
  const auto step = chain(state_statistic_probe<Out>{}, sgd(o));
  auto state = step.init(p);
  for (int s = 0; s < 2; ++s) {
    for (std::size_t k = 0; k < state_test_shapes.size(); ++k) p.from_host(role::grad, k, grads[k]);
    step.apply(p, state);
  }
  std::vector<std::vector<float>> w;
  for (std::size_t k = 0; k < state_test_shapes.size(); ++k) w.push_back(p.to_host(role::master, k));
  return w;
}

// Rows and matrices of a parameter's last two dimensions.
struct matrix_shape {
  std::size_t batches, rows, cols;
};
matrix_shape matrices_of(const std::vector<std::size_t>& s) {
  matrix_shape m{1, s.size() <= 1 ? 1 : s[s.size() - 2], s.empty() ? 1 : s.back()};
  for (std::size_t a = 0; a + 2 < s.size(); ++a) m.batches *= s[a];
  return m;
}

// row_total after two steps is twice each row's sum (each sum rounded to
// float as the field stores it): the matrix's sum of them, in long double.
long double matrix_of_row_totals(const std::vector<float>& g, const matrix_shape& m, std::size_t b) {
  long double total = 0;
  for (std::size_t r = 0; r < m.rows; ++r) {
    long double row = 0;
    for (std::size_t c = 0; c < m.cols; ++c) row += g[(b * m.rows + r) * m.cols + c];
    total += row;
  }
  return 2 * total;
}

// The update becomes its matrix's sum of squares of the input.
struct matrix_statistic_probe {
  static constexpr const char* name = "matrix_statistic_probe";
  static constexpr statistic statistics[] = {{"matrix_sq", scope::matrix, reduction::power_sum, source::input}};
  static constexpr stat_id<statistic_index(statistics, "matrix_sq")> matrix_sq{};
  template <class Ctx>
  MIXPREC_HOST_DEVICE float update(float, const Ctx& ctx) const {
    return static_cast<float>(ctx.statistic(matrix_sq));
  }
};

}  // namespace

TEST_SUITE("train") {
  TEST_CASE("per-matrix statistics: each matrix of the last two dimensions its own sum of squares") {
    parameters<float> p;
    for (std::size_t k = 0; k < state_test_shapes.size(); ++k)
      p.add("p" + std::to_string(k), shape(state_test_shapes[k].begin(), state_test_shapes[k].end()));
    p.finalize();
    std::vector<std::vector<float>> g(state_test_shapes.size());
    for (std::size_t k = 0; k < state_test_shapes.size(); ++k) {
      const std::size_t n = p.list()[k].shape.size();
      p.from_host(role::master, k, std::vector<float>(n, 0.0f));
      for (std::size_t i = 0; i < n; ++i) g[k].push_back(state_test_gradient(k, i));
      p.from_host(role::grad, k, g[k]);
    }
    sgd_options o;
    o.lr = 1.0f;
    const auto step = chain(matrix_statistic_probe{}, sgd(o));
    CHECK(test::contains(step.describe(), "matrix_statistic_probe.matrix_sq (per matrix sum |x|^p of its input)"));
    auto state = step.init(p);
    step.apply(p, state);
    for (std::size_t k = 0; k < state_test_shapes.size(); ++k) {
      const matrix_shape m = matrices_of(state_test_shapes[k]);
      const std::vector<float> w = p.to_host(role::master, k);
      const std::size_t per = m.rows * m.cols;
      for (std::size_t b = 0; b < m.batches; ++b) {
        long double sq = 0;
        for (std::size_t i = b * per; i < (b + 1) * per; ++i) sq += static_cast<long double>(g[k][i]) * g[k][i];
        for (std::size_t i = b * per; i < (b + 1) * per; ++i) {
          CAPTURE(k);
          CAPTURE(i);
          // Squares of floats summed in double: exact to double's rounding, then one float rounding.
          CHECK(-w[i] == static_cast<float>(sq));
        }
      }
    }
  }

  TEST_CASE("statistics of state: each matrix's sum of a row field after this step's row rules") {
    std::vector<std::vector<float>> g;
    const auto w = two_steps<state_probe_output::matrix_sum>(g);
    std::size_t checked = 0;
    for (std::size_t k = 0; k < state_test_shapes.size(); ++k) {
      const matrix_shape m = matrices_of(state_test_shapes[k]);
      const bool covered = state_test_shapes[k].size() >= 2;
      for (std::size_t b = 0; b < m.batches; ++b) {
        // Step 1 sees one step's totals, step 2 two: the weights hold -(1 + 2) halves of it.
        const long double two = covered ? matrix_of_row_totals(g[k], m, b) : 0;
        const float expect = static_cast<float>(1.5L * two);
        for (std::size_t i = b * m.rows * m.cols; i < (b + 1) * m.rows * m.cols; ++i) {
          CAPTURE(k);
          CAPTURE(i);
          // Row sums rounded to float, two steps of weight updates (fp32's unit roundoff 2^-24).
          CHECK(-w[k][i] == doctest::Approx(expect).epsilon(std::ldexp(1.0, -20)).scale(1e-3));
          if (!covered) CHECK(w[k][i] == 0.0f);  // a parameter the field does not cover: no entries
          ++checked;
        }
      }
    }
    CHECK(checked == 4 * 6 + 2 * 5 * 3 + 3 * 4 * 2 + 7);
  }

  TEST_CASE("statistics of state: each parameter's sum of a row field and the arena's max of a column field") {
    std::vector<std::vector<float>> g;
    const auto per_parameter = two_steps<state_probe_output::parameter_sum>(g);
    for (std::size_t k = 0; k < state_test_shapes.size(); ++k) {
      const matrix_shape m = matrices_of(state_test_shapes[k]);
      long double two = 0;
      if (state_test_shapes[k].size() >= 2)
        for (std::size_t b = 0; b < m.batches; ++b) two += matrix_of_row_totals(g[k], m, b);
      const float expect = static_cast<float>(1.5L * two);
      for (float v : per_parameter[k]) CHECK(-v == doctest::Approx(expect).epsilon(std::ldexp(1.0, -20)).scale(1e-3));
    }
    // col_peak is each column's max |g| (set, not accumulated): the arena's
    // max |g| both steps, exactly.
    const auto global = two_steps<state_probe_output::global_max>(g);
    float peak = 0.0f;
    for (const auto& gk : g)
      for (float v : gk) peak = std::fmax(peak, std::fabs(v));
    for (const auto& wk : global)
      for (float v : wk) CHECK(-v == 2.0f * peak);
  }

  TEST_CASE("statistics of state: the plan reduces them after the entry rules and before the update pass") {
    const auto step = chain(state_statistic_probe<state_probe_output::matrix_sum>{}, sgd(sgd_options{}));
    CHECK(decltype(step)::plan::passes() == 2);
    const std::string plan = step.describe();
    CHECK(test::contains(plan,
                         "then reduces state_statistic_probe.matrix_total (per matrix sum of its state "
                         "row_total); state_statistic_probe.parameter_total (per parameter sum of its state "
                         "row_total); state_statistic_probe.global_peak (global max |x| of its state col_peak)\n"
                         "pass 2 (update)"));
  }
}  // TEST_SUITE
