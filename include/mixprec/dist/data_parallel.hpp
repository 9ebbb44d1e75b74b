// Data-parallel training over a communicator, with ZeRO stages 1 and 2.
//
//   mixprec::dist::mpi_communicator comm(MPI_COMM_WORLD);
//   mixprec::dist::data_parallel dp(comm, {/*zero_stage=*/1});
//   params.add(...);
//   dp.finalize(params, step);             // each rank's shard; ranks must agree
//   params.initialize_all(init, seed);     // the same weights on every rank
//   auto state = dp.init(step, params);
//   for (...) { backward(params, my_batch); dp.step(step, params, state); }
//
// Every rank runs the same chain on its own batch; the step averages the
// gradients over the ranks before the chain sees them, so R ranks with
// batch B train as one process with batch R*B.
//
//   stage 0  (data parallel) every rank keeps everything and updates every
//            element: the gradients are averaged by a reduce-scatter and an
//            all-gather (each element's mean is computed once, on one rank,
//            and copied to all, so the ranks hold the same bits).
//   stage 1  each rank keeps the fp32 master weights and optimizer state of
//            its shard only (a balanced contiguous range of the arena) and
//            updates only it; the gradients are averaged as in stage 0, the
//            updated model copy is all-gathered in the model's format.
//   stage 2  as stage 1, but the gradients are only reduce-scattered: a
//            rank holds the mean gradients of its shard (half the gradient
//            traffic; the arena still holds the whole gradient buffer the
//            backward pass writes).
//
// Statistics (non-finite counts, norms, per-parameter, per-row and
// per-column sums) of a sharded step are partial per rank: the step combines
// them across ranks (an all-gather, then a sum or max in rank order) before
// the chain's scalar rules run, so every rank clips, skips and grows or backs
// off its loss scale identically. Sums over shards are added in another
// order than one process adds them: results equal stage 0 to the rounding
// of the fp64 statistics, and bit for bit where no statistic is involved.
//
// finalize() checks that every rank has the same arena (names, shapes,
// groups, formats) and chain (components, hyperparameters) and init() that
// they start from the same weights; on a mismatch every rank raises the
// same mixprec::error and nothing has changed.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include <mixprec/core/error.hpp>
#include <mixprec/detail/for_each.hpp>
#include <mixprec/detail/memory.hpp>
#include <mixprec/dist/communicator.hpp>
#include <mixprec/io/checkpoint.hpp>
#include <mixprec/io/records.hpp>
#include <mixprec/tensor/arena_layout.hpp>
#include <mixprec/train/chain.hpp>

