// Must not compile: a component with an owning member (it is copied into every pass).
#include <vector>

#include <mixprec/mixprec.hpp>

struct owns_memory {
  static constexpr const char* name = "owns_memory";
  std::vector<float> table;
  template <class Ctx>
  MIXPREC_HOST_DEVICE float update(float u, const Ctx&) const {
    return 2.0f * u;
  }
};

int main() {
  const auto step = mixprec::chain(owns_memory{}, mixprec::sgd(mixprec::sgd_options{}));
  (void)step;
}
