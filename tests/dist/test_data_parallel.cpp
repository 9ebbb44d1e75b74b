// Data parallel and ZeRO stages 1 and 2 over MPI, run on real ranks
// (mpirun -np 1, 2 and 3: CTest runs this file three times). Every case runs
// on every rank; checks that compare ranks gather the values with MPI.
//
//   - data parallel with batch B per rank equals one process with batch R*B
//     to fp32 rounding (the averaged gradients, then 120 steps of SGD);
//   - ZeRO-1 and ZeRO-2 equal data parallel over 120 steps of fp16 + dynamic
//     loss scale + global-norm clipping + AdamW, of LAMB, and of Adafactor;
//     the loss scale, step and skip counts are bit-identical on every rank
//     and in every stage at every step;
//   - an inf on one rank only: every rank skips the step and backs off;
//   - a rank keeps about 1/R of the master weights and optimizer state;
//   - ranks that differ in arena, chain or initial weights are refused on
//     every rank with nothing changed;
//   - sharded checkpoints resume bit for bit, load into another stage, and
//     mismatched shards (other saves, missing or swapped parts) are refused
//     on every rank with one error, loading nothing.
#include <mpi.h>

#include <array>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include <mixprec/dist/checkpoint.hpp>
#include <mixprec/dist/data_parallel.hpp>
#include <mixprec/dist/mpi_communicator.hpp>
#include <mixprec/mixprec.hpp>

#include "../support/errors.hpp"
#include "problem.hpp"

using namespace mixprec;
using test::dist::gradient;

namespace {

dist::mpi_options test_options() {
  dist::mpi_options o;
  o.timeout = std::chrono::seconds(60);  // a failing rank must not hang the others for long
  return o;
}

int world_rank() {
  int r = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &r);
  return r;
}
int world_size() {
  int n = 1;
  MPI_Comm_size(MPI_COMM_WORLD, &n);
  return n;
}
constexpr std::size_t batch = 4;  // samples per rank

