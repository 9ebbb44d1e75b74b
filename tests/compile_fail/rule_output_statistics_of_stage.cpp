// Must not compile: a stage asks for statistics of its own output.
#include <mixprec/mixprec.hpp>

struct measures_itself {
  static constexpr const char* name = "measures_itself";
  static constexpr mixprec::statistic statistics[] = {
      {"out", mixprec::scope::global, mixprec::reduction::power_sum, mixprec::source::output}};
  template <class Ctx>
  MIXPREC_HOST_DEVICE void decide(mixprec::no_scalars&, const Ctx&) const {}
  // An element rule that is neither linear nor before the statistics: a stage.
  template <class Ctx>
  MIXPREC_HOST_DEVICE float update(float u, const Ctx&) const {
    return u * u;
  }
};

int main() {
  const auto step = mixprec::chain(measures_itself{}, mixprec::sgd(mixprec::sgd_options{}));
  (void)step;
}
