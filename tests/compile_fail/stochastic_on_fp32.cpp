// Must not compile: stochastic rounding of a float model copy changes nothing.
#include <mixprec/mixprec.hpp>

int main() {
  mixprec::parameters<float> p;
  const auto step = mixprec::chain(mixprec::sgd(mixprec::sgd_options{}), mixprec::round_model_stochastic{1});
  auto state = step.init(p);
  step.apply(p, state);
}
