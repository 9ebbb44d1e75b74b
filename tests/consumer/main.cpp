// Smallest use of the installed package: include the umbrella header and
// convert a value on the selected backend.
#include <cstdio>

#include <mixprec/mixprec.hpp>

int main() {
  const float x = 1.0f / 3.0f;
  const mixprec::bfloat16 b = mixprec::convert<mixprec::bfloat16>(x);
  std::printf("backend %s: 1/3 as bfloat16 = %.8f\n", mixprec::backend_name(mixprec::current_backend),
              mixprec::to_float(b));
  return mixprec::to_float(b) == 0.333984375f ? 0 : 1;
}
