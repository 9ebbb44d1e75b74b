// A communicator over MPI for the host backend (mixprec/dist/communicator.hpp).
//
//   MPI_Init(&argc, &argv);
//   mixprec::dist::mpi_communicator comm(MPI_COMM_WORLD);
//
// It works on a duplicate of the user's communicator whose errors return
// instead of aborting, and runs every collective non-blocking, polling it
// against a deadline: if another rank fails or stops calling the step, the
// collective raises mixprec::error on this rank within `timeout` (MPI is
// unusable afterwards: report and MPI_Abort).
//
// Gradients in half or bfloat16 are reduced in fp32: this rank's part is
// widened, the sums and the mean are taken in fp32 and rounded once. That
// moves twice the bytes of the 16-bit values but never rounds a partial
// sum, and a sum that would overflow the 16-bit format cannot
// (docs/performance.md measures it against 16-bit transfer with an fp32
// accumulating reduction, `wire_format::native`).
//
// Link mixprec::mpi (find_package(MPI)); not for the CUDA backend (use
// nccl_communicator there).
#pragma once

#include <mpi.h>

#include <chrono>
#include <climits>
#include <cstring>
#include <cstdint>
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
#include <mixprec/format/bits.hpp>
#include <mixprec/format/format_traits.hpp>

namespace mixprec::dist {

// How 16-bit gradients travel in reduce_scatter_mean.
enum class wire_format {
  fp32,    // widened to fp32, summed in fp32, rounded once (the default)
  native,  // in their own format; each pairwise sum is taken in fp32 and rounded
};

struct mpi_options {
  std::chrono::duration<double> timeout = std::chrono::minutes(5);
  wire_format gradients = wire_format::fp32;
};

class mpi_communicator {
  static_assert(current_backend != backend::cuda,
                "mixprec::dist::mpi_communicator works on host memory: on the CUDA backend use nccl_communicator");

 public:
  explicit mpi_communicator(MPI_Comm comm, mpi_options options = {}) : options_(options) {
    int initialized = 0;
    MPI_Initialized(&initialized);
    detail_require(initialized != 0, "mpi_communicator: MPI is not initialized (call MPI_Init first)");
    check(MPI_Comm_dup(comm, &comm_), "MPI_Comm_dup");
    MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN);
    MPI_Comm_rank(comm_, &rank_);
    MPI_Comm_size(comm_, &size_);
    check(MPI_Op_create(&add_as_float<half>, 1, &add_half_), "MPI_Op_create");
    check(MPI_Op_create(&add_as_float<bfloat16>, 1, &add_bfloat16_), "MPI_Op_create");
  }
  mpi_communicator(const mpi_communicator&) = delete;
  mpi_communicator& operator=(const mpi_communicator&) = delete;
  ~mpi_communicator() {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (finalized) return;
    MPI_Op_free(&add_half_);
    MPI_Op_free(&add_bfloat16_);
    MPI_Comm_free(&comm_);
  }

  int rank() const { return rank_; }
  int size() const { return size_; }
  const mpi_options& options() const { return options_; }

  template <class T>
  void reduce_scatter_mean(const T* data, T* mine, const std::size_t* counts, stream = {}) {
    static_assert(std::is_same_v<T, float> || std::is_same_v<T, half> || std::is_same_v<T, bfloat16>,
                  "reduce_scatter_mean: float, half or bfloat16");
    std::size_t total = 0;
    std::vector<int> n(static_cast<std::size_t>(size_));
    for (int r = 0; r < size_; ++r) {
      total += counts[r];
      n[static_cast<std::size_t>(r)] = as_int(counts[r], "reduce_scatter_mean");
    }
    const std::size_t own = counts[rank_];
    const float ranks = static_cast<float>(size_);
    if constexpr (!std::is_same_v<T, float>) {
      if (options_.gradients == wire_format::native) {
        narrow_.resize(own);
        request req;
        check(MPI_Ireduce_scatter(data, narrow_.data(), n.data(), MPI_UINT16_T,
                                  std::is_same_v<T, half> ? add_half_ : add_bfloat16_, comm_, &req.r),
              "MPI_Ireduce_scatter");
        wait(req, "the gradient reduce-scatter");
        const std::uint16_t* sums = narrow_.data();
        #pragma omp parallel for schedule(static)
        for (std::size_t i = 0; i < own; ++i)
          mine[i] = convert<T>(to_float(mixprec::from_bits<T>(sums[i])) / ranks);
        return;
      }
      wide_.resize(total);
      convert_n<float>(data, total, wide_.data());
    }
    const float* send = nullptr;
    if constexpr (std::is_same_v<T, float>) send = data;
    else send = wide_.data();
    sums_.resize(own);
    request req;
    check(MPI_Ireduce_scatter(send, sums_.data(), n.data(), MPI_FLOAT, MPI_SUM, comm_, &req.r), "MPI_Ireduce_scatter");
    wait(req, "the gradient reduce-scatter");
    const float* sums = sums_.data();
    #pragma omp parallel for schedule(static)
    for (std::size_t i = 0; i < own; ++i) mine[i] = convert<T>(sums[i] / ranks);
  }

