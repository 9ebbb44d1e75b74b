// Extension points found by what components declare, not by type: a
// user-written loss scaler (backoff only) and a user-written weight writer
// (round toward zero) work with no change to the library; a scaler derived
// from dynamic_loss_scale is a scaler; a chain without one answers
// loss_scale() with 1; row and column state and positions reach the element
// rule; a field on every matrix refuses an arena with a vector.
#include <cmath>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include <mixprec/mixprec.hpp>

#include "../support/errors.hpp"

namespace user {

// Halves the scale on every step whose unscaled gradient has inf or NaN
// (and skips it); never grows it.
struct backoff_only_scale {
  static constexpr const char* name = "backoff_only_scale";
  struct traits : mixprec::component_traits {
    static constexpr bool before_statistics = true;
    static constexpr bool linear = true;
    static constexpr bool may_skip = true;
    static constexpr bool loss_scaler = true;
  };
  static constexpr mixprec::statistic statistics[] = {
      {"non_finite", mixprec::scope::global, mixprec::reduction::non_finite_count, mixprec::source::output}};
  float initial = 1024.0f;
  struct scalars {
    float scale, inv_scale;
  };
  scalars initial_scalars() const { return {initial, 1.0f / initial}; }
  template <class Ctx>
  MIXPREC_HOST_DEVICE float update(float u, const Ctx& ctx) const {
    return u * ctx.scalars().inv_scale;
  }
  template <class Ctx>
  MIXPREC_HOST_DEVICE void decide(scalars& s, const Ctx& ctx) const {
    if (ctx.statistic(mixprec::stat_id<0>{}) != 0.0) {
      ctx.skip();
      s.scale *= 0.5f;
      s.inv_scale = 1.0f / s.scale;
    }
  }
  template <class V>
  static void visit_scalars(scalars& s, V&& v) {
    v("scale", s.scale);
    v("inv_scale", s.inv_scale);
  }
};

// Writes the model copy rounded toward zero.
struct round_model_toward_zero {
  static constexpr const char* name = "round_model_toward_zero";
  using traits = mixprec::writer_traits;
  static constexpr bool works_with_master = true;
  static constexpr bool needs_narrow_model = true;
  template <class Model, class Ctx>
  MIXPREC_HOST_DEVICE Model round_weight(float v, const Ctx&) const {
    return mixprec::convert<Model>(v, mixprec::round_toward_zero{});
  }
  template <class Model, class Ctx>
  MIXPREC_HOST_DEVICE Model write_weight(float, float updated, float, const Ctx&) const {
    return mixprec::convert<Model>(updated, mixprec::round_toward_zero{});
  }
};

// Records each element's row and column (of the last two dimensions) and
// keeps a per-row count of its updates, as a test of positions and extents.
struct where_am_i {
  static constexpr const char* name = "where_am_i";
  struct traits : mixprec::component_traits {
    static constexpr bool keeps_update = true;
    static constexpr bool needs_position = true;
  };
  static constexpr mixprec::state_field state[] = {
      {"row", mixprec::format_id::f32},
      {"col", mixprec::format_id::f32},
      {"row_updates", mixprec::format_id::f32, mixprec::extent::row, mixprec::parameter_set::every_matrix}};
  template <class E>
  MIXPREC_HOST_DEVICE void decide_row(const E& e) const {
    if (e.covers(mixprec::field_id<2>{})) {
      const auto n = e.state(mixprec::field_id<2>{});
      n.set(n.get() + 1.0f);
    }
  }
  template <class Ctx>
  MIXPREC_HOST_DEVICE float update(float u, const Ctx& ctx) const {
    ctx.state(mixprec::field_id<0>{}).set(static_cast<float>(ctx.row()));
    ctx.state(mixprec::field_id<1>{}).set(static_cast<float>(ctx.col()));
    return u;
  }
};

// A scaler of one's own, derived from the built-in one.
struct my_scale : mixprec::dynamic_loss_scale {
  static constexpr const char* name = "my_scale";
};

}  // namespace user

using namespace mixprec;

