// Must not compile: block_quantized with a block that is not a power of two.
#include <mixprec/mixprec.hpp>

int main() {
  const auto step = mixprec::adamw<mixprec::block_quantized<mixprec::dynamic8, 200>>(mixprec::adamw_options{});
  return static_cast<int>(step.size());
}
