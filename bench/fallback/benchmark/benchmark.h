// A minimal stand-in for the part of Google Benchmark's API that mixprec's
// benchmarks use, written for this project. It is used only where Google
// Benchmark is not installed (e.g. a GPU machine without network access, see
// scripts/gpu-check.sh). It runs each registered benchmark with manual
// timing until 0.5 s of measured time (at least 1, at most 10^6 iterations),
// and prints a console table or, with --benchmark_format=json, the JSON
// fields bench/compare.py reads. --benchmark_filter takes a regex.
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <map>
#include <memory>
#include <regex>
#include <string>
#include <vector>

namespace benchmark {

enum TimeUnit { kNanosecond, kMicrosecond, kMillisecond, kSecond };

class State {
 public:
  State(std::int64_t arg, std::int64_t max_iterations) : arg_(arg), max_(max_iterations) {}
  std::int64_t range(int) const { return arg_; }
  std::int64_t iterations() const { return done_; }
  void SetIterationTime(double seconds) { seconds_ += seconds; }
  void SetBytesProcessed(std::int64_t b) { bytes_ = static_cast<double>(b); }
  std::map<std::string, double> counters;

  struct value {};  // a class type: `for (auto _ : state)` raises no unused-variable warning
  struct iterator {
    State* s;
    bool operator!=(const iterator&) const { return s->keep_running(); }
    void operator++() {}
    value operator*() const { return {}; }
  };
  iterator begin() { return {this}; }
  iterator end() { return {this}; }

  double seconds() const { return seconds_; }
  double bytes() const { return bytes_; }

 private:
  bool keep_running() {
    if (done_ > 0 && (seconds_ >= 0.5 || done_ >= max_)) return false;
    ++done_;
    return true;
  }
  std::int64_t arg_, max_, done_ = 0;
  double seconds_ = 0, bytes_ = 0;
};

template <class T>
inline void DoNotOptimize(T const& value) {
  asm volatile("" : : "r,m"(value) : "memory");
}

namespace internal {
struct entry {
  std::string name;
  std::function<void(State&)> fn;
  std::vector<std::int64_t> args;
  TimeUnit unit = kNanosecond;
};
inline std::vector<entry>& entries() {
  static std::vector<entry> e;
  return e;
}
inline std::string& filter() {
  static std::string f = ".*";
  return f;
}
inline bool& json() {
  static bool j = false;
  return j;
}
}  // namespace internal

class Benchmark {
 public:
  explicit Benchmark(std::size_t index) : index_(index) {}
  Benchmark* Arg(std::int64_t a) {
    internal::entries()[index_].args.push_back(a);
    return this;
  }
  Benchmark* Unit(TimeUnit u) {
    internal::entries()[index_].unit = u;
    return this;
  }
  Benchmark* UseManualTime() { return this; }
  Benchmark* UseRealTime() { return this; }

 private:
  std::size_t index_;
};

inline Benchmark* RegisterBenchmark(const char* name, void (*fn)(State&)) {
  internal::entries().push_back({name, fn, {}, kNanosecond});
  static std::vector<std::unique_ptr<Benchmark>> handles;
  handles.push_back(std::make_unique<Benchmark>(internal::entries().size() - 1));
  return handles.back().get();
}

inline void Initialize(int* argc, char** argv) {
  for (int a = 1; a < *argc; ++a) {
    const std::string arg = argv[a];
    if (arg.rfind("--benchmark_filter=", 0) == 0) internal::filter() = arg.substr(19);
    if (arg == "--benchmark_format=json") internal::json() = true;
  }
}

inline void RunSpecifiedBenchmarks() {
  const std::regex pattern(internal::filter());
  bool first = true;
  if (internal::json()) std::printf("{\n  \"context\": {\"library\": \"mixprec fallback\"},\n  \"benchmarks\": [\n");
  for (const auto& e : internal::entries()) {
    std::vector<std::int64_t> args = e.args.empty() ? std::vector<std::int64_t>{0} : e.args;
    for (std::int64_t a : args) {
      const std::string name = e.name + (e.args.empty() ? "" : "/" + std::to_string(a)) + "/manual_time";
      if (!std::regex_search(name, pattern)) continue;
      State s(a, 1000000);
      e.fn(s);
      const double per = s.iterations() > 0 ? s.seconds() / s.iterations() : 0;
      const double scale = e.unit == kMillisecond ? 1e3 : e.unit == kMicrosecond ? 1e6 : e.unit == kSecond ? 1 : 1e9;
      const char* unit = e.unit == kMillisecond ? "ms" : e.unit == kMicrosecond ? "us" : e.unit == kSecond ? "s" : "ns";
      const double bps = s.seconds() > 0 ? s.bytes() / s.seconds() : 0;
      if (internal::json()) {
        std::printf("%s    {\"name\": \"%s\", \"iterations\": %lld, \"real_time\": %.9g, \"time_unit\": \"%s\", "
                    "\"bytes_per_second\": %.9g",
                    first ? "" : ",\n", name.c_str(), static_cast<long long>(s.iterations()), per * scale, unit, bps);
        for (const auto& c : s.counters) std::printf(", \"%s\": %.9g", c.first.c_str(), c.second);
        std::printf("}");
        first = false;
      } else {
        std::printf("%-48s %12.4g %s %10lld  bytes_per_second=%.4gG/s", name.c_str(), per * scale, unit,
                    static_cast<long long>(s.iterations()), bps / 1073741824.0);
        for (const auto& c : s.counters) std::printf(" %s=%.6g", c.first.c_str(), c.second);
        std::printf("\n");
      }
      std::fflush(stdout);
    }
  }
  if (internal::json()) std::printf("\n  ]\n}\n");
}

inline void Shutdown() {}

}  // namespace benchmark
