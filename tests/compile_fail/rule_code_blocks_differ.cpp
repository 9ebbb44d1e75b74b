// Must not compile: two stages with 8-bit coded state of different blocks.
#include <mixprec/mixprec.hpp>

int main() {
  using mixprec::block_quantized;
  using mixprec::dynamic8;
  const auto step = mixprec::chain(mixprec::trace<block_quantized<dynamic8, 128>>{},
                                   mixprec::scale_by_adam<block_quantized<dynamic8, 64>>{},
                                   mixprec::scale_by_learning_rate<>{{1e-3f}});
  (void)step;
}
