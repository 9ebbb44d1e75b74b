// Writes the stochastic-rounding golden files on the host backend; the
// committed files are what CUDA builds compare to. Run by
// scripts/make-test-data.sh, for the default generator and for Philox:
//   make_stochastic_golden cast  [philox] > tests/data/stochastic_rounding[_philox].txt
//   make_stochastic_golden sgd   [philox] > tests/data/sgd_stochastic_golden[_philox].txt
//   make_stochastic_golden adamw [philox] > tests/data/adamw_stochastic_golden[_philox].txt
#include <cstdio>
#include <string>
#include <vector>

#include <mixprec/mixprec.hpp>

#include "../support/adamw_golden.hpp"
#include "../support/sgd_golden.hpp"
#include "../support/stochastic_golden.hpp"

template <class T, class G>
void emit(const char* name, const std::vector<float>& inputs) {
  for (std::uint64_t seed : test::golden_seeds)
    for (std::uint64_t stream : test::golden_streams) {
      std::printf("%s %llu %llu", name, static_cast<unsigned long long>(seed), static_cast<unsigned long long>(stream));
      for (std::size_t i = 0; i < inputs.size(); ++i)
        std::printf(" %x", static_cast<unsigned>(mixprec::to_bits(
                               mixprec::convert<T>(inputs[i], mixprec::round_stochastic<G>{seed, stream}, i))));
      std::printf("\n");
    }
}

template <class G>
int write(const std::string& what) {
  if (what == "cast") {
    const std::vector<float> inputs = test::golden_inputs();
    std::printf("# stochastic rounding (overflow_to_infinity) of test::golden_inputs(), host backend, generator %s\n",
                G::name);
    emit<mixprec::half, G>("half", inputs);
    emit<mixprec::bfloat16, G>("bfloat16", inputs);
    emit<mixprec::fp8_e4m3, G>("fp8_e4m3", inputs);
    emit<mixprec::fp8_e5m2, G>("fp8_e5m2", inputs);
    return 0;
  }
  if (what == "sgd") {
    std::printf("# test::run_sgd_golden() on the host backend, generator %s: bfloat16 weight bits after %d steps\n",
                G::name, test::sgd_golden_steps);
    for (std::uint16_t b : test::run_sgd_golden<G>()) std::printf("%x\n", b);
    return 0;
  }
  if (what == "adamw") {
    std::printf(
        "# test::run_adamw_golden() on the host backend, generator %s, after %d steps: %zu master-weight "
        "bits, then as many model-copy, exp_avg and exp_avg_sq bits\n",
        G::name, test::adamw_golden_steps, test::adamw_golden_size);
    for (std::uint32_t b : test::run_adamw_golden<G>()) std::printf("%x\n", b);
    return 0;
  }
  std::fprintf(stderr, "usage: make_stochastic_golden cast|sgd|adamw [philox]\n");
  return 2;
}

int main(int argc, char** argv) {
  const std::string what = argc > 1 ? argv[1] : "";
  const std::string generator = argc > 2 ? argv[2] : "";
  if (generator == "philox") return write<mixprec::philox_generator>(what);
  if (generator.empty()) return write<mixprec::default_generator>(what);
  std::fprintf(stderr, "usage: make_stochastic_golden cast|sgd|adamw [philox]\n");
  return 2;
}
