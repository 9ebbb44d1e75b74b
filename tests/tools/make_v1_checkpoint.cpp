// Writes tests/data/checkpoint_v1.ckpt: a checkpoint in format version 1
// (mixprec 0.1, commit history: the last commit with this tool), kept so
// that later versions prove they still load it. Seven steps of
//   chain(dynamic_loss_scale{init 256, interval 3}, clip_by_global_norm{1},
//         adamw{lr 1e-2}, round_model_stochastic{5})
// on parameters<bfloat16, half> ("fc1.weight" [16, 8], "fc1.bias" [16] in
// group "no_decay" with no weight decay, "fc2.weight" [4, 16]), initialised
// with kaiming_uniform, seed 3; gradients 64 * unit_value(t * 1000003 + i)
// (tests/support/synthetic.hpp), an inf at element 5 on steps 2 and 6.
#include <cmath>
#include <cstdio>
#include <vector>

#include <mixprec/mixprec.hpp>

#include "../support/synthetic.hpp"

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: make_v1_checkpoint PATH\n");
    return 2;
  }
  using namespace mixprec;
  parameters<bfloat16, half> p;
  p.add("fc1.weight", {16, 8});
  p.add("fc1.bias", {16}, "no_decay");
  p.add("fc2.weight", {4, 16});
  p.finalize();
  p.initialize_all(init::kaiming_uniform{}, 3);
  dynamic_loss_scale scaler;
  scaler.init_scale = 256.0f;
  scaler.growth_interval = 3;
  adamw_options o;
  o.lr = 1e-2f;
  const auto step = chain(scaler, clip_by_global_norm{1.0f}, adamw(o), round_model_stochastic{5});
  auto state = step.init(p);
  state.set_group("no_decay", {1.0f, 0.0f});
  std::vector<half> g(p.padded_size());
  for (int t = 1; t <= 7; ++t) {
    for (std::size_t i = 0; i < g.size(); ++i) g[i] = convert<half>(64.0f * test::unit_value(t * 1000003ull + i));
    if (t % 4 == 2) g[5] = convert<half>(INFINITY);
    detail::write_to_device(g.data(), p.grad_data(), g.size());
    step.apply(p, state);
  }
  save_checkpoint(argv[1], p, state);
  std::printf("wrote %s: step count %llu, skipped %llu, loss scale %g\n", argv[1],
              static_cast<unsigned long long>(state.count()),
              static_cast<unsigned long long>(state.step().skipped_total), state.loss_scale());
  return 0;
}
