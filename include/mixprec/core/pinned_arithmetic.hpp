// Pinned arithmetic: the library's own element rules and engine formulas
// round every multiply and every add separately (as PyTorch's portable
// kernels do), whatever contraction the consumer's compiler flags allow, so
// the host and the GPU give the same bits. Code of the consumer's own in
// the same translation unit keeps the consumer's flags (fused multiply-adds
// included).
//
// Host: each header of the library encloses its code (after its #includes)
// in MIXPREC_PINNED_BEGIN / MIXPREC_PINNED_END.
//   - GCC: push_options / optimize("fp-contract=off") / pop_options. Every
//     function defined inside compiles without contraction, together with
//     what it inlines. GCC does not inline such a function into one compiled
//     outside the region (an optimization-option mismatch), so the library
//     runs its element loops itself (detail::for_each_index) rather than
//     handing its functors to Thrust one element at a time.
//   - Clang: float_control(push) / fp contract(off) / float_control(pop). The
//     operations written inside are never fused, wherever they are inlined.
//     Clang's -ffp-contract=fast disregards the pragma (clang's documented
//     behaviour): use its default (on), off, or fast-honor-pragmas.
// Device (nvcc): no pragma reaches device code, so a product that feeds a
// sum is written detail::mul(a, b): __fmul_rn / __dmul_rn, which nvcc never
// fuses, whatever -fmad says. Other products need nothing.
#pragma once

#include <mixprec/core/config.hpp>

#if defined(__CUDA_ARCH__)
// Device code: detail::mul below.
#define MIXPREC_PINNED_BEGIN
#define MIXPREC_PINNED_END
#elif defined(__clang__)
#define MIXPREC_PINNED_BEGIN _Pragma("float_control(push)") _Pragma("clang fp contract(off)")
#define MIXPREC_PINNED_END _Pragma("float_control(pop)")
#elif defined(__GNUC__) && defined(__NVCC__)
// nvcc's front end passes the pragma on to the host compiler but warns that
// it does not know it (1675: unrecognized GCC pragma).
#define MIXPREC_PINNED_BEGIN                                                                 \
  _Pragma("nv_diagnostic push") _Pragma("nv_diag_suppress 1675") _Pragma("GCC push_options") \
      _Pragma("GCC optimize(\"fp-contract=off\")") _Pragma("nv_diagnostic pop")
#define MIXPREC_PINNED_END _Pragma("GCC pop_options")
#elif defined(__GNUC__)
#define MIXPREC_PINNED_BEGIN _Pragma("GCC push_options") _Pragma("GCC optimize(\"fp-contract=off\")")
#define MIXPREC_PINNED_END _Pragma("GCC pop_options")
#else
// Other host compilers (MSVC's default /fp:precise does not contract).
#define MIXPREC_PINNED_BEGIN
#define MIXPREC_PINNED_END
#endif

namespace mixprec::detail {

// a * b, never fused with the sum it feeds.
MIXPREC_HOST_DEVICE float mul(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fmul_rn(a, b);
#else
  return a * b;
#endif
}
MIXPREC_HOST_DEVICE double mul(double a, double b) {
#if defined(__CUDA_ARCH__)
  return __dmul_rn(a, b);
#else
  return a * b;
#endif
}

}  // namespace mixprec::detail

namespace mixprec {

// For component authors: a * b, never fused with the sum it feeds, on the
// host and the GPU (a rule's a * b + c is otherwise contracted wherever the
// compiler may: nvcc's default -fmad=true, Clang's default on).
MIXPREC_HOST_DEVICE float unfused_mul(float a, float b) { return detail::mul(a, b); }
MIXPREC_HOST_DEVICE double unfused_mul(double a, double b) { return detail::mul(a, b); }

}  // namespace mixprec
