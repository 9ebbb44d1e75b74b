// Smallest use of the installed package: include the umbrella header and
// convert a value on the selected backend; with mixprec::safetensors
// (CONSUMER_SAFETENSORS), also write and read back a weight file. Then ten
// steps of loss-scaled, clipped AdamW on bf16 weights written with
// stochastic rounding, and of SGD with Nesterov momentum and a warm-up
// schedule, printing a hash of the checkpoint each leaves (weights, model
// copies, moments, scalars): the same lines from every build of this file,
// however it was compiled (CMake target or vendored headers,
// -ffp-contract=fast or off, g++ or clang++; .ci/run compares them).
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include <mixprec/mixprec.hpp>
#if defined(CONSUMER_SAFETENSORS)
#include <mixprec/io/safetensors.hpp>
#endif

namespace {

// FNV-1a over a file's bytes.
std::uint64_t file_hash(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  const std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::uint64_t h = 1469598103934665603ull;
  for (char c : bytes) h = (h ^ static_cast<unsigned char>(c)) * 1099511628211ull;
  return h;
}

// The consumer's own gradients: a fixed, non-trivial pattern (its own
// arithmetic, compiled with the consumer's flags whatever they are).
std::vector<float> gradients(std::size_t n, int step, float scale) {
  std::vector<float> g(n);
  for (std::size_t i = 0; i < n; ++i) {
    const float x = static_cast<float>((i * 2654435761u + static_cast<unsigned>(step) * 40503u) % 2001u) - 1000.0f;
    g[i] = x * 1e-3f * scale;
  }
  return g;
}

// A component of the consumer's own, in an anonymous namespace as users
// write them (nvcc builds this file with --Werror=all-warnings): each
// parameter's update scaled down to an RMS of at most `cap`.
struct cap_update_rms {
  static constexpr const char* name = "cap_update_rms";
  static constexpr mixprec::state_field state[] = {{"factor", mixprec::format_id::f32, mixprec::extent::parameter}};
  static constexpr mixprec::field_id<mixprec::field_index(state, "factor")> factor{};
  static constexpr mixprec::statistic statistics[] = {
      {"update_sq", mixprec::scope::parameter, mixprec::reduction::power_sum, mixprec::source::input}};
  static constexpr mixprec::stat_id<mixprec::statistic_index(statistics, "update_sq")> update_sq{};

  float cap = 0.5f;

  struct scalars {
    float cap;
  };
  scalars initial_scalars() const {
    mixprec::require(cap > 0.0f, "cap_update_rms: cap must be > 0");
    return {cap};
  }
  template <class Ctx>
  MIXPREC_HOST_DEVICE void decide(scalars& s, const Ctx&) const {
    s.cap = cap;
  }
  template <class E>
  MIXPREC_HOST_DEVICE void decide_parameter(const E& e) const {
    const double rms = sqrt(e.statistic(update_sq) / static_cast<double>(e.geometry().size));
    const double limit = e.scalars().cap;
    e.state(factor).set(rms > limit ? static_cast<float>(limit / rms) : 1.0f);
  }
  template <class Ctx>
  MIXPREC_HOST_DEVICE float update(float u, const Ctx& ctx) const {
    return u * ctx.state(factor).get();
  }
  template <class V>
  void visit_hyperparameters(V&& v) const {
    v("cap", cap);
  }
  template <class V>
  static void visit_scalars(scalars& s, V&& v) {
    v("cap", s.cap);
  }
};

template <class Step>
void train(const Step& step, const char* name) {
  mixprec::parameters<mixprec::bfloat16, mixprec::bfloat16> p;
  p.add("w", {37, 29});
  p.add("b", {29});
  p.finalize();
  p.initialize_all(mixprec::init::kaiming_uniform{}, 7);
  auto s = step.init(p);
  for (int t = 0; t < 10; ++t) {
    p.from_host(mixprec::role::grad, "w", gradients(37 * 29, t, s.loss_scale()));
    p.from_host(mixprec::role::grad, "b", gradients(29, t + 100, s.loss_scale()));
    step.apply(p, s);
  }
  const std::string path = std::string("consumer_") + name + ".ckpt";
  mixprec::save_checkpoint(path, step, p, s);
  std::printf("%s bits: %016llx\n", name, static_cast<unsigned long long>(file_hash(path)));
}

}  // namespace

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
  using namespace mixprec;
  adamw_options o;
  o.weight_decay = 0.1f;
  dynamic_loss_scale scaler;
  scaler.init_scale = 1024.0f;
  train(chain(scaler, clip_by_global_norm{1.0f}, adamw(o), round_model_stochastic{3}), "adamw");
  scale_by_learning_rate<warmup<cosine_decay>> lr;
  lr.lr = warmup<cosine_decay>{3, 0.0f, cosine_decay{0.05f, 20, 0.1f}};
  trace<float> momentum;
  momentum.momentum = 0.9f;
  momentum.nesterov = true;
  train(chain(cap_update_rms{}, add_decayed_weights{1e-4f}, momentum, lr), "sgd");
  return ok ? 0 : 1;
}
