// A consumer's translation unit: mixprec's headers, then the consumer's own
// arithmetic. It is compiled with nothing but what mixprec::mixprec adds to
// a consumer's flags, and read back as machine code:
//   - host (g++/clang++, to assembly): consumer_multiply_add must become a
//     fused multiply-add, the library's rules called beside it must not
//     (check_pinned_probe.cmake);
//   - CUDA (nvcc, sm_90): consumer_multiply_add_kernel must use FFMA, and
//     the library's kernels (a loss-scaled, clipped AdamW step written with
//     stochastic rounding, and Lion with a cosine schedule) must do the same
//     arithmetic whether compiled with -fmad=true or -fmad=false
//     (scripts/sass-check.py --pinned: multiply, add and FMA counts per
//     kernel; double-precision counts outside the update passes, where
//     CUDA's own cos and pow follow -fmad, are only reported).
#include <mixprec/mixprec.hpp>

extern "C" float consumer_multiply_add(float a, float b, float c) { return a * b + c; }

// Two of the library's element rules, each a product feeding a sum.
extern "C" float library_lerp(float start, float end, float weight) {
  return mixprec::detail::torch_lerp(start, end, weight);
}
extern "C" float library_axpby(float x, float y) { return mixprec::ops::axpby<float>{0.5f, 0.25f}(x, y); }

#if defined(__CUDACC__)
__global__ void consumer_multiply_add_kernel(float* y, const float* a, const float* b, const float* c) {
  const unsigned i = blockIdx.x * blockDim.x + threadIdx.x;
  y[i] = a[i] * b[i] + c[i];
}

void library_steps(mixprec::parameters<mixprec::bfloat16, mixprec::bfloat16>& params) {
  using namespace mixprec;
  const auto adamw_step =
      chain(dynamic_loss_scale{}, clip_by_global_norm{1.0f}, adamw(adamw_options{}), round_model_stochastic{1});
  auto s = adamw_step.init(params);
  adamw_step.apply(params, s);
  scale_by_learning_rate<cosine_decay> lr;
  lr.lr = cosine_decay{1e-4f, 1000, 0.1f};
  const auto lion_step = chain(scale_by_lion<bfloat16>{}, add_decayed_weights{0.1f}, lr);
  auto t = lion_step.init(params);
  lion_step.apply(params, t);
}
#endif
