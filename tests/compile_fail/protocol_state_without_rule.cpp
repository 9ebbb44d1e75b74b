// Must not compile: state fields that no rule reads (the element rule is missing).
#include <mixprec/mixprec.hpp>

struct unread_state {
  static constexpr const char* name = "unread_state";
  static constexpr mixprec::state_field state[] = {{"velocity", mixprec::format_id::f32}};
  struct scalars {
    float t;
  };
  template <class Ctx>
  MIXPREC_HOST_DEVICE void decide(scalars& s, const Ctx& ctx) const {
    s.t = static_cast<float>(ctx.t());
  }
  template <class V>
  static void visit_scalars(scalars& s, V&& v) {
    v("t", s.t);
  }
};

int main() {
  const auto step = mixprec::chain(unread_state{}, mixprec::sgd(mixprec::sgd_options{}));
  (void)step;
}
