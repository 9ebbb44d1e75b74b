// Must not compile: 65 statistics in one chain.
#include <mixprec/mixprec.hpp>

struct curious {
  static constexpr const char* name = "curious";
  static constexpr mixprec::statistic statistics[65] = {};
  template <class Ctx>
  MIXPREC_HOST_DEVICE void decide(mixprec::no_scalars&, const Ctx&) const {}
};

int main() {
  const auto step = mixprec::chain(curious{}, mixprec::sgd(mixprec::sgd_options{}));
  (void)step;
}
