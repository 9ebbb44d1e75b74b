// A data-parallel training run for the scripted distributed tests
// (reshard.sh, rank_exit.sh): dynamic loss scaling, global-norm clipping
// and AdamW on the problem of problem.hpp, with a global batch of 12
// samples split over the ranks (so 1, 2, 3, 4 or 6 ranks train the same
// model up to rounding). --format fp16 (the default): fp16 gradients, fp32
// master weights, a bf16 model copy rounded stochastically; --format fp32:
// fp32 weights and gradients, where runs on different rank counts differ by
// fp32 rounding only.
//
//   mpirun -np R dist_train --stage S --from A --to B [--format F] [--load DIR] [--save DIR]
//                           [--save-every K] [--die-rank r --die-at t [--die-before-save]]
//                           [--timeout s]
//   dist_train --compare DIR1 DIR2 [--format F] [--identical | --tolerance x]
//
// Runs steps A+1..B, loading DIR first (its step must be A) and saving at
// the end (and every K steps); --die-rank makes that rank exit without a
// word before step t (or, with --die-before-save, just before the save
// after step t, while the others save). --compare loads two saves into one
// process and prints their largest difference; it fails if they differ by
// more than the tolerance (or at all, with --identical).
#include <mpi.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <type_traits>
#include <vector>

#include <mixprec/dist/checkpoint.hpp>
#include <mixprec/dist/data_parallel.hpp>
#include <mixprec/dist/mpi_communicator.hpp>
#include <mixprec/mixprec.hpp>

#include "problem.hpp"

using namespace mixprec;

namespace {

constexpr std::size_t global_batch = 12;
using fp16_arena = parameters<bfloat16, half>;
using fp32_arena = parameters<float, float>;

template <class Arena>
auto make_chain() {
  dynamic_loss_scale scaler;
  scaler.init_scale = 4096.0f;
  scaler.growth_interval = 8;
  adamw_options o;
  o.lr = 5e-3f;
  o.weight_decay = 0.01f;
  if constexpr (std::is_same_v<Arena, fp16_arena>)
    return chain(scaler, clip_by_global_norm{0.5f}, adamw(o), round_model_stochastic{21});
  else return chain(scaler, clip_by_global_norm{0.5f}, adamw(o));
}

struct arguments {
  int stage = 1, from = 0, to = 0, save_every = 0, die_rank = -1, die_at = -1;
  double timeout = 60.0, tolerance = -1.0;
  bool identical = false, die_before_save = false;
  std::string format = "fp16", load, save, compare_a, compare_b;
};

arguments parse(int argc, char** argv) {
  arguments a;
  for (int i = 1; i < argc; ++i) {
    const std::string k = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) throw error("dist_train: " + k + " needs a value");
      return argv[++i];
    };
    if (k == "--stage") a.stage = std::stoi(next());
    else if (k == "--from") a.from = std::stoi(next());
    else if (k == "--to") a.to = std::stoi(next());
    else if (k == "--load") a.load = next();
    else if (k == "--save") a.save = next();
    else if (k == "--save-every") a.save_every = std::stoi(next());
    else if (k == "--die-rank") a.die_rank = std::stoi(next());
    else if (k == "--die-at") a.die_at = std::stoi(next());
    else if (k == "--timeout") a.timeout = std::stod(next());
    else if (k == "--tolerance") a.tolerance = std::stod(next());
    else if (k == "--identical") a.identical = true;
    else if (k == "--die-before-save") a.die_before_save = true;
    else if (k == "--format") a.format = next();
    else if (k == "--compare") {
      a.compare_a = next();
      a.compare_b = next();
    } else throw error("dist_train: unknown argument " + k);
  }
  return a;
}

// The files of a save, for a whole-arena load in one process.
std::vector<std::string> parts_of(const std::string& dir) {
  const dist::detail::manifest m = dist::detail::read_manifest(dir);
  std::vector<std::string> out;
  for (const auto& p : m.parts) out.push_back(dir + "/" + m.directory + "/" + p.file);
  return out;
}