  void all_gather(void* data, const std::size_t* bytes, stream = {}) {
    if (size_ == 1) return;
    std::vector<int> n(static_cast<std::size_t>(size_)), at(static_cast<std::size_t>(size_));
    std::size_t offset = 0;
    for (int r = 0; r < size_; ++r) {
      n[static_cast<std::size_t>(r)] = as_int(bytes[r], "all_gather");
      at[static_cast<std::size_t>(r)] = as_int(offset, "all_gather");
      offset += bytes[r];
    }
    request req;
    check(MPI_Iallgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, data, n.data(), at.data(), MPI_BYTE, comm_, &req.r),
          "MPI_Iallgatherv");
    wait(req, "the all-gather");
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
  struct request {
    MPI_Request r = MPI_REQUEST_NULL;
  };
  static void detail_require(bool ok, const char* what) {
    if (!ok) throw error(what);
  }
  template <class T>
  static void add_as_float(void* in, void* inout, int* len, MPI_Datatype*) {
    auto* a = static_cast<const T*>(in);
    auto* b = static_cast<T*>(inout);
    for (int i = 0; i < *len; ++i) b[i] = convert<T>(to_float(a[i]) + to_float(b[i]));
  }
  void gather_fixed(const void* mine, void* all, std::size_t bytes, const char* what) {
    const int n = as_int(bytes, "all_gather_fixed");
    request req;
    check(MPI_Iallgather(mine, n, MPI_BYTE, all, n, MPI_BYTE, comm_, &req.r), "MPI_Iallgather");
    wait(req, what);
  }
  int as_int(std::size_t n, const char* what) const {
    if (n > static_cast<std::size_t>(INT_MAX))
      throw error(mixprec::detail::concat("mpi_communicator::", what, ": ", n, " elements in one part exceed MPI's int "
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
  // Polls until the collective completes, fails, or the deadline passes.
  void wait(request& req, const char* what) const {
    using clock = std::chrono::steady_clock;
    const auto deadline = clock::now() + std::chrono::duration_cast<clock::duration>(options_.timeout);
    // Spin while the collective is young (each MPI_Test drives its progress), then poll gently.
    const auto spin_until = clock::now() + std::chrono::milliseconds(50);
    for (unsigned polls = 1;; ++polls) {
      int done = 0;
      check(MPI_Test(&req.r, &done, MPI_STATUS_IGNORE), what);
      if (done) return;
      if (polls % 256 != 0) continue;
      const auto now = clock::now();
      if (now > deadline)
        throw error(mixprec::detail::concat("mpi_communicator: ", what, " did not complete within ",
                                            options_.timeout.count(), " s on rank ", rank_, " of ", size_,
                                            ": another rank has failed or stopped calling the step"));
      if (now > spin_until) std::this_thread::sleep_for(std::chrono::microseconds(20));
    }
  }

  mpi_options options_;
  MPI_Comm comm_ = MPI_COMM_NULL;
  MPI_Op add_half_ = MPI_OP_NULL, add_bfloat16_ = MPI_OP_NULL;
  int rank_ = 0, size_ = 1;
  std::vector<float> wide_, sums_;
  std::vector<std::uint16_t> narrow_;
};

static_assert(is_communicator_v<mpi_communicator>);

}  // namespace mixprec::dist
