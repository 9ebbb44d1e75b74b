// Must not compile: two per-block statistics of one chain with different blocks.
#include <mixprec/mixprec.hpp>

template <std::uint32_t N>
struct by_block {
  static constexpr const char* name = "by_block";
  static constexpr mixprec::statistic statistics[] = {
      {"peak", mixprec::scope::block, mixprec::reduction::max_abs, mixprec::source::input, N}};
  static constexpr mixprec::stat_id<mixprec::statistic_index(statistics, "peak")> peak{};
  template <class Ctx>
  MIXPREC_HOST_DEVICE float update(float u, const Ctx& ctx) const {
    return u / static_cast<float>(ctx.statistic(peak));
  }
};

int main() {
  const auto step = mixprec::chain(by_block<64>{}, by_block<128>{}, mixprec::sgd(mixprec::sgd_options{}));
  (void)step;
}
