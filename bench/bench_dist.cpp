// The distributed step on the host, timed on real ranks: each collective
// against the bytes it moves and against this machine's copy bandwidth
// measured in the same run, and the whole step in data parallel and ZeRO
// stages 1 and 2 against the same step without communication.
//
//   mpirun -np 2 --bind-to none -x OMP_NUM_THREADS=1 bench_dist [--elements N] [--repeats K] [--bucket E]
//
// Every rank runs every measurement at once (a barrier first); a time is the
// slowest rank's, the median of K repeats. The arena is one fp16 gradient
// and bf16 model per element with fp32 master weights; the chain dynamic
// loss scaling, global-norm clipping and AdamW. Google Benchmark is not used
// here: its adaptive iteration counts would differ between ranks, and every
// rank must call every collective the same number of times.
#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include <mixprec/dist/data_parallel.hpp>
#include <mixprec/dist/mpi_communicator.hpp>
#include <mixprec/mixprec.hpp>

using namespace mixprec;

namespace {

using arena = parameters<bfloat16, half>;

struct settings {
  std::size_t elements = 10'000'000;
  int repeats = 7;
  std::size_t bucket = std::size_t{1} << 22;
};

settings parse(int argc, char** argv) {
  settings s;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i];
    if (k == "--elements") s.elements = static_cast<std::size_t>(std::stod(argv[i + 1]));
    else if (k == "--repeats") s.repeats = std::stoi(argv[i + 1]);
    else if (k == "--bucket") s.bucket = static_cast<std::size_t>(std::stod(argv[i + 1]));
    else throw error("bench_dist: unknown option " + k);
  }
  return s;
}

auto make_chain() {
  dynamic_loss_scale scaler;
  scaler.init_scale = 1.0f;  // the gradients below are O(1): no overflow, every step applies
  return chain(scaler, clip_by_global_norm{1.0f}, adamw(adamw_options{}));
}

