// Thread safety as documented: separate arenas and chain states on separate
// threads are independent (each thread's run gives the same bits as the
// same run alone), checkpoint saves from several threads (to their own
// paths, or racing on one path) are safe. CI also runs this file under
// ThreadSanitizer (scripts/tsan.sh, Thrust's sequential system).
#include <cstdint>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include <doctest/doctest.h>

#include <mixprec/mixprec.hpp>

#include "../support/synthetic.hpp"

using namespace mixprec;

namespace {

// One training run: its own arena, chain state and checkpoint file.
std::vector<float> run(int id, const std::string& shared_path) {
  parameters<bfloat16, half> p;
  p.add("w", {64, 33});
  p.add("b", {33}, "no_decay");
  p.finalize();
  p.initialize_all(init::normal{0.0, 0.2}, static_cast<std::uint64_t>(id));
  adamw_options o;
  o.lr = 1e-2f;
  const auto step = chain(dynamic_loss_scale{}, clip_by_global_norm{1.0f}, adamw(o), round_model_stochastic{7});
  auto state = step.init(p);
  state.set_group("no_decay", {1.0f, 0.0f});
  std::vector<float> g(p.element_count());
  for (int t = 1; t <= 30; ++t) {
    for (std::size_t i = 0; i < g.size(); ++i) g[i] = test::synthetic_gradient(t, id, i, 1000.0f);
    if (t % 7 == 0) g[3] = 1e30f;  // overflows fp16: a skipped step
    p.from_host(role::grad, g);
    step.apply(p, state);
  }
  const std::string own = "/tmp/mixprec_test_thread_" + std::to_string(id) + ".ckpt";
  save_checkpoint(own, step, p, state);
  save_checkpoint(shared_path, step, p, state);
  load_checkpoint(own, step, p, state);
  std::remove(own.c_str());
  std::vector<float> out = p.to_host(role::master);
  out.push_back(state.loss_scale());
  out.push_back(static_cast<float>(state.count()));
  return out;
}

}  // namespace

TEST_SUITE("train") {
  TEST_CASE("separate arenas and states on separate threads are independent") {
    constexpr int threads = 4;
    const std::string shared = "/tmp/mixprec_test_threads_shared.ckpt";
    std::vector<std::vector<float>> alone(threads), together(threads);
    for (int k = 0; k < threads; ++k) alone[k] = run(k, shared);
    std::vector<std::thread> pool;
    for (int k = 0; k < threads; ++k) pool.emplace_back([&, k] { together[k] = run(k, shared); });
    for (auto& t : pool) t.join();
    for (int k = 0; k < threads; ++k) {
      INFO("thread " << k);
      CHECK(together[k] == alone[k]);
    }
    CHECK(alone[0] != alone[1]);
    std::remove(shared.c_str());
  }
}
