// Must not compile: a number is not an initialiser.
#include <mixprec/mixprec.hpp>

int main() {
  mixprec::parameters<float> p;
  p.add("w", {4});
  p.finalize();
  p.initialize("w", 0.5f, 1);
}
