// Must not compile: two weight writers.
#include <mixprec/mixprec.hpp>

int main() {
  const auto step = mixprec::chain(mixprec::sgd(mixprec::sgd_options{}), mixprec::round_model_stochastic{1},
                                   mixprec::round_model_nearest{});
  (void)step;
}
