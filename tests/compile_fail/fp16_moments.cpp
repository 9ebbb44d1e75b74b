// Must not compile: Adam moments in half precision (float or bfloat16 only).
#include <mixprec/mixprec.hpp>

int main() {
  const auto step = mixprec::adam<mixprec::half>(mixprec::adam_options{});
  return static_cast<int>(step.size());
}
