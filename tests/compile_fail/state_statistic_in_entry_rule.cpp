// Must not compile: a row rule reading a statistic of the state that the
// row rules themselves are writing (it is reduced after them).
#include <mixprec/mixprec.hpp>

struct reads_too_early {
  static constexpr const char* name = "reads_too_early";
  static constexpr mixprec::state_field state[] = {
      {"row_ema", mixprec::format_id::f32, mixprec::extent::row, mixprec::parameter_set::matrices}};
  static constexpr mixprec::field_id<mixprec::field_index(state, "row_ema")> row_ema{};
  static constexpr mixprec::statistic statistics[] = {
      {"row_sq", mixprec::scope::row, mixprec::reduction::power_sum, mixprec::source::input},
      mixprec::field_statistic("ema_sum", mixprec::scope::matrix, mixprec::reduction::sum, "row_ema")};
  static constexpr mixprec::stat_id<mixprec::statistic_index(statistics, "row_sq")> row_sq{};
  static constexpr mixprec::stat_id<mixprec::statistic_index(statistics, "ema_sum")> ema_sum{};
  template <class E>
  MIXPREC_HOST_DEVICE void decide_row(const E& e) const {
    if (e.covers(row_ema)) e.state(row_ema).set(static_cast<float>(e.statistic(row_sq) / (1.0 + e.statistic(ema_sum))));
  }
  template <class Ctx>
  MIXPREC_HOST_DEVICE float update(float u, const Ctx& ctx) const {
    return u * ctx.state(row_ema).get();
  }
};

int main() {
  mixprec::parameters<float> p;
  p.add("w", {4, 4});
  p.finalize();
  const auto step = mixprec::chain(reads_too_early{}, mixprec::sgd(mixprec::sgd_options{}));
  auto state = step.init(p);
  step.apply(p, state);
}