// Whether every rank holds the same bytes.
template <class T>
bool same_on_every_rank(const T& x) {
  std::vector<T> all(static_cast<std::size_t>(world_size()));
  MPI_Allgather(&x, sizeof(T), MPI_BYTE, all.data(), sizeof(T), MPI_BYTE, MPI_COMM_WORLD);
  for (const T& y : all)
    if (std::memcmp(&y, &x, sizeof(T)) != 0) return false;
  return true;
}
// The largest value over the ranks.
double max_over_ranks(double x) {
  double m = 0.0;
  MPI_Allreduce(&x, &m, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
  return m;
}

// The largest difference between two arenas' model copies, over all ranks.
template <class Arena>
double largest_model_difference(Arena& a, Arena& b) {
  const std::vector<float> ma = test::dist::model_as_float(a), mb = test::dist::model_as_float(b);
  double worst = 0.0;
  for (std::size_t i = 0; i < ma.size(); ++i) worst = std::max(worst, std::fabs(static_cast<double>(ma[i]) - mb[i]));
  return max_over_ranks(worst);
}

// One configuration of a data-parallel run: its communicator, arena, state.
template <class Arena, class Chain>
struct run {
  dist::mpi_communicator comm{MPI_COMM_WORLD, test_options()};
  dist::data_parallel<dist::mpi_communicator> dp;
  Arena params;
  Chain chain;
  decltype(std::declval<Chain>().init(std::declval<Arena&>())) state;

  // bucket: elements per collective (small ones cut the arena into many).
  run(int stage, const Chain& c, std::size_t bucket = std::size_t{1} << 22) : dp(comm, {stage, bucket}), chain(c) {
    test::dist::add_parameters(params);
    dp.finalize(params, chain);
    params.initialize_all(init::kaiming_uniform{}, 11);
    state = dp.init(chain, params);
  }
  // Step t on this rank's batch; returns the loss scale used.
  float step(int t) {
    const float scale = state.loss_scale();
    const std::vector<float> g =
        gradient(test::dist::model_as_float(params), t, static_cast<std::size_t>(dp.rank()) * batch, batch);
    test::dist::write_gradients(params, g, scale);
    dp.step(chain, params, state);
    return scale;
  }
  // This rank's master weights and where they start.
  std::vector<float> master() {
    return test::dist::device_range(params.master_data(), params.master_end() - params.master_begin());
  }
};

// Runs stages 0, 1 and 2 side by side for `steps` steps; checks the loss
// scale and counters agree across stages and ranks at every step and
// returns the largest difference of the master weights and model copy
// between stage 0 and each sharded stage, in units of `ulp`.
template <class Arena, class Chain>
void zero_equals_data_parallel(const Chain& chain, int steps, double tolerance, const char* what) {
  // Stages 1 and 2 with small buckets: every collective cuts the shards
  // into chunks (the arena is about a thousand elements).
  run<Arena, Chain> s0(0, chain), s1(1, chain, 64), s2(2, chain, 48);
  bool scales_agree = true, counts_agree = true, ranks_agree = true;
  for (int t = 1; t <= steps; ++t) {
    const float a = s0.step(t), b = s1.step(t), c = s2.step(t);
    scales_agree = scales_agree && a == b && a == c;
    counts_agree = counts_agree && s0.state.count() == s1.state.count() && s0.state.count() == s2.state.count() &&
                   s0.state.step().skipped_total == s2.state.step().skipped_total;
    const std::array<double, 5> mine{s0.state.loss_scale(), s1.state.loss_scale(), s2.state.loss_scale(),
                                     static_cast<double>(s1.state.count()),
                                     static_cast<double>(s2.state.step().skipped_total)};
    ranks_agree = ranks_agree && same_on_every_rank(mine);
  }
  CHECK(scales_agree);
  CHECK(counts_agree);
  CHECK(ranks_agree);
  // Master weights of this rank's shard, and the whole model copy.
  const std::vector<float> whole = s0.master();
  const std::vector<float> m0 = test::dist::model_as_float(s0.params);
  double worst = 0.0, worst_model = 0.0;
  for (auto* r : {&s1, &s2}) {
    const std::vector<float> part = r->master();
    const std::size_t first = r->params.master_begin();
    for (std::size_t i = 0; i < part.size(); ++i)
      worst = std::max(worst, std::fabs(static_cast<double>(part[i]) - whole[first + i]));
    const std::vector<float> m = test::dist::model_as_float(r->params);
    for (std::size_t i = 0; i < m.size(); ++i)
      worst_model = std::max(worst_model, std::fabs(static_cast<double>(m[i]) - m0[i]));
  }
  worst = max_over_ranks(worst);
  worst_model = max_over_ranks(worst_model);
  MESSAGE(std::string(what) << ", " << world_size() << " ranks, " << steps
                            << " steps: largest difference from data parallel " << worst << " (master weights), "
                            << worst_model << " (model copy); skipped steps " << s0.state.step().skipped_total);
  CHECK(worst <= tolerance);
  CHECK(worst_model <= tolerance);
  CHECK(s0.state.count() > static_cast<std::uint64_t>(steps / 2));
}

// Each gradient divided by the RMS of its block of 64 (a per-block
// statistic: ZeRO shards must cut parameters at block boundaries).
struct scale_by_block_rms {
  static constexpr const char* name = "scale_by_block_rms";
  static constexpr statistic statistics[] = {{"squares", scope::block, reduction::power_sum, source::input, 64}};
  static constexpr stat_id<statistic_index(statistics, "squares")> squares{};
  template <class Ctx>
  MIXPREC_HOST_DEVICE float update(float u, const Ctx& ctx) const {
    return u / static_cast<float>(sqrt(ctx.statistic(squares) / 64.0 + 1e-12));
  }
};

}  // namespace

