// Smallest use of the installed package: include the umbrella header and
// convert a value on the selected backend; with mixprec::safetensors
// (CONSUMER_SAFETENSORS), also write and read back a weight file.
#include <cstdio>

#include <mixprec/mixprec.hpp>
#if defined(CONSUMER_SAFETENSORS)
#include <mixprec/io/safetensors.hpp>
#endif

int main() {
  const float x = 1.0f / 3.0f;
  const mixprec::bfloat16 b = mixprec::convert<mixprec::bfloat16>(x);
  std::printf("backend %s: 1/3 as bfloat16 = %.8f\n", mixprec::backend_name(mixprec::current_backend),
              mixprec::to_float(b));
  bool ok = mixprec::to_float(b) == 0.333984375f;
#if defined(CONSUMER_SAFETENSORS)
  mixprec::parameters<mixprec::bfloat16, mixprec::bfloat16> p;
  p.add("w", {2});
  p.finalize();
  p.from_host(mixprec::role::master, {x, -x});
  mixprec::save_safetensors("consumer.safetensors", p);
  mixprec::parameters<mixprec::bfloat16, mixprec::bfloat16, void> q;
  q.add("w", {2});
  q.finalize();
  mixprec::load_safetensors("consumer.safetensors", q);
  const auto w = q.to_host(mixprec::role::model);
  std::printf("safetensors round trip: %.8f %.8f\n", w[0], w[1]);
  ok = ok && w[0] == 0.333984375f && w[1] == -0.333984375f;
#endif
  return ok ? 0 : 1;
}
