// Must not compile: a norm of Lion's output needs Lion recomputed, which it cannot be.
#include <mixprec/mixprec.hpp>

int main() {
  const auto step = mixprec::chain(mixprec::lion(mixprec::lion_options{}), mixprec::clip_by_global_norm{1.0f});
  (void)step;
}
