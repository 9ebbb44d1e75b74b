// Must not compile: 8-bit coded moments beside a per-row statistic (the
// blocks need tiles of consecutive elements, the rows tiles of rows).
#include <mixprec/mixprec.hpp>

struct row_normalized {
  static constexpr const char* name = "row_normalized";
  static constexpr mixprec::statistic statistics[] = {
      {"row_peak", mixprec::scope::row, mixprec::reduction::max_abs, mixprec::source::input}};
  static constexpr mixprec::stat_id<mixprec::statistic_index(statistics, "row_peak")> row_peak{};
  template <class Ctx>
  MIXPREC_HOST_DEVICE float update(float u, const Ctx& ctx) const {
    return u / static_cast<float>(ctx.statistic(row_peak));
  }
};

int main() {
  const auto step =
      mixprec::chain(row_normalized{}, mixprec::adamw<mixprec::block_quantized<>>(mixprec::adamw_options{}));
  (void)step;
}
