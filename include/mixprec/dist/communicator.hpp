// The communicator concept: what a distributed step needs from the engine
// that moves bytes between ranks (mixprec/dist/mpi_communicator.hpp over
// MPI on the host backend, mixprec/dist/nccl_communicator.hpp over NCCL on
// CUDA). mixprec has no transport of its own.
//
// A communicator C, on the memory of the build's backend and in the order
// of the given stream:
//
//   int rank() const, int size() const
//   void reduce_scatter_mean(T* data, const std::size_t* offsets, const std::size_t* counts, stream)
//       rank r's part of `data` is counts[r] elements of T (float, half or
//       bfloat16) at offsets[r]; every rank passes the same offsets and
//       counts. In place: this rank's part becomes the mean over the ranks
//       of that part (the rest of `data` is left as it was).
//   void all_gather(void* data, const std::size_t* offsets, const std::size_t* bytes, stream)
//       in place: rank r's bytes[r] bytes at offsets[r] (in bytes) go to
//       every rank.
//   void all_gather_fixed(const void* mine, void* all, std::size_t bytes, stream)
//       `all` receives size() * bytes: rank r's `mine` at r * bytes.
//   std::vector<std::uint8_t> all_gather_host(const void* mine, std::size_t bytes)
//       the same for host memory, blocking (agreement at init and save).
//   void synchronize(stream)
//       waits for the communicator's work queued on the stream.
//
// Each rank's result is computed once and copied to the others (never
// reduced separately on each rank), so every rank holds the same bits, and
// the reduction order is fixed by the counts, so a run repeats bit for bit.
// A collective that does not complete within the communicator's timeout
// (a rank failed or stopped calling the step) raises mixprec::error.
#pragma once

#include <cstddef>
#include <cstdint>
#include <type_traits>
#include <utility>
#include <vector>

#include <mixprec/core/stream.hpp>

namespace mixprec::dist {

namespace detail {
template <class C, class = void>
struct is_communicator : std::false_type {};
template <class C>
struct is_communicator<
    C, std::void_t<decltype(std::declval<const C&>().rank()), decltype(std::declval<const C&>().size()),
                   decltype(std::declval<C&>().reduce_scatter_mean(std::declval<float*>(),
                                                                   std::declval<const std::size_t*>(),
                                                                   std::declval<const std::size_t*>(), stream{})),
                   decltype(std::declval<C&>().all_gather(std::declval<void*>(), std::declval<const std::size_t*>(),
                                                          std::declval<const std::size_t*>(), stream{})),
                   decltype(std::declval<C&>().all_gather_fixed(std::declval<const void*>(), std::declval<void*>(),
                                                                std::size_t{}, stream{})),
                   decltype(std::declval<C&>().all_gather_host(std::declval<const void*>(), std::size_t{})),
                   decltype(std::declval<C&>().synchronize(stream{}))>> : std::true_type {};
}  // namespace detail

template <class C>
inline constexpr bool is_communicator_v = detail::is_communicator<C>::value;

}  // namespace mixprec::dist