namespace mixprec::dist {

struct data_parallel_options {
  int zero_stage = 0;  // 0: data parallel; 1: shard master weights and optimizer state; 2: and the gradients
  std::size_t bucket_elements = std::size_t{1} << 22;  // gradient elements per collective (a multiple of 16)
};

// What one rank holds, in bytes.
struct memory_report {
  std::size_t master = 0, model = 0, gradients = 0, state = 0, buffers = 0;
  std::size_t total() const { return master + model + gradients + state + buffers; }
};

namespace detail {
using mixprec::detail::concat;
using mixprec::detail::require;

inline std::uint64_t fnv1a(std::uint64_t h, const void* data, std::size_t n) {
  const auto* p = static_cast<const std::uint8_t*>(data);
  for (std::size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 1099511628211ull;
  return h;
}
inline std::uint64_t fnv1a(std::uint64_t h, const std::string& s) {
  const std::uint64_t n = s.size();
  return fnv1a(fnv1a(h, &n, sizeof n), s.data(), s.size());
}
inline constexpr std::uint64_t fnv_basis = 14695981039346656037ull;

// What every rank must agree on.
struct fingerprint {
  std::uint64_t arena, chain, stage, bucket;
};

template <class Arena>
std::uint64_t arena_hash(const Arena& params) {
  std::uint64_t h = fnv_basis;
  const std::uint8_t formats[3] = {static_cast<std::uint8_t>(format_traits<typename Arena::model_type>::id),
                                   static_cast<std::uint8_t>(format_traits<typename Arena::grad_type>::id),
                                   static_cast<std::uint8_t>(Arena::has_master)};
  h = fnv1a(h, formats, sizeof formats);
  for (const auto& p : params.list()) {
    h = fnv1a(fnv1a(h, p.name), p.group);
    for (std::size_t e : p.shape) {
      const std::uint64_t x = e;
      h = fnv1a(h, &x, sizeof x);
    }
    const std::uint64_t r = p.shape.rank();
    h = fnv1a(h, &r, sizeof r);
  }
  return h;
}
template <class... C>
std::uint64_t chain_hash(const chain_t<C...>& chain) {
  std::uint64_t h = fnv_basis;
  std::size_t k = 0;
  std::apply(
      [&](const auto&... c) {
        ((h = fnv1a(h, chain.path(k++)),
          [&] {
            for (const mixprec::detail::named_value& v : mixprec::detail::hyperparameters_of(c))
              h = fnv1a(fnv1a(h, v.name), v.bytes.data(), v.bytes.size());
          }()),
         ...);
      },
      chain.as_tuple());
  return h;
}

// Balanced contiguous shards: rank r's begins near r * padded / R, on a
// 16-element boundary, or, with `units`, on a multiple of units[p] within
// parameter p or at its end (a row length when the chain needs positions, the
// block of its per-block statistics; a boundary in a parameter's padding
// moves to the next parameter).
inline std::vector<element_range> balanced_shards(const std::vector<std::size_t>& offsets,
                                                  const std::vector<std::size_t>& sizes,
                                                  const std::vector<std::size_t>& cols, std::size_t padded, int ranks,
                                                  bool units) {
  std::vector<std::size_t> cut(static_cast<std::size_t>(ranks) + 1, padded);
  cut[0] = 0;
  for (int r = 1; r < ranks; ++r) {
    const long double target = static_cast<long double>(padded) * r / ranks;
    std::size_t b = static_cast<std::size_t>(target / arena_layout::alignment + 0.5L) * arena_layout::alignment;
    if (units) {
      const std::size_t t = static_cast<std::size_t>(target + 0.5L);
      b = padded;
      for (std::size_t p = 0; p < offsets.size(); ++p) {
        const std::size_t end = p + 1 < offsets.size() ? offsets[p + 1] : padded;
        if (t < offsets[p] || t >= end) continue;
        const std::size_t within = t - offsets[p];
        if (within >= sizes[p]) {
          b = end;
        } else {
          const std::size_t c = cols[p] == 0 ? 1 : cols[p];
          std::size_t row = (within + c / 2) / c * c;
          if (row > sizes[p]) row = sizes[p];
          b = offsets[p] + row;
        }
        break;
      }
    }
    cut[static_cast<std::size_t>(r)] = std::min(std::max(b, cut[static_cast<std::size_t>(r) - 1]), padded);
  }
  std::vector<element_range> out;
  for (int r = 0; r < ranks; ++r)
    out.push_back({cut[static_cast<std::size_t>(r)], cut[static_cast<std::size_t>(r) + 1]});
  return out;
}

struct fold_statistics {
  const double* all;  // ranks x n
  double* out;
  std::size_t n;
  int ranks;
  bool is_max;
  MIXPREC_HOST_DEVICE void operator()(std::size_t i) const {
    double a = 0.0;
    for (int r = 0; r < ranks; ++r)
      a = mixprec::detail::combine_values(a, all[static_cast<std::size_t>(r) * n + i], is_max);
    out[i] = a;
  }
};
}  // namespace detail

template <class Communicator>
class data_parallel {
  static_assert(is_communicator_v<Communicator>,
                "mixprec::dist::data_parallel: the communicator lacks a member of the concept in "
                "mixprec/dist/communicator.hpp");