// The slowest rank's seconds for f(), median over the repeats.
template <class F>
double time_it(int repeats, F&& f) {
  std::vector<double> t;
  for (int k = 0; k < repeats; ++k) {
    MPI_Barrier(MPI_COMM_WORLD);
    const auto a = std::chrono::steady_clock::now();
    f();
    double mine = std::chrono::duration<double>(std::chrono::steady_clock::now() - a).count(), slowest = 0;
    MPI_Allreduce(&mine, &slowest, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
    t.push_back(slowest);
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

void add(arena& p, std::size_t n) {
  // Four matrices and a vector, like a small stack of layers.
  const std::size_t rows = 1024, per = n / 4 / rows;
  for (int k = 0; k < 4; ++k) p.add("w" + std::to_string(k), {rows, per});
  p.add("b", {n - 4 * rows * per + 1});
}

void fill_gradients(arena& p, int rank) {
  std::vector<half> g(p.padded_size());
  for (std::size_t i = 0; i < g.size(); ++i)
    g[i] = convert<half>(0.001f * static_cast<float>(static_cast<int>((i * 2654435761u + rank) % 2001) - 1000));
  detail::write_to_device(g.data(), p.grad_data(), g.size());
}

}  // namespace

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int rc = 0;
  try {
    const settings set = parse(argc, argv);
    int rank = 0, ranks = 1;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &ranks);
    const auto step = make_chain();
    const bool report = rank == 0;
    if (report)
      std::printf(
          "bench_dist: %d ranks, %.3g parameters (fp32 master, bf16 model, fp16 gradients), buckets of %.3g "
          "elements, median of %d, slowest rank\n\n",
          ranks, static_cast<double>(set.elements), static_cast<double>(set.bucket), set.repeats);

    // This machine's copy bandwidth, every rank copying at once: the bytes of the gradients.
    const std::size_t n = set.elements;
    std::vector<std::uint8_t> src(n * 2, 1), dst(n * 2);
    const double copy_s = time_it(set.repeats, [&] { std::memcpy(dst.data(), src.data(), src.size()); });
    const double copy_bw = 2.0 * static_cast<double>(src.size()) / copy_s;  // read + write
    if (report)
      std::printf("copy of the gradients (%zu bytes per rank, all ranks at once): %.2f ms, %.2f GB/s read+write\n\n",
                  src.size(), copy_s * 1e3, copy_bw * 1e-9);

    // The step without communication: every rank its own whole arena.
    double local_s = 0;
    {
      arena p;
      add(p, n);
      p.finalize();
      p.initialize_all(init::kaiming_uniform{}, 1);
      auto st = step.init(p);
      fill_gradients(p, rank);
      step.apply(p, st);
      local_s = time_it(set.repeats, [&] { step.apply(p, st); });
    }
    if (report) {
      std::printf("%-44s %14s %10s %10s %9s\n", "operation", "bytes/rank", "ms", "GB/s", "x copy");
      std::printf("%-44s %14s %10.2f %10s %9s\n", "step, no communication (1 rank's work)", "-", local_s * 1e3, "-",
                  "-");
    }
    auto row = [&](const char* what, double bytes, double s) {
      if (report)
        std::printf("%-44s %14.3g %10.2f %10.2f %9.2f\n", what, bytes, s * 1e3, bytes / s * 1e-9,
                    (bytes / s) / copy_bw);
    };

    dist::mpi_communicator comm(MPI_COMM_WORLD);
    const double r = static_cast<double>(ranks);
    for (int stage : {0, 1, 2}) {
      dist::data_parallel<dist::mpi_communicator> dp(comm, {stage, set.bucket});
      arena p;
      add(p, n);
      dp.finalize(p, step);
      p.initialize_all(init::kaiming_uniform{}, 1);
      auto st = dp.init(step, p);
      fill_gradients(p, rank);
      dp.step(step, p, st);
      const double grad_bytes = 2.0 * static_cast<double>(p.padded_size());
      // Bytes a rank sends: (R-1)/R of the gradients per collective.
      if (stage == 0)
        row("gradients, stage 0 (reduce-scatter + all-gather)", 2.0 * grad_bytes * (r - 1) / r,
            time_it(set.repeats, [&] { dp.reduce_gradients(p); }));  // the same gradients each time: work alike
      if (stage == 2)
        row("gradients, stage 2 (reduce-scatter)", grad_bytes * (r - 1) / r,
            time_it(set.repeats, [&] { dp.reduce_gradients(p); }));
      if (stage == 1)
        row("model copy all-gather (bf16), stages 1 and 2", 2.0 * static_cast<double>(p.padded_size()) * (r - 1) / r,
            time_it(set.repeats, [&] { dp.gather_model(p); }));
      const double s = time_it(set.repeats, [&] { dp.step(step, p, st); });
      const dist::memory_report m = dp.memory(p, st);
      if (report)
        std::printf("%-44s %14s %10.2f %10s %9s   %.2fx the local step; master+state %.0f MB\n",
                    ("step, stage " + std::to_string(stage)).c_str(), "-", s * 1e3, "-", "-", s / local_s,
                    static_cast<double>(m.master + m.state) / 1e6);
    }

    // What reduce_scatter_mean replaced: MPI's own reduce-scatter of the
    // same elements, on fp32 (the widened gradients) and on the 16-bit
    // values with an fp32-accumulating user operation. Not used by mixprec.
    {
      const std::size_t part = (n + static_cast<std::size_t>(ranks) - 1) / static_cast<std::size_t>(ranks);
      std::vector<int> counts(static_cast<std::size_t>(ranks), static_cast<int>(part));
      std::vector<float> wide(part * static_cast<std::size_t>(ranks), 0.5f), out(part);
      row("MPI_Reduce_scatter, fp32 (not used)", 4.0 * static_cast<double>(n) * (r - 1) / r, time_it(set.repeats, [&] {
            MPI_Reduce_scatter(wide.data(), out.data(), counts.data(), MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
          }));
      MPI_Op add_half;
      MPI_Op_create(
          [](void* in, void* inout, int* len, MPI_Datatype*) {
            const half* a = static_cast<const half*>(in);
            half* b = static_cast<half*>(inout);
            for (int i = 0; i < *len; ++i) b[i] = convert<half>(to_float(a[i]) + to_float(b[i]));
          },
          1, &add_half);
      std::vector<half> narrow(wide.size(), convert<half>(0.5f)), narrow_out(part);
      row("MPI_Reduce_scatter, fp16 + fp32-adding op (not used)", 2.0 * static_cast<double>(n) * (r - 1) / r,
          time_it(set.repeats, [&] {
            MPI_Reduce_scatter(narrow.data(), narrow_out.data(), counts.data(), MPI_UINT16_T, add_half, MPI_COMM_WORLD);
          }));
      MPI_Op_free(&add_half);
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_dist: %s\n", e.what());
    rc = 1;
    MPI_Abort(MPI_COMM_WORLD, 1);
  }
  MPI_Finalize();
  return rc;
}
