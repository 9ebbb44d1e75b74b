// A communicator over MPI for the host backend (mixprec/dist/communicator.hpp).
//
//   MPI_Init(&argc, &argv);
//   mixprec::dist::mpi_communicator comm(MPI_COMM_WORLD);
//
// It works on a duplicate of the user's communicator whose errors return
// instead of aborting, and runs every collective non-blocking, polling it
// against a deadline: if another rank fails or stops calling the step, the
// collective raises mixprec::error on this rank within `timeout` (MPI is
// unusable afterwards: report and MPI_Abort). The timeout is positive
// seconds, or no_timeout to wait forever (dist/timeout.hpp); NaN, zero and
// negative timeouts are refused here.
//
// The gradients travel in their own format (2 bytes for half and bfloat16)
// and are summed in fp32 by the rank that owns them, in rank order, then
// divided by the number of ranks and rounded once: no partial sum is
// rounded to 16 bits and no sum can overflow the 16-bit format, each
// element's mean is computed once (every rank gets the same bits) and in
// a fixed order (runs repeat bit for bit).
//
// Link mixprec::mpi (find_package(MPI)); not for the CUDA backend (use
// nccl_communicator there).
#pragma once

#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <climits>
#include <cstdint>
#include <cstring>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#include <mixprec/cast/convert.hpp>
#include <mixprec/cast/convert_range.hpp>
#include <mixprec/core/config.hpp>
#include <mixprec/core/error.hpp>
#include <mixprec/core/stream.hpp>
#include <mixprec/dist/communicator.hpp>
#include <mixprec/dist/timeout.hpp>
#include <mixprec/format/bits.hpp>
#include <mixprec/format/format_traits.hpp>

namespace mixprec::dist {

struct mpi_options {
  // How long a collective waits for the other ranks (no_timeout: forever).
  std::chrono::duration<double> timeout = std::chrono::minutes(5);
};

class mpi_communicator {
  static_assert(current_backend != backend::cuda,
                "mixprec::dist::mpi_communicator works on host memory: on the CUDA backend use nccl_communicator");

 public:
  explicit mpi_communicator(MPI_Comm comm, mpi_options options = {}) : options_(options) {
    detail::check_timeout(options_.timeout, "mpi_communicator: mpi_options::timeout");
    int initialized = 0;
    MPI_Initialized(&initialized);
    detail_require(initialized != 0, "mpi_communicator: MPI is not initialized (call MPI_Init first)");
    check(MPI_Comm_dup(comm, &comm_), "MPI_Comm_dup");
    MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN);
    MPI_Comm_rank(comm_, &rank_);
    MPI_Comm_size(comm_, &size_);
  }
  mpi_communicator(const mpi_communicator&) = delete;
  mpi_communicator& operator=(const mpi_communicator&) = delete;
  ~mpi_communicator() {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (finalized) return;
    MPI_Comm_free(&comm_);
  }

  int rank() const { return rank_; }
  int size() const { return size_; }
  const mpi_options& options() const { return options_; }

  // Each part goes to its rank in the gradients' own format (point-to-point
  // messages: 64-bit offsets, any layout); the rank adds the R copies in
  // fp32, in rank order, divides by R and rounds once. (MPI's own
  // reduce-scatter is 3-4x slower here: see docs/performance.md.)
  template <class T>
  void reduce_scatter_mean(T* data, const std::size_t* offsets, const std::size_t* counts, stream = {}) {
    static_assert(std::is_same_v<T, float> || std::is_same_v<T, half> || std::is_same_v<T, bfloat16>,
                  "reduce_scatter_mean: float, half or bfloat16");
    const std::size_t ranks = static_cast<std::size_t>(size_), me = static_cast<std::size_t>(rank_);
    const std::size_t own = counts[me];
    if (size_ == 1) return;  // the mean of one
    parts_.resize(ranks * own * sizeof(T));
    T* parts = reinterpret_cast<T*>(parts_.data());
    const MPI_Datatype type = std::is_same_v<T, float> ? MPI_FLOAT : MPI_UINT16_T;
    std::vector<MPI_Request> reqs;
    for (std::size_t r = 0; r < ranks; ++r) {
      if (r == me) continue;
      if (own > 0) {
        reqs.push_back(MPI_REQUEST_NULL);
        check(MPI_Irecv(parts + r * own, as_int(own, "reduce_scatter_mean"), type, static_cast<int>(r), tag_reduce,
                        comm_, &reqs.back()),
              "MPI_Irecv");
      }
      if (counts[r] > 0) {
        reqs.push_back(MPI_REQUEST_NULL);
        check(MPI_Isend(data + offsets[r], as_int(counts[r], "reduce_scatter_mean"), type, static_cast<int>(r),
                        tag_reduce, comm_, &reqs.back()),
              "MPI_Isend");
      }
    }
    if (own > 0)
      std::memcpy(static_cast<void*>(parts + me * own), static_cast<const void*>(data + offsets[me]), own * sizeof(T));
    wait_all(reqs, "the gradient reduce-scatter");
    T* mine = data + offsets[me];
    const float divisor = static_cast<float>(size_);
    // Blocks that stay in L1, ranks outside, elements inside: the loops vectorise.
    constexpr std::size_t block = 1024;
    const std::size_t blocks = (own + block - 1) / block;
#pragma omp parallel for schedule(static)
    for (std::size_t b = 0; b < blocks; ++b) {
      const std::size_t first = b * block, n = std::min(block, own - first);
      float sum[block];
      for (std::size_t j = 0; j < n; ++j) sum[j] = to_float(parts[first + j]);
      for (std::size_t r = 1; r < ranks; ++r) {
        const T* part = parts + r * own + first;
        for (std::size_t j = 0; j < n; ++j) sum[j] += to_float(part[j]);
      }
      for (std::size_t j = 0; j < n; ++j) mine[first + j] = convert<T>(sum[j] / divisor);
    }
  }