 public:
  explicit data_parallel(Communicator& comm, data_parallel_options options = {}) : comm_(comm), options_(options) {
    detail::require(options.zero_stage >= 0 && options.zero_stage <= 2, "data_parallel: zero_stage is 0, 1 or 2 (got ",
                    options.zero_stage, ")");
    detail::require(
        options.bucket_elements >= arena_layout::alignment && options.bucket_elements % arena_layout::alignment == 0,
        "data_parallel: bucket_elements must be a positive multiple of ", arena_layout::alignment, " (got ",
        options.bucket_elements, ")");
  }

  Communicator& communicator() { return comm_; }
  int rank() const { return comm_.rank(); }
  int size() const { return comm_.size(); }
  int zero_stage() const { return options_.zero_stage; }
  const data_parallel_options& options() const { return options_; }
  bool sharded() const { return options_.zero_stage > 0; }
  // The elements this rank (or rank r) updates: all of them in stage 0.
  element_range shard() const { return shard_of(comm_.rank()); }
  element_range shard_of(int r) const {
    require_finalized("shard_of");
    return shards_[static_cast<std::size_t>(r)];
  }

  // Checks that every rank has the same arena and chain, then lays the
  // arena out with the master weights of this rank's shard (stages 1, 2).
  template <class Arena, class... C>
  void finalize(Arena& params, const chain_t<C...>& chain) {
    detail::require(!params.finalized(),
                    "data_parallel::finalize: the arena is already finalized (add the "
                    "parameters, then let data_parallel finalize it)");
    agree(detail::fingerprint{detail::arena_hash(params), detail::chain_hash(chain),
                              static_cast<std::uint64_t>(options_.zero_stage), options_.bucket_elements});
    std::vector<std::size_t> sizes, cols;
    for (const auto& p : params.list()) {
      sizes.push_back(p.size);
      cols.push_back(p.shape.rank() == 0 ? 1 : p.shape[p.shape.rank() - 1]);
    }
    const std::vector<std::size_t> offsets = arena_layout::offsets_of(sizes);
    const std::size_t padded = arena_layout::padded_size_of(sizes);
    // Shards split parameters at rows (positions) or at the blocks of per-block statistics.
    constexpr std::uint32_t block = chain_t<C...>::block_size;
    if (block != 0) cols.assign(sizes.size(), block);
    std::vector<element_range> shards;
    if (sharded())
      shards = detail::balanced_shards(offsets, sizes, cols, padded, comm_.size(),
                                       chain_t<C...>::uses_positions || block != 0);
    else shards.assign(static_cast<std::size_t>(comm_.size()), element_range{0, padded});
    // A float model is its own master: then only the optimizer state is sharded.
    if (sharded() && Arena::has_master && !Arena::model_is_master)
      params.finalize(shards[static_cast<std::size_t>(comm_.rank())]);
    else params.finalize();
    shards_ = std::move(shards);
    padded_ = padded;
    chain_ = detail::chain_hash(chain);
  }

  // The chain's state for this rank's shard. Checks that every rank starts
  // from the same model copy.
  template <class Arena, class... C>
  chain_state<Arena, C...> init(const chain_t<C...>& chain, Arena& params, stream s = {}) {
    require_finalized("init");
    detail::require(params.finalized() && params.padded_size() == padded_,
                    "data_parallel::init: the arena is not the one finalize() laid out");
    detail::require(detail::chain_hash(chain) == chain_,
                    "data_parallel::init: the chain differs from the one "
                    "given to finalize()");
    const std::vector<std::uint8_t> model = model_bytes(params, s);
    const std::uint32_t crc = mixprec::detail::crc32(model.data(), model.size());
    const std::vector<std::uint8_t> all = comm_.all_gather_host(&crc, sizeof crc);
    for (int r = 0; r < comm_.size(); ++r) {
      std::uint32_t other;
      std::memcpy(&other, all.data() + static_cast<std::size_t>(r) * sizeof crc, sizeof crc);
      detail::require(other == crc, "data_parallel::init: rank ", r, " starts from other weights than rank ",
                      comm_.rank(),
                      " (initialize every rank with the same initialisers and seeds, or load one "
                      "checkpoint)");
    }
    chain_state<Arena, C...> st = chain.init(params, s, shard());
    statistics_ = mixprec::detail::allocate<double>(
        sharded() ? static_cast<std::size_t>(comm_.size()) * st.largest_statistic() : 0, "the statistics exchange");
    return st;
  }

