// Must not compile: a per-block statistic whose block is not a power of two.
#include <mixprec/mixprec.hpp>

struct odd_blocks {
  static constexpr const char* name = "odd_blocks";
  static constexpr mixprec::statistic statistics[] = {
      {"peak", mixprec::scope::block, mixprec::reduction::max_abs, mixprec::source::input, 100}};
  static constexpr mixprec::stat_id<mixprec::statistic_index(statistics, "peak")> peak{};
  template <class Ctx>
  MIXPREC_HOST_DEVICE float update(float u, const Ctx& ctx) const {
    return u / static_cast<float>(ctx.statistic(peak));
  }
};

int main() {
  const auto step = mixprec::chain(odd_blocks{}, mixprec::sgd(mixprec::sgd_options{}));
  (void)step;
}
