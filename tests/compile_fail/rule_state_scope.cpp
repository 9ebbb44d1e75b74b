// Must not compile: a statistic of state per row (it is global, per
// parameter or per matrix: a row field's rows are already its entries).
#include <mixprec/mixprec.hpp>

struct per_row_of_state {
  static constexpr const char* name = "per_row_of_state";
  static constexpr mixprec::state_field state[] = {
      {"row_ema", mixprec::format_id::f32, mixprec::extent::row, mixprec::parameter_set::matrices}};
  static constexpr mixprec::field_id<mixprec::field_index(state, "row_ema")> row_ema{};
  static constexpr mixprec::statistic statistics[] = {
      {"row_sq", mixprec::scope::row, mixprec::reduction::power_sum, mixprec::source::input},
      mixprec::field_statistic("row_copy", mixprec::scope::row, mixprec::reduction::sum, "row_ema")};
  static constexpr mixprec::stat_id<mixprec::statistic_index(statistics, "row_sq")> row_sq{};
  static constexpr mixprec::stat_id<mixprec::statistic_index(statistics, "row_copy")> row_copy{};
  template <class E>
  MIXPREC_HOST_DEVICE void decide_row(const E& e) const {
    if (e.covers(row_ema)) e.state(row_ema).set(static_cast<float>(e.statistic(row_sq)));
  }
  template <class Ctx>
  MIXPREC_HOST_DEVICE float update(float u, const Ctx& ctx) const {
    return u / static_cast<float>(ctx.statistic(row_copy));
  }
};

int main() {
  const auto step = mixprec::chain(per_row_of_state{}, mixprec::sgd(mixprec::sgd_options{}));
  (void)step;
}
