// The element rules' square root (detail/square_root.hpp) against the C
// library's sqrtf over all 2^32 float bit patterns: the same bits, NaN
// payloads, signed zeros and the invalid operation's NaN included. On CUDA
// the comparison runs on the GPU against its sqrtf, whose NaNs are
// canonical: there a NaN must only meet a NaN. Label: exhaustive.
//
// On the host this file compiles with -fno-math-errno (tests/CMakeLists.txt)
// and the comparison sits in the library's pinned region: the reference
// sqrtf is then the CPU's square root instruction (IEEE, the same bits as
// the C library's) and the loop vectorises (seconds instead of minutes).
#include <cmath>
#include <cstdint>

#include <doctest/doctest.h>

#include <thrust/device_vector.h>

#include <mixprec/detail/reduce.hpp>
#include <mixprec/detail/square_root.hpp>

using namespace mixprec;

MIXPREC_PINNED_BEGIN

namespace {

struct root_mismatches {
  using value_type = unsigned long long;
  MIXPREC_HOST_DEVICE value_type identity() const { return 0; }
  MIXPREC_HOST_DEVICE void accumulate(value_type& acc, std::size_t i) const {
    const float x = detail::bit_cast<float>(static_cast<std::uint32_t>(i));
    const float mine = detail::square_root_by_newton(x);
    const float libm = sqrtf(x);
    bool same = detail::bit_cast<std::uint32_t>(mine) == detail::bit_cast<std::uint32_t>(libm);
#if defined(MIXPREC_BACKEND_CUDA)
    same = same || (mine != mine && libm != libm);
#endif
    acc += same ? 0 : 1;
  }
  MIXPREC_HOST_DEVICE value_type combine(const value_type& a, const value_type& b) const { return a + b; }
};

unsigned long long count_root_mismatches() {
  detail::workspace ws;
  thrust::device_vector<unsigned long long> out(1);
  detail::transform_reduce(stream{}, ws, std::size_t{1} << 32, root_mismatches{}, thrust::raw_pointer_cast(out.data()));
  return out[0];
}

}  // namespace

MIXPREC_PINNED_END

TEST_SUITE("detail") {
  TEST_CASE("the errno-free square root gives sqrtf's bits on special values") {
    const float inf = INFINITY;
    for (float x : {0.0f, -0.0f, 1.0f, 2.0f, 4.0f, 0.25f, inf, -inf, -1.0f, -1e-45f, 1e-45f, 3.4028235e38f,
                    1.1754942e-38f, 1.1754944e-38f, NAN, -NAN}) {
      const float mine = detail::square_root_by_newton(x), libm = std::sqrt(x);
      CHECK_MESSAGE(detail::bit_cast<std::uint32_t>(mine) == detail::bit_cast<std::uint32_t>(libm), "x = ", x, ": ",
                    mine, " against sqrtf's ", libm);
    }
    // A signalling NaN comes back quiet, with its sign and payload.
    const float snan = detail::bit_cast<float>(0xff800001u);
    CHECK(detail::bit_cast<std::uint32_t>(detail::square_root_by_newton(snan)) ==
          detail::bit_cast<std::uint32_t>(std::sqrt(snan)));
    // square_root is the Newton form here, or sqrtf itself (device code, -fno-math-errno).
    CHECK(detail::square_root(2.0f) == std::sqrt(2.0f));
  }

}  // TEST_SUITE

TEST_SUITE("exhaustive") {
  TEST_CASE("the errno-free square root gives sqrtf's bits for all 2^32 floats") {
    CHECK(count_root_mismatches() == 0);
  }

}  // TEST_SUITE