  // One step on every rank: averages the gradients, runs the chain (on this
  // rank's shard, statistics combined across ranks), shares the model copy.
  template <class Arena, class State, class... C>
  void step(const chain_t<C...>& chain, Arena& params, State& state, stream s = {}) {
    require_finalized("step");
    detail::require(
        state.shard().begin == shard().begin && state.shard().end == shard().end && params.padded_size() == padded_,
        "data_parallel::step: the state or arena was not made by this data_parallel's init()");
    step_hooks h{this};
    chain.apply(params, state, s, h);
  }

  // Shares this rank's shard of the model copy with every rank (step() does
  // this after the update; a sharded load does it too).
  template <class Arena>
  void gather_model(Arena& params, stream s = {}) {
    using model_type = typename Arena::model_type;
    if (!sharded() || comm_.size() == 1) return;
    for_each_shard_chunk([&](const std::vector<std::size_t>& offsets, const std::vector<std::size_t>& counts) {
      std::vector<std::size_t> at = offsets, bytes = counts;
      for (auto& b : at) b *= sizeof(model_type);
      for (auto& b : bytes) b *= sizeof(model_type);
      comm_.all_gather(params.model_data(), at.data(), bytes.data(), s);
    });
  }

  // Averages the gradients over the ranks (step() does this first): every
  // element in stages 0 and 1, this rank's shard in stage 2.
  template <class Arena>
  void reduce_gradients(Arena& params, stream s = {}) {
    using grad_type = typename Arena::grad_type;
    if (comm_.size() == 1) return;
    grad_type* g = params.grad_data();
    if (options_.zero_stage == 2) {
      for_each_shard_chunk([&](const std::vector<std::size_t>& offsets, const std::vector<std::size_t>& counts) {
        comm_.reduce_scatter_mean(g, offsets.data(), counts.data(), s);
      });
      return;
    }
    // Windows of the arena, each split evenly: reduce-scatter, then all-gather the means.
    const std::size_t ranks = static_cast<std::size_t>(comm_.size()), a = arena_layout::alignment;
    for (std::size_t w0 = 0; w0 < padded_; w0 += options_.bucket_elements) {
      const std::size_t w1 = std::min(padded_, w0 + options_.bucket_elements);
      const std::size_t piece = ((w1 - w0 + ranks - 1) / ranks + a - 1) / a * a;
      std::vector<std::size_t> offsets, counts, at, bytes;
      for (std::size_t r = 0; r < ranks; ++r) {
        const std::size_t lo = std::min(w1, w0 + r * piece), hi = std::min(w1, lo + piece);
        offsets.push_back(lo);
        counts.push_back(hi - lo);
        at.push_back(lo * sizeof(grad_type));
        bytes.push_back((hi - lo) * sizeof(grad_type));
      }
      comm_.reduce_scatter_mean(g, offsets.data(), counts.data(), s);
      comm_.all_gather(g, at.data(), bytes.data(), s);
    }
  }

  // What this rank holds: master weights, model copy, gradients, optimizer
  // state and the step's exchange buffers.
  template <class Arena, class State>
  memory_report memory(Arena& params, const State& state) const {
    memory_report m;
    if constexpr (Arena::has_master) m.master = (params.master_end() - params.master_begin()) * sizeof(float);
    if constexpr (!Arena::model_is_master) m.model = params.padded_size() * sizeof(typename Arena::model_type);
    m.gradients = params.padded_size() * sizeof(typename Arena::grad_type);
    m.state = state.state_bytes();
    m.buffers = statistics_.size() * sizeof(double);
    return m;
  }

