// Must not compile: an element rule that is not const (the engine calls it on the chain's copy of the component,
// which it does not change). The member is found by name; the step, where it is called, names the mistake.
#include <mixprec/mixprec.hpp>

struct mutable_rule {
  static constexpr const char* name = "mutable_rule";
  float gain = 2.0f;
  template <class Ctx>
  MIXPREC_HOST_DEVICE float update(float u, const Ctx&) {
    return gain * u;
  }
};

int main() {
  const auto step = mixprec::chain(mutable_rule{}, mixprec::sgd(mixprec::sgd_options{}));
  mixprec::parameters<float> params;
  params.add("w", {4});
  params.finalize();
  auto state = step.init(params);
  step.apply(params, state);
}
