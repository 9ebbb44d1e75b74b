// Must not compile: a statistic of the output of a stage whose moments are
// 8-bit codes (a measuring pass would have to run the stage, but only the
// update pass writes a block's codes).
#include <mixprec/mixprec.hpp>

int main() {
  const auto step = mixprec::chain(mixprec::scale_by_adam<mixprec::block_quantized<>>{},
                                   mixprec::clip_by_global_norm{1.0f}, mixprec::scale_by_learning_rate<>{{1e-3f}});
  (void)step;
}
