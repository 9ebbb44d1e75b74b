// Must not compile: Kahan summation on an arena that has fp32 master weights
// (the compensation belongs to low-precision weights; checked by CTest).
#include <mixprec/mixprec.hpp>

int main() {
  mixprec::parameters<mixprec::bfloat16> p;
  p.add("w", {4});
  p.finalize();
  const auto step = mixprec::chain(mixprec::sgd(mixprec::sgd_options{}), mixprec::kahan_summation<>{});
  auto state = step.init(p);
  step.apply(p, state);
  return 0;
}
