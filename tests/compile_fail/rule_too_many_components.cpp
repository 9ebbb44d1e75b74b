// Must not compile: a chain of 65 components.
#include <utility>

#include <mixprec/mixprec.hpp>

template <std::size_t... K>
auto many(std::index_sequence<K...>) {
  return mixprec::chain((static_cast<void>(K), mixprec::scale_by_constant{1.0f})...);
}

int main() {
  const auto step = many(std::make_index_sequence<65>{});
  (void)step;
}
