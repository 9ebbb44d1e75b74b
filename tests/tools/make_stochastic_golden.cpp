// Writes tests/data/stochastic_rounding.txt: stochastic rounding of fixed
// inputs under fixed keys, computed on the host backend. Run by
// scripts/make-test-data.sh; the committed file is what CUDA builds compare to.
#include <cstdio>
#include <vector>

#include <mixprec/cast/all.hpp>

#include "../support/stochastic_golden.hpp"

template <class T>
void emit(const char* name, const std::vector<float>& inputs) {
  for (std::uint64_t seed : test::golden_seeds)
    for (std::uint64_t stream : test::golden_streams) {
      std::printf("%s %llu %llu", name, static_cast<unsigned long long>(seed), static_cast<unsigned long long>(stream));
      for (std::size_t i = 0; i < inputs.size(); ++i)
        std::printf(" %x", static_cast<unsigned>(mixprec::to_bits(
                               mixprec::convert<T>(inputs[i], mixprec::round_stochastic{seed, stream}, i))));
      std::printf("\n");
    }
}

int main() {
  const std::vector<float> inputs = test::golden_inputs();
  std::printf("# stochastic rounding (overflow_to_infinity) of test::golden_inputs(), host backend\n");
  emit<mixprec::half>("half", inputs);
  emit<mixprec::bfloat16>("bfloat16", inputs);
  emit<mixprec::fp8_e4m3>("fp8_e4m3", inputs);
  emit<mixprec::fp8_e5m2>("fp8_e5m2", inputs);
  return 0;
}
