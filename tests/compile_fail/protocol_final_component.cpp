// Must not compile: a final component (the engine finds its members by name, through a class derived from it; a
// final one would have its rules ignored).
#include <mixprec/mixprec.hpp>

struct sealed_rule final {
  static constexpr const char* name = "sealed_rule";
  template <class Ctx>
  MIXPREC_HOST_DEVICE float update(float u, const Ctx&) const {
    return 2.0f * u;
  }
};

int main() {
  const auto step = mixprec::chain(sealed_rule{}, mixprec::sgd(mixprec::sgd_options{}));
  (void)step;
}
