// Must not compile: a state field handle past the component's table.
#include <mixprec/mixprec.hpp>

struct short_table {
  static constexpr const char* name = "short_table";
  static constexpr mixprec::state_field state[] = {{"first", mixprec::format_id::f32},
                                                   {"second", mixprec::format_id::f32}};
  static constexpr mixprec::field_id<2> third{};  // there are two fields
  template <class Ctx>
  MIXPREC_HOST_DEVICE float update(float u, const Ctx& ctx) const {
    return ctx.state(third).update([&](float old) { return old + u; });
  }
};

int main() {
  mixprec::parameters<float> params;
  params.add("w", {4});
  params.finalize();
  const auto step = mixprec::chain(short_table{}, mixprec::sgd(mixprec::sgd_options{}));
  auto state = step.init(params);
  step.apply(params, state);
}