TEST_SUITE("train") {
  TEST_CASE("a user-written loss scaler is found by what it declares") {
    parameters<half, half> p;
    p.add("w", {64});
    p.finalize();
    const auto step = chain(user::backoff_only_scale{}, adamw(adamw_options{}));
    static_assert(decltype(step)::has_loss_scaler);
    auto state = step.init(p);
    CHECK(state.loss_scale() == 1024.0f);
    std::vector<float> g(64, 0.5f);
    for (int t = 0; t < 5; ++t) {
      g[7] = t % 2 == 0 ? 1e5f : 0.5f;  // 1e5 overflows half: inf
      p.from_host(role::grad, g);
      step.apply(p, state);
      CHECK(state.last_step_skipped() == (t % 2 == 0));
    }
    CHECK(state.loss_scale() == 128.0f);  // three backoffs, no growth
    CHECK(state.count() == 2);
    const std::string path = "/tmp/mixprec_test_user_scaler.ckpt";
    save_checkpoint(path, step, p, state);
    auto other = step.init(p);
    load_checkpoint(path, step, p, other);
    CHECK(other.loss_scale() == 128.0f);
    std::remove(path.c_str());
  }

  TEST_CASE("a scaler derived from dynamic_loss_scale is a scaler and a chain without one has scale 1") {
    using my_scale = user::my_scale;
    static_assert(decltype(chain(my_scale{}, sgd(sgd_options{})))::has_loss_scaler);
    parameters<float> p;
    p.add("w", {4});
    p.finalize();
    auto derived = chain(my_scale{}, sgd(sgd_options{})).init(p);
    CHECK(derived.loss_scale() == 65536.0f);
    const auto plain = chain(sgd(sgd_options{}));
    static_assert(!decltype(plain)::has_loss_scaler);
    auto state = plain.init(p);
    CHECK(state.loss_scale() == 1.0f);
    float on_device = 0.0f;
    detail::copy_to_host(state.loss_scale_data(), &on_device, 1);
    CHECK(on_device == 1.0f);
  }

  TEST_CASE("a user-written weight writer replaces the default") {
    parameters<bfloat16, bfloat16> p;
    p.add("w", {100});
    p.finalize();
    p.initialize_all(init::normal{0.0, 1.0}, 3);
    sgd_options o;
    o.lr = 0.013f;
    const auto step = chain(sgd(o), user::round_model_toward_zero{});
    auto state = step.init(p);
    std::vector<float> g(100);
    for (std::size_t i = 0; i < g.size(); ++i) g[i] = std::cos(0.1f * i);
    p.from_host(role::grad, g);
    step.apply(p, state);
    const std::vector<float> master = p.to_host(role::master), model = p.to_host(role::model);
    std::size_t differs_from_nearest = 0;
    for (std::size_t i = 0; i < master.size(); ++i) {
      CHECK(model[i] == to_float(convert<bfloat16>(master[i], round_toward_zero{})));
      differs_from_nearest += model[i] != to_float(convert<bfloat16>(master[i]));
    }
    CHECK(differs_from_nearest > 10);
  }

  TEST_CASE("row and column positions and row state reach the rules") {
    parameters<float> p;
    p.add("m", {2, 3, 5});  // two matrices of 3 x 5
    p.add("n", {4, 70});    // wider than a column block
    p.finalize();
    const auto step = chain(user::where_am_i{}, sgd(sgd_options{}));
    auto state = step.init(p);
    step.apply(p, state);
    step.apply(p, state);
    const std::vector<float> row = state.field<0>("row").to_host(), col = state.field<0>("col").to_host();
    for (std::size_t i = 0; i < 30; ++i) {
      CHECK(row[p["m"].offset + i] == static_cast<float>(i / 5));  // rows of both matrices: 0..5
      CHECK(col[p["m"].offset + i] == static_cast<float>(i % 5));
    }
    for (std::size_t i = 0; i < 280; ++i) {
      CHECK(row[p["n"].offset + i] == static_cast<float>(i / 70));
      CHECK(col[p["n"].offset + i] == static_cast<float>(i % 70));
    }
    const std::vector<float> updates = state.field<0>("row_updates").to_host();
    REQUIRE(updates.size() == 6 + 4);
    for (float u : updates) CHECK(u == 2.0f);
    parameters<float> q;
    q.add("m", {3, 5});
    q.add("bias", {5});
    q.finalize();
    CHECK(test::contains(test::error_message([&] { (void)step.init(q); }),
                         "where_am_i: state field \"row_updates\" has an entry per row of every parameter's last two "
                         "dimensions, but parameter \"bias\" has rank 1"));
  }
}