  // Agreement: every rank's value of x (a trivially copyable struct).
  template <class T>
  std::vector<T> all_gather_value(const T& x) {
    const std::vector<std::uint8_t> all = comm_.all_gather_host(&x, sizeof(T));
    std::vector<T> out(static_cast<std::size_t>(comm_.size()));
    std::memcpy(out.data(), all.data(), all.size());
    return out;
  }

 private:
  // The chain's hooks: gradients before the passes, statistics after each
  // measuring pass, the model copy after the update.
  struct step_hooks {
    data_parallel* dp;
    template <class Arena>
    void before_passes(Arena& params, stream s) {
      if (dp->comm_.size() > 1) dp->reduce_gradients(params, s);
    }
    void combine(double* values, std::size_t n, bool is_max, stream s) {
      if (!dp->sharded() || dp->comm_.size() == 1) return;
      double* all = mixprec::detail::raw(dp->statistics_);
      dp->comm_.all_gather_fixed(values, all, n * sizeof(double), s);
      mixprec::detail::for_each_index(s, n, detail::fold_statistics{all, values, n, dp->comm_.size(), is_max});
    }
    template <class Arena>
    void after_update(Arena& params, stream s) {
      dp->gather_model(params, s);
    }
  };

  void require_finalized(const char* what) const {
    detail::require(!shards_.empty(), "data_parallel::", what, ": call finalize(params, chain) first");
  }
  void agree(const detail::fingerprint& mine) {
    const std::vector<detail::fingerprint> all = all_gather_value(mine);
    std::string problems;
    for (int r = 1; r < comm_.size(); ++r) {
      const detail::fingerprint& f = all[static_cast<std::size_t>(r)];
      const detail::fingerprint& z = all[0];
      if (f.arena != z.arena)
        problems += detail::concat("; rank ", r,
                                   "'s parameter arena (names, shapes, groups or formats) differs from "
                                   "rank 0's");
      if (f.chain != z.chain)
        problems += detail::concat("; rank ", r, "'s chain (components or hyperparameters) differs from rank 0's");
      if (f.stage != z.stage || f.bucket != z.bucket)
        problems += detail::concat("; rank ", r, " uses ZeRO stage ", f.stage, " and buckets of ", f.bucket,
                                   " elements, rank 0 stage ", z.stage, " and ", z.bucket);
    }
    detail::require(problems.empty(), "data_parallel::finalize: the ranks disagree", problems);
  }
  template <class Arena>
  std::vector<std::uint8_t> model_bytes(Arena& params, stream s) const {
    using model_type = typename Arena::model_type;
    std::vector<std::uint8_t> out(params.padded_size() * sizeof(model_type));
    mixprec::detail::copy_to_host(reinterpret_cast<const std::uint8_t*>(params.model_data()), out.data(), out.size(),
                                  s);
    return out;
  }

  // Collectives over the shards: chunk k of every rank's shard at once
  // (each rank's part a bucket's share), so each collective spreads its
  // work over every rank.
  template <class F>
  void for_each_shard_chunk(F&& f) const {
    const std::size_t ranks = shards_.size(), a = arena_layout::alignment;
    const std::size_t chunk = ((options_.bucket_elements + ranks - 1) / ranks + a - 1) / a * a;
    std::size_t largest = 0;
    for (const element_range& r : shards_) largest = std::max(largest, r.end - r.begin);
    for (std::size_t k = 0; k * chunk < largest; ++k) {
      std::vector<std::size_t> offsets, counts;
      for (const element_range& r : shards_) {
        const std::size_t lo = std::min(r.end, r.begin + k * chunk), hi = std::min(r.end, lo + chunk);
        offsets.push_back(lo);
        counts.push_back(hi - lo);
      }
      f(offsets, counts);
    }
  }

  Communicator& comm_;
  data_parallel_options options_;
  std::vector<element_range> shards_;
  std::size_t padded_ = 0;
  std::uint64_t chain_ = 0;
  mixprec::detail::device_buffer<double> statistics_;
};

}  // namespace mixprec::dist
