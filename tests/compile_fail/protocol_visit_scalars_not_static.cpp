// Must not compile: visit_scalars that is not static (checkpoints would not find the names). The engine finds the
// member by name; saving a checkpoint, where it is called, names the mistake.
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
  mixprec::parameters<float> params;
  params.add("w", {4});
  params.finalize();
  auto state = step.init(params);
  mixprec::save_checkpoint("member_visitor.ckpt", step, params, state);
}
