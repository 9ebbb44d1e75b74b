// Must not compile: a component that runs before the statistics keeps state.
#include <mixprec/mixprec.hpp>

struct stateful_prefix {
  static constexpr const char* name = "stateful_prefix";
  struct traits : mixprec::component_traits {
    static constexpr bool before_statistics = true;
  };
  static constexpr mixprec::state_field state[] = {{"memory", mixprec::format_id::f32}};
  template <class Ctx>
  MIXPREC_HOST_DEVICE float update(float u, const Ctx&) const {
    return u;
  }
};

int main() {
  const auto step = mixprec::chain(stateful_prefix{}, mixprec::sgd(mixprec::sgd_options{}));
  (void)step;
}
