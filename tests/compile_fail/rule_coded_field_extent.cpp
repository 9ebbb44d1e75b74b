// Must not compile: 8-bit codes for a per-parameter field (codes are kept
// per element, with a scale per block of elements).
#include <mixprec/mixprec.hpp>

struct coded_per_parameter {
  static constexpr const char* name = "coded_per_parameter";
  static constexpr mixprec::state_field state[] = {{"norm", mixprec::format_id::dynamic8u, mixprec::extent::parameter}};
  static constexpr mixprec::field_id<mixprec::field_index(state, "norm")> norm{};
  template <class Ctx>
  MIXPREC_HOST_DEVICE float update(float u, const Ctx& ctx) const {
    return u / (1.0f + ctx.state(norm).get());
  }
};

int main() {
  const auto step = mixprec::chain(coded_per_parameter{}, mixprec::scale_by_learning_rate<>{{1e-3f}});
  (void)step;
}
