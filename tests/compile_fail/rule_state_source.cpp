// Must not compile: a statistic of state that names an element field (only
// row and column fields are reduced that way).
#include <mixprec/mixprec.hpp>

struct misnamed_source {
  static constexpr const char* name = "misnamed_source";
  static constexpr mixprec::state_field state[] = {{"trace", mixprec::format_id::f32}};
  static constexpr mixprec::field_id<mixprec::field_index(state, "trace")> trace{};
  static constexpr mixprec::statistic statistics[] = {
      mixprec::field_statistic("trace_sum", mixprec::scope::parameter, mixprec::reduction::sum, "trace")};
  static constexpr mixprec::stat_id<mixprec::statistic_index(statistics, "trace_sum")> trace_sum{};
  template <class Ctx>
  MIXPREC_HOST_DEVICE float update(float u, const Ctx& ctx) const {
    return ctx.state(trace).update([&](float m) { return m + u; }) / static_cast<float>(ctx.statistic(trace_sum));
  }
};

int main() {
  const auto step = mixprec::chain(misnamed_source{}, mixprec::sgd(mixprec::sgd_options{}));
  (void)step;
}
