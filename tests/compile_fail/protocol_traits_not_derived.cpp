// Must not compile: traits that do not derive from mixprec::component_traits.
#include <mixprec/mixprec.hpp>

struct lone_traits {
  static constexpr const char* name = "lone_traits";
  struct traits {
    static constexpr bool linear = true;
  };
  template <class Ctx>
  MIXPREC_HOST_DEVICE float update(float u, const Ctx&) const {
    return 2.0f * u;
  }
};

int main() {
  const auto step = mixprec::chain(lone_traits{}, mixprec::sgd(mixprec::sgd_options{}));
  (void)step;
}
