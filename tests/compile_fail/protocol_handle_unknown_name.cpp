// Must not compile: a handle looked up by a name the component's table does not have.
#include <mixprec/mixprec.hpp>

struct renamed_field {
  static constexpr const char* name = "renamed_field";
  static constexpr mixprec::state_field state[] = {{"exp_avg", mixprec::format_id::f32}};
  static constexpr mixprec::field_id<mixprec::field_index(state, "momentum")> m{};
  template <class Ctx>
  MIXPREC_HOST_DEVICE float update(float u, const Ctx& ctx) const {
    return ctx.state(m).update([&](float old) { return 0.9f * old + u; });
  }
};

int main() {
  const auto step = mixprec::chain(renamed_field{}, mixprec::sgd(mixprec::sgd_options{}));
  (void)step;
}