  void all_gather(void* data, const std::size_t* offsets, const std::size_t* bytes, stream = {}) {
    if (size_ == 1) return;
    auto* base = static_cast<std::uint8_t*>(data);
    const std::size_t me = static_cast<std::size_t>(rank_);
    std::vector<MPI_Request> reqs;
    for (std::size_t r = 0; r < static_cast<std::size_t>(size_); ++r) {
      if (r == me) continue;
      if (bytes[r] > 0) {
        reqs.push_back(MPI_REQUEST_NULL);
        check(MPI_Irecv(base + offsets[r], as_int(bytes[r], "all_gather"), MPI_BYTE, static_cast<int>(r), tag_gather,
                        comm_, &reqs.back()),
              "MPI_Irecv");
      }
      if (bytes[me] > 0) {
        reqs.push_back(MPI_REQUEST_NULL);
        check(MPI_Isend(base + offsets[me], as_int(bytes[me], "all_gather"), MPI_BYTE, static_cast<int>(r), tag_gather,
                        comm_, &reqs.back()),
              "MPI_Isend");
      }
    }
    wait_all(reqs, "the all-gather");
  }

  void all_gather_fixed(const void* mine, void* all, std::size_t bytes, stream = {}) {
    gather_fixed(mine, all, bytes, "the exchange of statistics");
  }

  std::vector<std::uint8_t> all_gather_host(const void* mine, std::size_t bytes) {
    std::vector<std::uint8_t> all(bytes * static_cast<std::size_t>(size_));
    gather_fixed(mine, all.data(), bytes, "an agreement between the ranks (init, save or load)");
    return all;
  }

  void synchronize(stream) {}  // every collective here has completed when it returns

  MPI_Comm comm() const { return comm_; }

 private:
  static void detail_require(bool ok, const char* what) {
    if (!ok) throw error(what);
  }
  void gather_fixed(const void* mine, void* all, std::size_t bytes, const char* what) {
    const int n = as_int(bytes, "all_gather_fixed");
    std::vector<MPI_Request> req(1, MPI_REQUEST_NULL);
    check(MPI_Iallgather(mine, n, MPI_BYTE, all, n, MPI_BYTE, comm_, &req[0]), "MPI_Iallgather");
    wait_all(req, what);
  }
  int as_int(std::size_t n, const char* what) const {
    if (n > static_cast<std::size_t>(INT_MAX))
      throw error(mixprec::detail::concat("mpi_communicator::", what, ": ", n,
                                          " elements in one part exceed MPI's int "
                                          "counts (use smaller buckets)"));
    return static_cast<int>(n);
  }
  void check(int rc, const char* what) const {
    if (rc == MPI_SUCCESS) return;
    char text[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(rc, text, &len);
    throw error(mixprec::detail::concat("mpi_communicator: ", what, " failed on rank ", rank_, ": ",
                                        std::string(text, static_cast<std::size_t>(len))));
  }
  static constexpr int tag_reduce = 7101, tag_gather = 7102;
  // Polls until every request completes, one fails, or the deadline passes.
  void wait_all(std::vector<MPI_Request>& reqs, const char* what) const {
    if (reqs.empty()) return;
    using clock = std::chrono::steady_clock;
    const detail::deadline deadline(options_.timeout);
    // Spin while the requests are young (each test drives their progress), then poll gently.
    const auto spin_until = clock::now() + std::chrono::milliseconds(50);
    for (unsigned polls = 1;; ++polls) {
      int done = 0;
      check(MPI_Testall(static_cast<int>(reqs.size()), reqs.data(), &done, MPI_STATUSES_IGNORE), what);
      if (done) return;
      if (polls % 256 != 0) continue;
      if (deadline.passed())
        throw error(mixprec::detail::concat("mpi_communicator: ", what, " did not complete within ",
                                            options_.timeout.count(), " s on rank ", rank_, " of ", size_,
                                            ": another rank has failed or stopped calling the step"));
      if (clock::now() > spin_until) std::this_thread::sleep_for(std::chrono::microseconds(20));
    }
  }

  mpi_options options_;
  MPI_Comm comm_ = MPI_COMM_NULL;
  int rank_ = 0, size_ = 1;
  std::vector<std::uint8_t> parts_;  // this rank's part from every rank
};

static_assert(is_communicator_v<mpi_communicator>);

}  // namespace mixprec::dist
