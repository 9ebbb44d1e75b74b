// A communicator over NCCL for the CUDA backend (mixprec/dist/communicator.hpp).
//
//   ncclComm_t nccl;  // the user's: ncclCommInitRank / ncclCommInitAll
//   mixprec::dist::nccl_communicator comm(nccl);
//
// Collectives are queued on the step's stream and never wait on the host,
// so a step stays free of host round trips. Gradients are reduced in their
// own format (ncclFloat, ncclHalf, ncclBfloat16) with ncclAvg; parts of
// unequal size (a rank's shard) are grouped ncclReduce / ncclBroadcast
// calls, one per rank. synchronize() and all_gather_host() wait with a
// deadline: past `timeout`, or on an asynchronous NCCL error, they abort
// the communicator (ncclCommAbort) and raise mixprec::error. The timeout
// is positive seconds, or no_timeout to wait forever (dist/timeout.hpp);
// NaN, zero and negative timeouts are refused here.
//
// Link mixprec::nccl (the CUDA toolkit's libnccl).
#pragma once

#if !defined(MIXPREC_BACKEND_CUDA)
#error "mixprec/dist/nccl_communicator.hpp needs the CUDA backend (on the host backends use mpi_communicator)"
#endif

#include <nccl.h>

#include <chrono>
#include <cstdint>
#include <thread>
#include <type_traits>
#include <vector>

#include <mixprec/core/error.hpp>
#include <mixprec/core/stream.hpp>
#include <mixprec/detail/memory.hpp>
#include <mixprec/dist/communicator.hpp>
#include <mixprec/dist/timeout.hpp>
#include <mixprec/format/format_traits.hpp>

namespace mixprec::dist {

struct nccl_options {
  // How long synchronize() and all_gather_host() wait for the other ranks (no_timeout: forever).
  std::chrono::duration<double> timeout = std::chrono::minutes(5);
};

class nccl_communicator {
 public:
  explicit nccl_communicator(ncclComm_t comm, nccl_options options = {}) : comm_(comm), options_(options) {
    detail::check_timeout(options_.timeout, "nccl_communicator: nccl_options::timeout");
    check(ncclCommUserRank(comm_, &rank_), "ncclCommUserRank");
    check(ncclCommCount(comm_, &size_), "ncclCommCount");
  }
  nccl_communicator(const nccl_communicator&) = delete;
  nccl_communicator& operator=(const nccl_communicator&) = delete;

  int rank() const { return rank_; }
  int size() const { return size_; }

  template <class T>
  void reduce_scatter_mean(T* data, const std::size_t* offsets, const std::size_t* counts, stream s = {}) {
    static_assert(std::is_same_v<T, float> || std::is_same_v<T, half> || std::is_same_v<T, bfloat16>,
                  "reduce_scatter_mean: float, half or bfloat16");
    if (size_ == 1) return;  // the mean of one
    const ncclDataType_t type = std::is_same_v<T, float>  ? ncclFloat
                                : std::is_same_v<T, half> ? ncclHalf
                                                          : ncclBfloat16;
    check(ncclGroupStart(), "ncclGroupStart");
    for (int r = 0; r < size_; ++r)
      if (counts[r] > 0)  // in place at the root r
        check(ncclReduce(data + offsets[r], data + offsets[r], counts[r], type, ncclAvg, r, comm_, s.handle),
              "ncclReduce");
    check(ncclGroupEnd(), "ncclGroupEnd");
  }

  void all_gather(void* data, const std::size_t* offsets, const std::size_t* bytes, stream s = {}) {
    if (size_ == 1) return;
    auto* base = static_cast<std::uint8_t*>(data);
    check(ncclGroupStart(), "ncclGroupStart");
    for (int r = 0; r < size_; ++r)
      if (bytes[r] > 0)
        check(ncclBroadcast(base + offsets[r], base + offsets[r], bytes[r], ncclUint8, r, comm_, s.handle),
              "ncclBroadcast");
    check(ncclGroupEnd(), "ncclGroupEnd");
  }

  void all_gather_fixed(const void* mine, void* all, std::size_t bytes, stream s = {}) {
    check(ncclAllGather(mine, all, bytes, ncclUint8, comm_, s.handle), "ncclAllGather");
  }

  std::vector<std::uint8_t> all_gather_host(const void* mine, std::size_t bytes) {
    const std::size_t total = bytes * static_cast<std::size_t>(size_);
    if (staging_.size() < bytes + total)
      staging_ = mixprec::detail::allocate<std::uint8_t>(bytes + total, "NCCL staging");
    std::uint8_t* dev = mixprec::detail::raw(staging_);
    mixprec::detail::write_to_device(static_cast<const std::uint8_t*>(mine), dev, bytes);
    all_gather_fixed(dev, dev + bytes, bytes);
    synchronize({});
    std::vector<std::uint8_t> all(total);
    mixprec::detail::copy_to_host(dev + bytes, all.data(), total);
    return all;
  }

  // Waits for the stream, checking NCCL's asynchronous errors, within the timeout.
  void synchronize(stream s) {
    const detail::deadline deadline(options_.timeout);
    for (;;) {
      const cudaError_t q = cudaStreamQuery(s.handle);
      if (q == cudaSuccess) return;
      if (q != cudaErrorNotReady)
        throw error(mixprec::detail::concat("nccl_communicator: the stream failed on rank ", rank_, ": ",
                                            cudaGetErrorString(q)));
      ncclResult_t async = ncclSuccess;
      ncclCommGetAsyncError(comm_, &async);
      if (async != ncclSuccess && async != ncclInProgress) {
        ncclCommAbort(comm_);
        throw error(mixprec::detail::concat("nccl_communicator: asynchronous NCCL error on rank ", rank_, ": ",
                                            ncclGetErrorString(async), " (communicator aborted)"));
      }
      if (deadline.passed()) {
        ncclCommAbort(comm_);
        throw error(mixprec::detail::concat("nccl_communicator: collectives did not complete within ",
                                            options_.timeout.count(), " s on rank ", rank_, " of ", size_,
                                            ": another rank has failed or stopped calling the step (communicator "
                                            "aborted)"));
      }
      std::this_thread::sleep_for(std::chrono::microseconds(20));
    }
  }

  ncclComm_t comm() const { return comm_; }

 private:
  void check(ncclResult_t rc, const char* what) const {
    if (rc == ncclSuccess) return;
    throw error(
        mixprec::detail::concat("nccl_communicator: ", what, " failed on rank ", rank_, ": ", ncclGetErrorString(rc)));
  }

  ncclComm_t comm_;
  nccl_options options_;
  int rank_ = 0, size_ = 1;
  mixprec::detail::device_buffer<std::uint8_t> staging_;
};

static_assert(is_communicator_v<nccl_communicator>);

}  // namespace mixprec::dist
