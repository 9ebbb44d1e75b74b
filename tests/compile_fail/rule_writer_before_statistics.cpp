// Must not compile: a weight writer that claims to run before the statistics.
#include <mixprec/mixprec.hpp>

struct early_writer {
  static constexpr const char* name = "early_writer";
  struct traits : mixprec::writer_traits {
    static constexpr bool before_statistics = true;
  };
  static constexpr bool works_with_master = true;
  static constexpr bool needs_narrow_model = false;
};

int main() {
  const auto step = mixprec::chain(mixprec::sgd(mixprec::sgd_options{}), early_writer{});
  (void)step;
}
