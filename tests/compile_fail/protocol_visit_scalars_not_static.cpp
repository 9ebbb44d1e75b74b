// Must not compile: visit_scalars that is not static (checkpoints would not find the names).
#include <mixprec/mixprec.hpp>

struct member_visitor {
  static constexpr const char* name = "member_visitor";
  struct scalars {
    float gain;
  };
  scalars initial_scalars() const { return {2.0f}; }
  template <class Ctx>
  MIXPREC_HOST_DEVICE float update(float u, const Ctx& ctx) const {
    return ctx.scalars().gain * u;
  }
  template <class V>
  void visit_scalars(scalars& s, V&& v) {
    v("gain", s.gain);
  }
};

int main() {
  const auto step = mixprec::chain(member_visitor{}, mixprec::sgd(mixprec::sgd_options{}));
  (void)step;
}
