// Must not compile: stochastic rounding with a generator that is not a
// generator policy (cast/generator.hpp) (checked by CTest).
#include <mixprec/mixprec.hpp>

struct not_a_generator {
  static constexpr int words = 3;
};

int main() {
  const mixprec::round_stochastic<not_a_generator> r{1, 2};
  return static_cast<int>(mixprec::to_float(mixprec::convert<mixprec::bfloat16>(1.5f, r, 0)));
}
