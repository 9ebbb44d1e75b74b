// Must not compile: two state fields of one component with the same name (a copy-pasted declaration).
#include <mixprec/mixprec.hpp>

struct copy_pasted {
  static constexpr const char* name = "copy_pasted";
  static constexpr mixprec::state_field state[] = {{"m", mixprec::format_id::f32}, {"m", mixprec::format_id::f32}};
  static constexpr mixprec::field_id<0> m1{};
  static constexpr mixprec::field_id<1> m2{};
  template <class Ctx>
  MIXPREC_HOST_DEVICE float update(float u, const Ctx& ctx) const {
    const float a = ctx.state(m1).update([&](float old) { return 0.9f * old + u; });
    const float b = ctx.state(m2).update([&](float old) { return 0.99f * old + u * u; });
    return a / (b + 1.0f);
  }
};

int main() {
  const auto step = mixprec::chain(copy_pasted{}, mixprec::sgd(mixprec::sgd_options{}));
  (void)step;
}
