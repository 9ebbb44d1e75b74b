// Must not compile: the element rule is misspelled (`apply`), so the engine would not call it.
#include <mixprec/mixprec.hpp>

struct misspelled_rule {
  static constexpr const char* name = "misspelled_rule";
  template <class Ctx>
  MIXPREC_HOST_DEVICE float apply(float u, const Ctx&) const {
    return 2.0f * u;
  }
};

int main() {
  const auto step = mixprec::chain(misspelled_rule{}, mixprec::sgd(mixprec::sgd_options{}));
  (void)step;
}
