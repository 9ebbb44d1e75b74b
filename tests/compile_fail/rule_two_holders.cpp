// Must not compile: two components that hold a step.
#include <mixprec/mixprec.hpp>

int main() {
  const auto step = mixprec::chain(mixprec::every_k{2}, mixprec::every_k{3}, mixprec::sgd(mixprec::sgd_options{}));
  (void)step;
}
