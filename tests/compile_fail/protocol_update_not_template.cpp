// Must not compile: an element rule that is not a template on the context is not the one the engine calls.
#include <mixprec/mixprec.hpp>

struct plain_update {
  static constexpr const char* name = "plain_update";
  float update(float u) const { return 2.0f * u; }
};

int main() {
  const auto step = mixprec::chain(plain_update{}, mixprec::sgd(mixprec::sgd_options{}));
  (void)step;
}
