// Writes the stochastic-rounding golden files on the host backend; the
// committed files are what CUDA builds compare to. Run by
// scripts/make-test-data.sh:
//   make_stochastic_golden cast > tests/data/stochastic_rounding.txt
//   make_stochastic_golden sgd  > tests/data/sgd_stochastic_golden.txt
//   make_stochastic_golden adamw > tests/data/adamw_stochastic_golden.txt
#include <cstdio>
#include <string>
#include <vector>

#include <mixprec/mixprec.hpp>

#include "../support/adamw_golden.hpp"
#include "../support/sgd_golden.hpp"
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

int main(int argc, char** argv) {
  const std::string what = argc > 1 ? argv[1] : "";
  if (what == "cast") {
    const std::vector<float> inputs = test::golden_inputs();
    std::printf("# stochastic rounding (overflow_to_infinity) of test::golden_inputs(), host backend\n");
    emit<mixprec::half>("half", inputs);
    emit<mixprec::bfloat16>("bfloat16", inputs);
    emit<mixprec::fp8_e4m3>("fp8_e4m3", inputs);
    emit<mixprec::fp8_e5m2>("fp8_e5m2", inputs);
    return 0;
  }
  if (what == "sgd") {
    std::printf("# test::run_sgd_golden() on the host backend: bfloat16 weight bits after %d steps\n",
                test::sgd_golden_steps);
    for (std::uint16_t b : test::run_sgd_golden()) std::printf("%x\n", b);
    return 0;
  }
  if (what == "adamw") {
    std::printf("# test::run_adamw_golden() on the host backend after %d steps: %zu master-weight bits, then as many "
                "model-copy, exp_avg and exp_avg_sq bits\n",
                test::adamw_golden_steps, test::adamw_golden_size);
    for (std::uint32_t b : test::run_adamw_golden()) std::printf("%x\n", b);
    return 0;
  }
  std::fprintf(stderr, "usage: make_stochastic_golden cast|sgd|adamw\n");
  return 2;
}
