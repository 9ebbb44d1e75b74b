// How long a communicator waits for the other ranks (mpi_options::timeout,
// nccl_options::timeout) before it raises mixprec::error.
//
//   mixprec::dist::mpi_options o;
//   o.timeout = std::chrono::seconds(30);      // fail 30 s after a rank stops
//   o.timeout = mixprec::dist::no_timeout;     // wait forever
//
// A timeout is a positive number of seconds; infinity (no_timeout) waits
// forever. NaN, zero and negative timeouts are refused when the
// communicator is made. The time waited is compared with the timeout in
// double seconds, never converted to the clock's integer ticks, so no
// value (1e300 s, say) can overflow.
#pragma once

#include <chrono>
#include <limits>

#include <mixprec/core/error.hpp>

namespace mixprec::dist {

// Wait for the other ranks forever.
inline constexpr std::chrono::duration<double> no_timeout{std::numeric_limits<double>::infinity()};

namespace detail {

// Throws mixprec::error unless `timeout` is positive seconds or no_timeout.
inline void check_timeout(std::chrono::duration<double> timeout, const char* who) {
  const double t = timeout.count();
  mixprec::detail::require(t > 0.0, who,
                           ": the timeout must be a positive number of seconds, or "
                           "mixprec::dist::no_timeout (infinity) to wait forever (got ",
                           t, " s)");
}

// The time a wait started and how long it may last.
class deadline {
 public:
  using clock = std::chrono::steady_clock;
  explicit deadline(std::chrono::duration<double> timeout) : start_(clock::now()), timeout_(timeout.count()) {}
  // Whether more than the timeout has elapsed (never, for no_timeout).
  bool passed() const { return std::chrono::duration<double>(clock::now() - start_).count() > timeout_; }

 private:
  clock::time_point start_;
  double timeout_;
};

}  // namespace detail
}  // namespace mixprec::dist
