// Must not compile: per-block statistics beside a per-row one (their tiles differ).
#include <mixprec/mixprec.hpp>

struct blocks_and_rows {
  static constexpr const char* name = "blocks_and_rows";
  static constexpr mixprec::statistic statistics[] = {
      {"peak", mixprec::scope::block, mixprec::reduction::max_abs, mixprec::source::input, 64},
      {"row_peak", mixprec::scope::row, mixprec::reduction::max_abs, mixprec::source::input}};
  static constexpr mixprec::stat_id<mixprec::statistic_index(statistics, "peak")> peak{};
  static constexpr mixprec::stat_id<mixprec::statistic_index(statistics, "row_peak")> row_peak{};
  template <class Ctx>
  MIXPREC_HOST_DEVICE float update(float u, const Ctx& ctx) const {
    return u / static_cast<float>(ctx.statistic(peak) + ctx.statistic(row_peak));
  }
};

int main() {
  const auto step = mixprec::chain(blocks_and_rows{}, mixprec::sgd(mixprec::sgd_options{}));
  (void)step;
}
