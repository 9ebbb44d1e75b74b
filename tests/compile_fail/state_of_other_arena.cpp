// Must not compile: a chain state made for a bf16 arena applied to a half arena.
#include <mixprec/mixprec.hpp>

int main() {
  mixprec::parameters<mixprec::bfloat16, mixprec::bfloat16> a;
  mixprec::parameters<mixprec::half, mixprec::half> b;
  const auto step = mixprec::chain(mixprec::dynamic_loss_scale{}, mixprec::adamw(mixprec::adamw_options{}));
  auto state = step.init(a);
  step.apply(b, state);
}
