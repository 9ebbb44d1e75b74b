// Must not compile: initial_scalars() that is not const would never be called (no validation, scalars from {}).
#include <mixprec/mixprec.hpp>

struct mutable_init {
  static constexpr const char* name = "mutable_init";
  float gain = 2.0f;
  struct scalars {
    float gain;
  };
  scalars initial_scalars() { return {gain}; }
  template <class Ctx>
  MIXPREC_HOST_DEVICE float update(float u, const Ctx& ctx) const {
    return ctx.scalars().gain * u;
  }
  template <class V>
  static void visit_scalars(scalars& s, V&& v) {
    v("gain", s.gain);
  }
};

int main() {
  const auto step = mixprec::chain(mutable_init{}, mixprec::sgd(mixprec::sgd_options{}));
  (void)step;
}
