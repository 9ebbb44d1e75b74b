// The MPI communicator's timeout, on real ranks: NaN, zero and negative
// timeouts are refused when the communicator is made; infinity waits
// forever and a huge finite timeout is a long one, so an exchange that
// waits for a late rank completes (the conversion of such values to clock
// ticks used to overflow and fail at once). That a short timeout still
// fails the ranks that wait is tested end to end by rank_exit.sh.
#include <mpi.h>

#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <thread>
#include <vector>

#include <doctest/doctest.h>

#include <mixprec/dist/mpi_communicator.hpp>

#include "../support/errors.hpp"

using namespace mixprec;

namespace {

dist::mpi_options with_timeout(double seconds) {
  dist::mpi_options o;
  o.timeout = std::chrono::duration<double>(seconds);
  return o;
}

}  // namespace

TEST_SUITE("dist") {
  TEST_CASE("mpi_options::timeout: NaN and zero and negative timeouts are refused when the communicator is made") {
    for (double bad : {std::nan(""), 0.0, -1.0, -std::numeric_limits<double>::infinity()}) {
      CAPTURE(bad);
      const std::string msg =
          test::error_message([&] { dist::mpi_communicator comm(MPI_COMM_WORLD, with_timeout(bad)); });
      CHECK(test::contains(msg,
                           "mpi_communicator: mpi_options::timeout: the timeout must be a positive number of "
                           "seconds, or mixprec::dist::no_timeout (infinity) to wait forever"));
    }
  }

  TEST_CASE("mpi_options::timeout: infinity waits forever and huge or tiny positive timeouts are valid") {
    int rank = 0, size = 1;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    CHECK(dist::no_timeout.count() == std::numeric_limits<double>::infinity());
    for (double seconds : {dist::no_timeout.count(), 1e300, 1e18, 60.0}) {
      CAPTURE(seconds);
      dist::mpi_communicator comm(MPI_COMM_WORLD, with_timeout(seconds));
      // Rank 0 comes late: the others poll the exchange past their first
      // deadline check (every 256 polls) while they wait for it.
      MPI_Barrier(MPI_COMM_WORLD);
      if (rank == 0) std::this_thread::sleep_for(std::chrono::milliseconds(200));
      const std::uint32_t mine = 1000u + static_cast<std::uint32_t>(rank);
      std::vector<std::uint8_t> all;
      const std::string msg = test::error_message([&] { all = comm.all_gather_host(&mine, sizeof mine); });
      CHECK(msg == "<no exception>");
      REQUIRE(all.size() == sizeof mine * static_cast<std::size_t>(size));
      for (int r = 0; r < size; ++r) {
        std::uint32_t got = 0;
        std::memcpy(&got, all.data() + sizeof got * static_cast<std::size_t>(r), sizeof got);
        CHECK(got == 1000u + static_cast<std::uint32_t>(r));
      }
    }
  }

}  // TEST_SUITE
