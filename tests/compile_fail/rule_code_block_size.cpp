// Must not compile: a field of 8-bit codes whose block is not a power of two.
#include <mixprec/mixprec.hpp>

struct odd_codes {
  static constexpr const char* name = "odd_codes";
  static constexpr mixprec::state_field state[] = {{"m", mixprec::format_id::dynamic8s, mixprec::extent::element,
                                                    mixprec::parameter_set::all, true, true, false, 100}};
  static constexpr mixprec::field_id<mixprec::field_index(state, "m")> m{};
  template <class Ctx>
  MIXPREC_HOST_DEVICE float update(float u, const Ctx& ctx) const {
    return ctx.state(m).update([&](float old) { return old + u; });
  }
};

int main() {
  const auto step = mixprec::chain(odd_codes{}, mixprec::scale_by_learning_rate<>{{1e-3f}});
  (void)step;
}
