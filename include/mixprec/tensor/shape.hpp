// The shape of a tensor: up to max_rank extents, row-major.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <limits>
#include <string>

#include <mixprec/core/error.hpp>

namespace mixprec {

class shape {
 public:
  static constexpr std::size_t max_rank = 8;

  shape() = default;  // rank 0: a scalar, one element
  shape(std::initializer_list<std::size_t> extents) {
    require_rank(extents.size());
    for (std::size_t e : extents) extents_[rank_++] = e;
  }
  template <class It>
  shape(It first, It last) {
    for (; first != last; ++first) {
      require_rank(rank_ + 1);
      extents_[rank_++] = static_cast<std::size_t>(*first);
    }
  }

  std::size_t rank() const { return rank_; }
  std::size_t operator[](std::size_t axis) const {
    // (The message's string is made only on failure: initialisers index shapes per element.)
    if (axis >= rank_) detail::require(false, "axis ", axis, " out of range for shape ", to_string());
    return extents_[axis];
  }
  const std::size_t* begin() const { return extents_.data(); }
  const std::size_t* end() const { return extents_.data() + rank_; }

  // Number of elements; throws when the product overflows std::size_t.
  std::size_t size() const {
    std::size_t n = 1;
    for (std::size_t a = 0; a < rank_; ++a) {
      const std::size_t e = extents_[a];
      if (e != 0 && n > std::numeric_limits<std::size_t>::max() / e)
        detail::require(false, "shape ", to_string(), " has more elements than fit in size_t");
      n *= e;
    }
    return n;
  }

  std::string to_string() const {
    std::string s = "[";
    for (std::size_t a = 0; a < rank_; ++a) s += (a ? ", " : "") + std::to_string(extents_[a]);
    return s + "]";
  }

  friend bool operator==(const shape& a, const shape& b) {
    if (a.rank_ != b.rank_) return false;
    for (std::size_t k = 0; k < a.rank_; ++k)
      if (a.extents_[k] != b.extents_[k]) return false;
    return true;
  }
  friend bool operator!=(const shape& a, const shape& b) { return !(a == b); }

 private:
  static void require_rank(std::size_t r) {
    detail::require(r <= max_rank, "a shape has at most ", max_rank, " extents (got ", r, ")");
  }
  std::array<std::size_t, max_rank> extents_{};
  std::size_t rank_ = 0;
};

}  // namespace mixprec
