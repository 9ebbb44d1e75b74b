// The machine's own memory ceilings, measured in the same process as the
// benchmarks that are compared with them: copy (b = a, 8 bytes per float
// element moved) and triad (a = b + s * c, 12 bytes), STREAM-style, through
// the same backend and launch primitive as the library. STREAM counts the
// bytes a kernel names; on a write-allocate cache each store to a line not
// yet read also reads it first, so copy and triad move 12 and 16 bytes. An
// optimizer writes mostly lines it has just read (weights, moments), so a
// third ceiling is measured with that pattern: update (a = s * a + b, 12
// bytes named, 12 moved).
#pragma once

#include <algorithm>
#include <chrono>
#include <cstddef>

#include <benchmark/benchmark.h>

#include <mixprec/detail/for_each.hpp>
#include <mixprec/detail/memory.hpp>

namespace bench {

struct copy_body {
  const float* a;
  float* b;
  MIXPREC_HOST_DEVICE void operator()(std::size_t i) const { b[i] = a[i]; }
};
struct update_body {
  float* a;
  const float* b;
  float s;
  MIXPREC_HOST_DEVICE void operator()(std::size_t i) const { a[i] = s * a[i] + b[i]; }
};
struct triad_body {
  float* a;
  const float* b;
  const float* c;
  float s;
  MIXPREC_HOST_DEVICE void operator()(std::size_t i) const { a[i] = b[i] + s * c[i]; }
};

struct fill_body {
  float* p;
  MIXPREC_HOST_DEVICE void operator()(std::size_t i) const { p[i] = 1.0f + static_cast<float>(i % 1000) * 1e-3f; }
};

// Arrays large enough to leave every cache (3 x 512 MiB).
inline constexpr std::size_t stream_elements = std::size_t{1} << 27;

struct stream_arrays {
  mixprec::detail::device_buffer<float> a, b, c;
  stream_arrays() : a(stream_elements), b(stream_elements), c(stream_elements) {
    mixprec::detail::for_each_index({}, stream_elements, fill_body{mixprec::detail::raw(a)});
    mixprec::detail::for_each_index({}, stream_elements, fill_body{mixprec::detail::raw(b)});
    mixprec::detail::for_each_index({}, stream_elements, fill_body{mixprec::detail::raw(c)});
  }
  static stream_arrays& get() {
    static stream_arrays arrays;
    return arrays;
  }
  void copy() {
    mixprec::detail::for_each_index({}, stream_elements, copy_body{mixprec::detail::raw(a), mixprec::detail::raw(b)});
  }
  void triad() {
    mixprec::detail::for_each_index(
        {}, stream_elements,
        triad_body{mixprec::detail::raw(a), mixprec::detail::raw(b), mixprec::detail::raw(c), 3.0f});
  }
  void update() {
    // s = 1 - 2^-10 with b ~ 1: a stays bounded, never denormal or inf.
    mixprec::detail::for_each_index({}, stream_elements,
                                    update_body{mixprec::detail::raw(c), mixprec::detail::raw(b), 0.9990234375f});
  }
};

// Best-of-n bandwidth in bytes per second.
template <class F>
double best_bandwidth(F f, double bytes, int reps = 7) {
  double best = 0;
  for (int r = 0; r < reps; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    f();
    mixprec::synchronize({});
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    best = std::max(best, bytes / s);
  }
  return best;
}

struct ceilings {
  double copy_bytes_per_s, triad_bytes_per_s, update_bytes_per_s;
  static const ceilings& get() {
    static const ceilings c = [] {
      stream_arrays& s = stream_arrays::get();
      return ceilings{best_bandwidth([&] { s.copy(); }, 8.0 * stream_elements),
                      best_bandwidth([&] { s.triad(); }, 12.0 * stream_elements),
                      best_bandwidth([&] { s.update(); }, 12.0 * stream_elements)};
    }();
    return c;
  }
};

// Runs the benchmark loop, timing each iteration (synchronised with the
// device) and reporting: bytes moved per second (`bytes_per_iteration` is the
// minimal number of bytes the operation must move), elements per second,
// and the bandwidth as fractions of the copy, triad and update bandwidth
// measured in this run (best of 7 runs each). Register with ->UseManualTime().
template <class F>
void run_timed(benchmark::State& state, double bytes_per_iteration, double elements_per_iteration, F&& f) {
  const ceilings& c = ceilings::get();
  double seconds = 0;
  for (auto _ : state) {
    const auto t0 = std::chrono::steady_clock::now();
    f();
    mixprec::synchronize({});
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    state.SetIterationTime(s);
    seconds += s;
  }
  const double iterations = static_cast<double>(state.iterations());
  const double bandwidth = bytes_per_iteration * iterations / seconds;
  state.SetBytesProcessed(static_cast<int64_t>(bytes_per_iteration * iterations));
  state.counters["Melem/s"] = elements_per_iteration * iterations / seconds / 1e6;
  state.counters["frac_copy"] = bandwidth / c.copy_bytes_per_s;
  state.counters["frac_triad"] = bandwidth / c.triad_bytes_per_s;
  state.counters["frac_update"] = bandwidth / c.update_bytes_per_s;
}

// The ceilings themselves, as benchmarks (first in every report).
inline void copy_benchmark(benchmark::State& state) {
  stream_arrays& s = stream_arrays::get();
  run_timed(state, 8.0 * stream_elements, stream_elements, [&] { s.copy(); });
}
inline void triad_benchmark(benchmark::State& state) {
  stream_arrays& s = stream_arrays::get();
  run_timed(state, 12.0 * stream_elements, stream_elements, [&] { s.triad(); });
}

inline void update_benchmark(benchmark::State& state) {
  stream_arrays& s = stream_arrays::get();
  run_timed(state, 12.0 * stream_elements, stream_elements, [&] { s.update(); });
}

inline void register_ceilings() {
  benchmark::RegisterBenchmark("ceiling/copy", copy_benchmark)->Unit(benchmark::kMillisecond)->UseManualTime();
  benchmark::RegisterBenchmark("ceiling/triad", triad_benchmark)->Unit(benchmark::kMillisecond)->UseManualTime();
  benchmark::RegisterBenchmark("ceiling/update", update_benchmark)->Unit(benchmark::kMillisecond)->UseManualTime();
}

}  // namespace bench