TEST_SUITE("dist") {
  TEST_CASE("data parallel with batch B per rank equals one process with batch R*B") {
    // SGD with momentum: the update scales with the gradient, so a sum taken
    // for a mean, or a rank left out, would show at once.
    sgd_options o;
    o.lr = 0.05f;
    o.momentum = 0.9f;
    const auto step = chain(clip_by_global_norm{100.0f}, sgd(o));
    // fp32 weights and gradients: a bf16 model copy would turn a last-bit
    // difference of the master weights into a bf16 rounding of the forward pass.
    using arena = parameters<float, float>;
    run<arena, decltype(step)> ranks(0, step, 80);  // windows of 80 elements
    arena one;
    test::dist::add_parameters(one);
    one.finalize();
    one.initialize_all(init::kaiming_uniform{}, 11);
    auto state = step.init(one);
    const std::size_t everyone = batch * static_cast<std::size_t>(world_size());
    double worst_gradient = 0.0;
    const int steps = 120;
    for (int t = 1; t <= steps; ++t) {
      // The averaged gradients against the mean over all R*B samples: each
      // rank's mean and their average are each rounded to fp32 once.
      const std::vector<float> w = test::dist::model_as_float(ranks.params);
      test::dist::write_gradients(ranks.params, gradient(w, t, ranks.dp.rank() * batch, batch), 1.0f);
      ranks.dp.reduce_gradients(ranks.params);
      const std::vector<float> mean = gradient(w, t, 0, everyone);
      const std::vector<float> got = test::dist::device_range(ranks.params.grad_data(), mean.size());
      for (std::size_t i = 0; i < mean.size(); ++i)
        worst_gradient = std::max(worst_gradient, std::fabs(static_cast<double>(got[i]) - mean[i]) /
                                                      std::max(1.0, std::fabs(static_cast<double>(mean[i]))));
      // Then one step of each: the rank run through data_parallel, the single
      // process on the mean over every sample.
      test::dist::write_gradients(ranks.params, gradient(w, t, ranks.dp.rank() * batch, batch), 1.0f);
      ranks.dp.step(ranks.chain, ranks.params, ranks.state);
      test::dist::write_gradients(one, gradient(test::dist::model_as_float(one), t, 0, everyone), 1.0f);
      step.apply(one, state);
    }
    // Per element: the R per-rank means (each within u of the exact mean of
    // its samples), their fp32 sum and the division, about (R + 2) u of the
    // gradients' scale (|g| <= ~3 here).
    const double u = 0x1p-24;
    CHECK(max_over_ranks(worst_gradient) <= (world_size() + 2) * u * 4);
    // After 120 steps, the master weights: each step's update differs by the
    // gradient error times lr (momentum sums at most 1/(1-0.9) of them), and
    // a weight's rounding may differ by an ulp (|w| < 2: 2^-23) per step.
    const std::vector<float> a = ranks.master(), b = test::dist::device_range(one.master_data(), one.padded_size());
    double worst = 0.0;
    for (std::size_t i = 0; i < a.size(); ++i) worst = std::max(worst, std::fabs(static_cast<double>(a[i]) - b[i]));
    worst = max_over_ranks(worst);
    MESSAGE(world_size() << " ranks: averaged gradients within " << max_over_ranks(worst_gradient) / u
                         << " u of the R*B mean; master weights after " << steps << " steps within " << worst);
    CHECK(worst <= steps * (0x1p-23 + o.lr * 10.0 * (world_size() + 2) * u * 4));
    CHECK(same_on_every_rank(ranks.state.count()));
  }

  TEST_CASE("ZeRO-1 and ZeRO-2 equal data parallel: fp16 with dynamic loss scale and global-norm clipping and AdamW") {
    dynamic_loss_scale scaler;
    scaler.init_scale = 65536.0f;
    scaler.growth_interval = 10;
    adamw_options o;
    o.lr = 1e-2f;
    o.weight_decay = 0.01f;
    const auto step = chain(scaler, clip_by_global_norm{0.5f}, adamw(o));
    // fp32 rounding: the statistics are combined in another order (fp64, so
    // the clip factor rarely differs), and with 3 ranks stage 2 reduces each
    // gradient in another order, so fp16 gradients may round differently;
    // an update differs by at most lr * (a few ulps), 120 steps of them.
    zero_equals_data_parallel<parameters<half, half>>(step, 120, 120 * 4 * o.lr * 0x1p-10, "AdamW fp16");
  }

  TEST_CASE("ZeRO-1 and ZeRO-2 equal data parallel: LAMB's per-parameter trust ratios across shard boundaries") {
    lamb_options o;
    o.lr = 1e-2f;
    const auto step = chain(dynamic_loss_scale{}, lamb(o));
    zero_equals_data_parallel<parameters<bfloat16, half>>(step, 120, 120 * 4 * o.lr * 0x1p-10, "LAMB");
  }

  TEST_CASE("ZeRO-1 and ZeRO-2 equal data parallel: Adafactor's factored moments over rows and columns") {
    adafactor_options o;
    o.lr = 1e-2f;
    const auto step = chain(dynamic_loss_scale{}, adafactor(o));
    zero_equals_data_parallel<parameters<bfloat16, half>>(step, 120, 120 * 4 * o.lr * 0x1p-10, "Adafactor");
  }

  TEST_CASE("ZeRO-1 and ZeRO-2 equal data parallel: per-block statistics with shards cut at block boundaries") {
    sgd_options o;
    o.lr = 1e-3f;
    const auto step = chain(dynamic_loss_scale{}, scale_by_block_rms{}, sgd(o));
    // |u| <= sqrt(64) after the division; a gradient reduced in another order
    // differs by an fp16 rounding (2^-10 relative), in u and in its block's
    // RMS: at most lr * 8 * 2 * 2^-10 per step.
    zero_equals_data_parallel<parameters<bfloat16, half>>(step, 120, 120 * 16 * o.lr * 0x1p-10, "block RMS");
  }

  TEST_CASE("an inf on one rank only: every rank skips the step and backs off") {
    dynamic_loss_scale scaler;
    scaler.init_scale = 1024.0f;
    const auto step = chain(scaler, clip_by_global_norm{1.0f}, adamw(adamw_options{}));
    for (int stage : {0, 1, 2}) {
      CAPTURE(stage);
      run<parameters<half, half>, decltype(step)> r(stage, step);
      r.step(1);
      const std::vector<float> before = test::dist::model_as_float(r.params);
      // The last rank's gradients get an inf in the first rank's shard.
      const std::vector<float> g = gradient(before, 2, r.dp.rank() * batch, batch);
      test::dist::write_gradients(r.params, g, r.state.loss_scale());
      if (r.dp.rank() == r.dp.size() - 1) {
        const half inf = convert<half>(INFINITY);
        detail::write_to_device(&inf, r.params.grad_data() + 3, 1);
      }
      r.dp.step(r.chain, r.params, r.state);
      CHECK(r.state.step().skipped_total == 1);
      CHECK(r.state.count() == 1);
      CHECK(r.state.loss_scale() == 512.0f);
      CHECK(test::dist::model_as_float(r.params) == before);
      CHECK(same_on_every_rank(r.state.loss_scale()));
      CHECK(same_on_every_rank(r.state.step().skipped_total));
    }
  }

  TEST_CASE("a rank keeps about 1/R of the master weights and optimizer state") {
    const auto step = chain(dynamic_loss_scale{}, adamw(adamw_options{}));
    using arena = parameters<bfloat16, bfloat16>;
    run<arena, decltype(step)> s0(0, step), s1(1, step), s2(2, step);
    const dist::memory_report m0 = s0.dp.memory(s0.params, s0.state), m1 = s1.dp.memory(s1.params, s1.state),
                              m2 = s2.dp.memory(s2.params, s2.state);
    const double whole = static_cast<double>(m0.master + m0.state);
    const double mine = static_cast<double>(m1.master + m1.state);
    MESSAGE("rank " << world_rank() << " of " << world_size() << ": master + state " << mine << " bytes in stage 1, "
                    << whole << " in stage 0");
    // Balanced shards: within a 16-element boundary (or a row) of 1/R.
    const double slack = 20.0 * 12.0 / static_cast<double>(s0.params.padded_size());
    CHECK(mine / whole <= 1.0 / world_size() + slack);
    CHECK(mine / whole >= 1.0 / world_size() - slack);
    CHECK(m1.model == m0.model);  // every rank keeps the whole model copy
    CHECK(m2.master + m2.state == m1.master + m1.state);
    // The shards partition the arena.
    std::size_t covered = 0;
    for (int r = 0; r < s1.dp.size(); ++r) {
      CHECK(s1.dp.shard_of(r).begin == covered);
      covered = s1.dp.shard_of(r).end;
    }
    CHECK(covered == s1.params.padded_size());
  }

  TEST_CASE("ranks that differ in arena or chain or initial weights are refused on every rank with nothing changed") {
    dist::mpi_communicator comm(MPI_COMM_WORLD, test_options());
    const bool odd = world_size() > 1 && world_rank() == world_size() - 1;
    const std::string last = std::to_string(world_size() - 1);
    {
      dist::data_parallel<dist::mpi_communicator> dp(comm, {1});
      parameters<bfloat16, half> p;
      test::dist::add_parameters(p);
      if (odd) p.add("extra", {3});
      const auto step = chain(dynamic_loss_scale{}, adamw(adamw_options{}));
      const std::string msg = test::error_message([&] { dp.finalize(p, step); });
      if (world_size() > 1) {
        CHECK(test::contains(msg, "the ranks disagree; rank " + last +
                                      "'s parameter arena (names, shapes, groups or "
                                      "formats) differs from rank 0's"));
        CHECK_FALSE(p.finalized());
      } else {
        CHECK(msg == "<no exception>");
      }
    }
    {
      dist::data_parallel<dist::mpi_communicator> dp(comm, {0});
      parameters<bfloat16, half> p;
      test::dist::add_parameters(p);
      adamw_options o;
      o.lr = odd ? 2e-3f : 1e-3f;
      const auto step = chain(dynamic_loss_scale{}, adamw(o));
      const std::string msg = test::error_message([&] { dp.finalize(p, step); });
      if (world_size() > 1) {
        CHECK(test::contains(msg, "rank " + last + "'s chain (components or hyperparameters) differs from rank 0's"));
        CHECK_FALSE(p.finalized());
      }
    }
    {
      dist::data_parallel<dist::mpi_communicator> dp(comm, {2});
      parameters<bfloat16, half> p;
      test::dist::add_parameters(p);
      const auto step = chain(dynamic_loss_scale{}, adamw(adamw_options{}));
      dp.finalize(p, step);
      p.initialize_all(init::kaiming_uniform{}, odd ? 12 : 11);
      const std::string msg = test::error_message([&] { (void)dp.init(step, p); });
      if (world_size() > 1) CHECK(test::contains(msg, "starts from other weights than rank"));
      else CHECK(msg == "<no exception>");
    }
    {
      dist::data_parallel<dist::mpi_communicator> dp(comm, {1});
      parameters<bfloat16, half> p;
      test::dist::add_parameters(p);
      const auto a = chain(dynamic_loss_scale{}, adamw(adamw_options{}));
      const auto b = chain(dynamic_loss_scale{}, lion(lion_options{}));
      dp.finalize(p, a);
      CHECK(test::contains(test::error_message([&] { (void)dp.init(b, p); }),
                           "the chain differs from the one given to finalize()"));
    }
    CHECK(test::contains(test::error_message([&] { dist::data_parallel<dist::mpi_communicator> dp(comm, {3}); }),
                         "zero_stage is 0, 1 or 2 (got 3)"));
  }

  TEST_CASE("a sharded checkpoint resumes bit for bit and loads into another ZeRO stage") {
    const std::string dir = "/tmp/mixprec_test_dist_ckpt_" + std::to_string(world_size());
    dynamic_loss_scale scaler;
    scaler.growth_interval = 5;
    adamw_options o;
    o.lr = 1e-2f;
    const auto step = chain(scaler, clip_by_global_norm{1.0f}, adamw(o), round_model_stochastic{3});
    using arena = parameters<bfloat16, half>;
    run<arena, decltype(step)> a(1, step);
    for (int t = 1; t <= 20; ++t) a.step(t);
    dist::save_checkpoint(dir, a.dp, a.chain, a.params, a.state, {{"epoch", "2"}});
    for (int t = 21; t <= 40; ++t) a.step(t);

    for (int stage : {1, 2, 0}) {
      CAPTURE(stage);
      run<arena, decltype(step)> b(stage, step);
      const checkpoint_metadata m = dist::load_checkpoint(dir, b.dp, b.chain, b.params, b.state);
      CHECK(m.at("epoch") == "2");
      CHECK(b.state.count() + b.state.step().skipped_total == 20);
      for (int t = 21; t <= 40; ++t) b.step(t);
      // Stage 1, as saved: bit for bit. Other stages: the same gradients and
      // statistics up to the reduction order (see the ZeRO cases).
      const double worst = largest_model_difference(a.params, b.params);
      if (stage == 1) CHECK(worst == 0.0);
      else CHECK(worst <= 20 * 4 * o.lr * 0x1p-7);
      CHECK(b.state.loss_scale() == a.state.loss_scale());
    }
    MPI_Barrier(MPI_COMM_WORLD);
  }

  TEST_CASE("sharded checkpoints of 8-bit moments resume bit for bit and load into other ZeRO stages") {
    // Blocks of 64: shards end at block boundaries inside parameters too.
    adamw_options o;
    o.lr = 1e-2f;
    const auto step = chain(clip_by_global_norm{1.0f}, adamw<block_quantized<dynamic8, 64>>(o));
    using arena = parameters<bfloat16, half>;
    for (int saved_stage : {1, 0}) {
      CAPTURE(saved_stage);
      const std::string dir =
          "/tmp/mixprec_test_dist_ckpt8_" + std::to_string(saved_stage) + "_" + std::to_string(world_size());
      run<arena, decltype(step)> a(saved_stage, step);
      for (int t = 1; t <= 10; ++t) a.step(t);
      dist::save_checkpoint(dir, a.dp, a.chain, a.params, a.state);
      for (int t = 11; t <= 20; ++t) a.step(t);
      for (int stage : {1, 2, 0}) {
        CAPTURE(stage);
        run<arena, decltype(step)> b(stage, step);
        dist::load_checkpoint(dir, b.dp, b.chain, b.params, b.state);
        CHECK(b.state.count() == 10);
        for (int t = 11; t <= 20; ++t) b.step(t);
        const double worst = largest_model_difference(a.params, b.params);
        INFO("largest difference from the uninterrupted run: " << worst);
        // Every stage: bit for bit (the stages reduce these gradients alike:
        // see the ZeRO cases), whichever shards the codes and scales came from.
        CHECK(worst == 0.0);
      }
    }
    MPI_Barrier(MPI_COMM_WORLD);
  }

  TEST_CASE("mismatched checkpoint shards are refused on every rank and load nothing") {
    const std::string dir = "/tmp/mixprec_test_dist_bad_" + std::to_string(world_size());
    const auto step = chain(dynamic_loss_scale{}, adamw(adamw_options{}));
    using arena = parameters<bfloat16, half>;
    run<arena, decltype(step)> a(1, step);
    for (int t = 1; t <= 3; ++t) a.step(t);
    dist::save_checkpoint(dir, a.dp, a.chain, a.params, a.state);
    for (int t = 4; t <= 5; ++t) a.step(t);
    const std::vector<float> before = test::dist::model_as_float(a.params);
    const std::uint64_t count = a.state.count();
    auto refused = [&](const std::string& expected) {
      const std::string msg =
          test::error_message([&] { dist::load_checkpoint(dir, a.dp, a.chain, a.params, a.state); });
      INFO(msg);
      CHECK(test::contains(msg, expected));
      CHECK(test::dist::model_as_float(a.params) == before);
      CHECK(a.state.count() == count);
    };
    // The manifest's directory, as rank 0 sees it.
    std::string sub;
    {
      std::ifstream in(dir + "/manifest");
      std::string line;
      while (std::getline(in, line))
        if (line.rfind("directory ", 0) == 0) sub = dir + "/" + line.substr(10);
    }
    REQUIRE(!sub.empty());
    const std::string last_part = sub + "/part-" + std::to_string(world_size() - 1) + ".ckpt";

    SUBCASE("another chain") {
      const auto other = chain(dynamic_loss_scale{}, lamb(lamb_options{}));
      run<arena, decltype(other)> b(1, other);
      const std::string msg =
          test::error_message([&] { dist::load_checkpoint(dir, b.dp, b.chain, b.params, b.state); });
      CHECK(test::contains(msg, "load_checkpoint: failed on rank(s) 0"));
      CHECK(test::contains(msg,
                           "checkpoint chain is [dynamic_loss_scale, adamw] but this chain is "
                           "[dynamic_loss_scale, lamb]"));
    }
    SUBCASE("a missing part") {
      MPI_Barrier(MPI_COMM_WORLD);
      if (world_rank() == 0) std::rename(last_part.c_str(), (last_part + ".away").c_str());
      MPI_Barrier(MPI_COMM_WORLD);
      refused("failed on rank(s) " + std::to_string(world_size() - 1));
      MPI_Barrier(MPI_COMM_WORLD);
      if (world_rank() == 0) std::rename((last_part + ".away").c_str(), last_part.c_str());
      MPI_Barrier(MPI_COMM_WORLD);
    }
    SUBCASE("a part of another save") {
      // Save again elsewhere and put that save's last part in place of this one's.
      const std::string other_dir = dir + "_other";
      dist::save_checkpoint(other_dir, a.dp, a.chain, a.params, a.state);
      std::string other_sub;
      {
        std::ifstream in(other_dir + "/manifest");
        std::string line;
        while (std::getline(in, line))
          if (line.rfind("directory ", 0) == 0) other_sub = other_dir + "/" + line.substr(10);
      }
      MPI_Barrier(MPI_COMM_WORLD);
      if (world_rank() == 0) {
        std::rename(last_part.c_str(), (last_part + ".away").c_str());
        std::ifstream src(other_sub + "/part-" + std::to_string(world_size() - 1) + ".ckpt", std::ios::binary);
        std::ofstream dst(last_part, std::ios::binary);
        dst << src.rdbuf();
      }
      MPI_Barrier(MPI_COMM_WORLD);
      // The copied part is of step 5 (the other save): either check names it.
      refused("failed on rank(s) " + std::to_string(world_size() - 1));
      MPI_Barrier(MPI_COMM_WORLD);
      if (world_rank() == 0) std::rename((last_part + ".away").c_str(), last_part.c_str());
      MPI_Barrier(MPI_COMM_WORLD);
    }
    SUBCASE("no manifest") {
      const std::string msg =
          test::error_message([&] { dist::load_checkpoint(dir + "_none", a.dp, a.chain, a.params, a.state); });
      CHECK(test::contains(msg, "no sharded checkpoint in " + dir + "_none"));
    }
    // The good set still loads.
    dist::load_checkpoint(dir, a.dp, a.chain, a.params, a.state);
    CHECK(a.state.count() + a.state.step().skipped_total == 3);
    MPI_Barrier(MPI_COMM_WORLD);
  }

  TEST_CASE("part files that do not hold what the manifest names are refused on every rank with one error") {
    // part-0 and part-1 swapped: every file is a valid part of the save, but
    // not of the elements the manifest names for it. Every rank must refuse
    // with the same error and none may change anything (on 3 ranks the rank
    // whose own part was intact used to load it and then wait for the others).
    if (world_size() < 2) {
      MESSAGE("one rank saves one part: nothing to swap");
      return;
    }
    const std::string dir = "/tmp/mixprec_test_dist_swapped_" + std::to_string(world_size());
    const auto step = chain(dynamic_loss_scale{}, adamw(adamw_options{}));
    using arena = parameters<bfloat16, half>;
    run<arena, decltype(step)> a(1, step);
    for (int t = 1; t <= 3; ++t) a.step(t);
    dist::save_checkpoint(dir, a.dp, a.chain, a.params, a.state);
    for (int t = 4; t <= 5; ++t) a.step(t);
    const std::vector<float> model = test::dist::model_as_float(a.params), master = a.master();
    const std::uint64_t count = a.state.count();
    const float scale = a.state.loss_scale();
    std::string sub;
    {
      std::ifstream in(dir + "/manifest");
      std::string line;
      while (std::getline(in, line))
        if (line.rfind("directory ", 0) == 0) sub = dir + "/" + line.substr(10);
    }
    REQUIRE(!sub.empty());
    auto swap_parts = [&] {
      MPI_Barrier(MPI_COMM_WORLD);
      if (world_rank() == 0) {
        const std::string p0 = sub + "/part-0.ckpt", p1 = sub + "/part-1.ckpt", tmp = sub + "/part-swap";
        std::rename(p0.c_str(), tmp.c_str());
        std::rename(p1.c_str(), p0.c_str());
        std::rename(tmp.c_str(), p1.c_str());
      }
      MPI_Barrier(MPI_COMM_WORLD);
    };
    swap_parts();
    const std::string msg = test::error_message([&] { dist::load_checkpoint(dir, a.dp, a.chain, a.params, a.state); });
    INFO(msg);
    CHECK(test::contains(msg, "load_checkpoint: failed on rank(s) 0, 1;"));
    CHECK(test::contains(msg, "holds elements"));
    CHECK(test::contains(msg, "the manifest names it for elements"));
    CHECK(same_on_every_rank(std::hash<std::string>{}(msg)));
    CHECK(test::dist::model_as_float(a.params) == model);
    CHECK(a.master() == master);
    CHECK(a.state.count() == count);
    CHECK(a.state.loss_scale() == scale);
    // Swapped back, the save loads on every rank.
    swap_parts();
    dist::load_checkpoint(dir, a.dp, a.chain, a.params, a.state);
    CHECK(a.state.count() + a.state.step().skipped_total == 3);
    MPI_Barrier(MPI_COMM_WORLD);
  }

}  // TEST_SUITE
