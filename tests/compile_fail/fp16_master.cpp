// Must not compile: half-precision master weights (checked by CTest).
#include <mixprec/mixprec.hpp>

int main() {
  mixprec::parameters<mixprec::half, mixprec::half, mixprec::half> p;
  return static_cast<int>(p.count());
}
