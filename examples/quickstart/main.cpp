// The smallest complete use of mixprec: a two-parameter arena in half
// precision with fp32 master weights, trained by one fused step (dynamic loss
// scaling, global-norm clipping, AdamW) on the loss 0.5 * ||w - target||^2.
#include <mixprec/mixprec.hpp>
#include <thrust/device_vector.h>
#include <thrust/execution_policy.h>
#include <thrust/for_each.h>
#include <thrust/iterator/counting_iterator.h>
#include <thrust/reduce.h>
#include <cstdio>

// grad[i] = loss_scale * (w[i] - target), loss[i] = 0.5 * (w[i] - target)^2.
struct quadratic_loss {
  const mixprec::half* w;
  mixprec::half* grad;
  float* loss;
  const float* scale;  // the chain's loss scale, read on the device
  float target;
  MIXPREC_HOST_DEVICE void operator()(std::size_t i) const {
    const float d = mixprec::to_float(w[i]) - target;
    grad[i] = mixprec::convert<mixprec::half>(*scale * d);
    loss[i] = 0.5f * d * d;
  }
};

int main() {
  mixprec::parameters<mixprec::half, mixprec::half> params;  // fp32 master weights by default
  params.add("weight", {16, 8});
  params.add("bias", {16}, "no_decay");
  params.finalize();
  params.initialize("weight", mixprec::init::kaiming_uniform{}, 42);
  params.initialize("bias", mixprec::init::zeros{}, 42);

  mixprec::adamw_options o;
  o.lr = 0.05f;
  const auto step =
      mixprec::chain(mixprec::dynamic_loss_scale{}, mixprec::clip_by_global_norm{1.0f}, mixprec::adamw(o));
  auto state = step.init(params);
  state.set_group("no_decay", {1.0f, 0.0f});

  const char* names[] = {"weight", "bias"};
  const float targets[] = {0.5f, -0.25f};
  thrust::device_vector<float> loss(16 * 8);
  for (int t = 0; t <= 60; ++t) {
    float total = 0.0f;
    for (int p = 0; p < 2; ++p) {  // the "backward pass": writes loss_scale * dloss/dw
      const auto w = params.model(names[p]);
      const quadratic_loss f{w.data(), params.grad(names[p]).data(), thrust::raw_pointer_cast(loss.data()),
                             state.loss_scale_data(), targets[p]};
      thrust::for_each_n(thrust::device, thrust::counting_iterator<std::size_t>(0), w.size(), f);
      total += thrust::reduce(thrust::device, loss.begin(), loss.begin() + static_cast<long>(w.size()), 0.0f);
    }
    step.apply(params, state);
    if (t % 10 == 0)
      std::printf("step %2d  loss %9.6f  loss scale %6g  skipped %llu\n", t, total, state.loss_scale(),
                  static_cast<unsigned long long>(state.step().skipped_total));
  }
  return 0;
}
