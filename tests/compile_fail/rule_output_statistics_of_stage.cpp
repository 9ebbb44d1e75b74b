// Must not compile: a stage asks for statistics of its own output.
#include <mixprec/mixprec.hpp>

struct measures_itself {
  static constexpr const char* name = "measures_itself";
  static constexpr mixprec::statistic statistics[] = {
      {"out", mixprec::scope::global, mixprec::reduction::power_sum, mixprec::source::output}};
  template <class Ctx>
  MIXPREC_HOST_DEVICE void decide(mixprec::no_scalars&, const Ctx&) const {}
};

int main() {
  const auto step = mixprec::chain(measures_itself{}, mixprec::sgd(mixprec::sgd_options{}));
  (void)step;
}