template <class arena>
int compare(const arguments& a) {
  const auto step = make_chain<arena>();
  arena x, y;
  for (arena* p : {&x, &y}) {
    test::dist::add_parameters(*p);
    p->finalize();
  }
  auto sx = step.init(x), sy = step.init(y);
  load_checkpoint(parts_of(a.compare_a), step, x, sx);
  load_checkpoint(parts_of(a.compare_b), step, y, sy);
  const std::vector<float> mx = x.to_host(role::master), my = y.to_host(role::master);
  double worst = 0.0;
  for (std::size_t i = 0; i < mx.size(); ++i) worst = std::max(worst, std::fabs(static_cast<double>(mx[i]) - my[i]));
  const bool same = serialize_checkpoint(step, x, sx) == serialize_checkpoint(step, y, sy);
  std::printf("compare: steps %llu and %llu, loss scales %g and %g, largest master-weight difference %.3g, %s\n",
              static_cast<unsigned long long>(sx.count()), static_cast<unsigned long long>(sy.count()),
              static_cast<double>(sx.loss_scale()), static_cast<double>(sy.loss_scale()), worst,
              same ? "bit-identical" : "not bit-identical");
  if (sx.count() != sy.count()) return 1;
  if (a.identical) return same ? 0 : 1;
  return worst <= a.tolerance ? 0 : 1;
}

template <class arena>
int train(const arguments& a) {
  dist::mpi_options mo;
  mo.timeout = std::chrono::duration<double>(a.timeout);
  dist::mpi_communicator comm(MPI_COMM_WORLD, mo);
  dist::data_parallel<dist::mpi_communicator> dp(comm, {a.stage});
  const auto step = make_chain<arena>();
  arena params;
  test::dist::add_parameters(params);
  dp.finalize(params, step);
  params.initialize_all(init::kaiming_uniform{}, 5);
  auto state = dp.init(step, params);
  if (!a.load.empty()) {
    dist::load_checkpoint(a.load, dp, step, params, state);
    if (state.count() + state.step().skipped_total != static_cast<std::uint64_t>(a.from))
      throw error("dist_train: the checkpoint is of step " + std::to_string(state.count()) + " + " +
                  std::to_string(state.step().skipped_total) + " skipped, not " + std::to_string(a.from));
    if (dp.rank() == 0) std::printf("rank 0 of %d: loaded %s at step %d\n", dp.size(), a.load.c_str(), a.from);
  }
  const std::size_t per_rank = global_batch / static_cast<std::size_t>(dp.size());
  if (per_rank * static_cast<std::size_t>(dp.size()) != global_batch)
    throw error("dist_train: the global batch of 12 does not split over " + std::to_string(dp.size()) + " ranks");
  for (int t = a.from + 1; t <= a.to; ++t) {
    if (dp.rank() == a.die_rank && t == a.die_at && !a.die_before_save) std::_Exit(3);  // no MPI_Finalize, no word
    const std::vector<float> g = test::dist::gradient(test::dist::model_as_float(params), t,
                                                      static_cast<std::size_t>(dp.rank()) * per_rank, per_rank);
    test::dist::write_gradients(params, g, state.loss_scale());
    dp.step(step, params, state);
    if (dp.rank() == a.die_rank && t == a.die_at && a.die_before_save) std::_Exit(3);
    if (a.save_every > 0 && t % a.save_every == 0 && !a.save.empty())
      dist::save_checkpoint(a.save, dp, step, params, state, {{"step", std::to_string(t)}});
  }
  if (!a.save.empty()) dist::save_checkpoint(a.save, dp, step, params, state, {{"step", std::to_string(a.to)}});
  if (dp.rank() == 0)
    std::printf("rank 0 of %d, ZeRO stage %d: steps %d..%d done, %llu applied, %llu skipped, loss scale %g\n",
                dp.size(), a.stage, a.from + 1, a.to, static_cast<unsigned long long>(state.count()),
                static_cast<unsigned long long>(state.step().skipped_total), static_cast<double>(state.loss_scale()));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int rc = 1;
  try {
    const arguments a = parse(argc, argv);
    if (a.format != "fp16" && a.format != "fp32") throw error("dist_train: --format is fp16 or fp32");
    if (a.format == "fp16") rc = a.compare_a.empty() ? train<fp16_arena>(a) : compare<fp16_arena>(a);
    else rc = a.compare_a.empty() ? train<fp32_arena>(a) : compare<fp32_arena>(a);
  } catch (const std::exception& e) {
    int rank = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    std::fprintf(stderr, "rank %d: %s\n", rank, e.what());
    std::fflush(stderr);
    // Not MPI_Abort: it would kill the other survivors before they reach
    // their own deadline and say so (rank_exit.sh checks that every one
    // does); not MPI_Finalize either, which may wait for the dead rank.
    std::_Exit(2);
  }
  MPI_Finalize();
  return rc;
}
