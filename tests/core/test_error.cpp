// mixprec::require and detail::concat (core/error.hpp): a failed check's
// message reads as a std::ostream writes its parts, whatever their types.
#include <mixprec/core/error.hpp>

#include <cmath>
#include <cstdint>
#include <limits>
#include <ostream>
#include <sstream>
#include <string>
#include <string_view>

#include <doctest/doctest.h>

namespace {

struct named_thing {
  int id;
};
std::ostream& operator<<(std::ostream& os, const named_thing& t) { return os << "thing#" << t.id; }

// The reference: the parts written to a std::ostringstream (as the checks
// formatted them before message_part).
template <class... P>
std::string streamed(const P&... p) {
  std::ostringstream os;
  (os << ... << p);
  return os.str();
}

template <class... P>
std::string message_of(const P&... p) {
  try {
    mixprec::require(false, p...);
  } catch (const mixprec::error& e) {
    return e.what();
  }
  return "(no exception)";
}

}  // namespace

TEST_SUITE("core") {
  TEST_CASE("concat writes each part as a std::ostream does") {
    const std::string s = "a std::string";
    const char* text = "a C string";
    const std::string_view view = "a view";
    CHECK(mixprec::detail::concat() == "");
    CHECK(mixprec::detail::concat("literal ", text, " ", s, " ", view) ==
          streamed("literal ", text, " ", s, " ", view));
    CHECK(mixprec::detail::concat('c', ' ', true, ' ', false) == streamed('c', ' ', true, ' ', false));
    const int i = -42;
    const long long ll = std::numeric_limits<long long>::min();
    const unsigned u = 4000000000u;
    const std::uint64_t u64 = std::numeric_limits<std::uint64_t>::max();
    const std::size_t z = 0;
    const short sh = -7;
    CHECK(mixprec::detail::concat(i, ",", ll, ",", u, ",", u64, ",", z, ",", sh) ==
          streamed(i, ",", ll, ",", u, ",", u64, ",", z, ",", sh));
    const float floats[] = {0.0f,
                            -0.0f,
                            1.5f,
                            0.1f,
                            1e-8f,
                            3.4028235e38f,
                            1.4e-45f,
                            123456789.0f,
                            -2.5e-3f,
                            std::numeric_limits<float>::infinity(),
                            -std::numeric_limits<float>::infinity(),
                            std::numeric_limits<float>::quiet_NaN()};
    for (const float f : floats) CHECK(mixprec::detail::concat("x = ", f, ";") == streamed("x = ", f, ";"));
    const double doubles[] = {0.999, 1.0 / 3.0, 1e300, 5e-324, 65504.0, -1234567.0, 1e6, 999999.5};
    for (const double d : doubles) CHECK(mixprec::detail::concat(d) == streamed(d));
    CHECK(mixprec::detail::concat("id ", named_thing{7}) == "id thing#7");
  }

  TEST_CASE("require throws mixprec::error with the message only when the check fails") {
    CHECK_NOTHROW(mixprec::require(true, "never shown ", 1, 2.5f));
    CHECK(message_of("b1 must lie in [0, 1) (got ", 1.5f, ")") == "mixprec: b1 must lie in [0, 1) (got 1.5)");
    CHECK(message_of("rank ", 3u, " of ", std::size_t{8}, ": ", std::string("gone")) == "mixprec: rank 3 of 8: gone");
    CHECK(message_of() == "mixprec: ");
    const char* null_text = nullptr;
    CHECK(message_of("name ", null_text) == "mixprec: name (null)");
  }
}
