// Must not compile: a guard after an optimizer stage (its statistics come after state writes).
#include <mixprec/mixprec.hpp>

int main() {
  const auto step = mixprec::chain(mixprec::adamw(mixprec::adamw_options{}), mixprec::skip_if_non_finite{});
  (void)step;
}
