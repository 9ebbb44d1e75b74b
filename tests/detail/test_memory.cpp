// The library's device arrays (detail/memory.hpp): device_buffer holds what
// thrust::device_vector<T>(n) held, value-initialised the same way, with a
// move that leaves the source empty and cannot throw.
#include <cstdint>
#include <type_traits>
#include <utility>
#include <vector>

#include <doctest/doctest.h>

#include <mixprec/component/component.hpp>
#include <mixprec/detail/memory.hpp>

#include "../support/device.hpp"

using namespace mixprec;

namespace {

struct with_defaults {  // value-initialised to non-zero bytes
  float scale = 1.5f;
  std::uint32_t count = 7;
  std::uint8_t flag = 3;
};

}  // namespace

TEST_SUITE("detail") {
  TEST_CASE("device_buffer: value-initialised like thrust::device_vector<T>(n)") {
    const auto zeros = detail::allocate<float>(1000, "a test");
    CHECK(zeros.size() == 1000);
    for (float x : test::to_host(detail::raw(zeros), zeros.size())) CHECK(x == 0.0f);

    // Sizes that are not whole 64-bit words.
    for (std::size_t n : {std::size_t{1}, std::size_t{3}, std::size_t{9}, std::size_t{4097}}) {
      const detail::device_buffer<std::uint8_t> bytes(n);
      CHECK(bytes.size() == n);
      for (std::uint8_t b : test::to_host(detail::raw(bytes), n)) CHECK(b == 0);
    }

    // Default member initialisers: every element gets them, as Thrust's
    // vector gave them (the group multipliers start at 1).
    const detail::device_buffer<with_defaults> d(33);
    for (const with_defaults& v : test::to_host(detail::raw(d), d.size())) {
      CHECK(v.scale == 1.5f);
      CHECK(v.count == 7);
      CHECK(v.flag == 3);
    }
    const auto groups = detail::allocate<group_hyper>(5, "a test");
    for (const group_hyper& g : test::to_host(detail::raw(groups), groups.size())) {
      CHECK(g.lr_scale == 1.0f);
      CHECK(g.weight_decay_scale == 1.0f);
    }

    const detail::device_buffer<double> empty;
    CHECK(empty.empty());
    CHECK(empty.size() == 0);
  }

  TEST_CASE("device_buffer: a deep copy and a move that cannot throw and leaves the source empty") {
    static_assert(std::is_nothrow_move_constructible_v<detail::device_buffer<float>>);
    static_assert(std::is_nothrow_move_assignable_v<detail::device_buffer<float>>);
    static_assert(
        std::is_same_v<decltype(std::declval<detail::device_buffer<float>&>().data()), thrust::device_ptr<float>>);

    std::vector<std::uint32_t> values(100);
    for (std::size_t i = 0; i < values.size(); ++i) values[i] = static_cast<std::uint32_t>(3 * i + 1);
    detail::device_buffer<std::uint32_t> a(values.size());
    detail::write_to_device(values.data(), detail::raw(a), values.size());

    detail::device_buffer<std::uint32_t> copy = a;
    CHECK(detail::raw(copy) != detail::raw(a));
    CHECK(test::to_host(detail::raw(copy), copy.size()) == values);

    const std::uint32_t* storage = detail::raw(a);
    detail::device_buffer<std::uint32_t> moved = std::move(a);
    CHECK(detail::raw(moved) == storage);  // the same memory, not a copy
    CHECK(moved.size() == values.size());
    CHECK(a.empty());  // NOLINT(bugprone-use-after-move): the moved-from state is part of the contract
    CHECK(a.size() == 0);

    detail::device_buffer<std::uint32_t> target(3);
    target = std::move(moved);
    CHECK(detail::raw(target) == storage);
    CHECK(test::to_host(detail::raw(target), target.size()) == values);
    CHECK(moved.empty());  // NOLINT(bugprone-use-after-move)

    // A std::vector of them grows by moving: the arrays keep their memory.
    std::vector<detail::device_buffer<std::uint32_t>> many;
    many.push_back(std::move(target));
    for (int k = 0; k < 20; ++k) many.emplace_back(4);
    CHECK(detail::raw(many[0]) == storage);
    CHECK(test::to_host(detail::raw(many[0]), many[0].size()) == values);
  }
}
