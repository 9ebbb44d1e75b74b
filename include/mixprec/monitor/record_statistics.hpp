// A monitor component: each step it writes what the step saw into a ring
// buffer in device memory, with no host synchronisation inside the step;
// read the buffer on the host whenever you like.
//
//   mixprec::statistics_log log(1000);   // the last 1000 steps
//   auto step = mixprec::chain(mixprec::dynamic_loss_scale{}, log.recorder(),
//                              mixprec::clip_by_global_norm{1.0f}, mixprec::adamw(o));
//   ...
//   for (const auto& r : log.read()) ... r.loss_scale, r.gradient_norm, r.subnormal_fraction ...
//
// Per step: the completed-step count, the loss scale in effect, whether the
// step was skipped, whether the update reaching the recorder had inf/NaN,
// its global L2 norm (put the recorder after the loss scaler: the unscaled
// gradient), the clip coefficient and learning rate other components report
// (NaN without such a component), two fractions of the gradients as stored
// (scaled, in their own format): those exactly zero, and those subnormal in
// that format (non-zero, below its smallest normal: underflow that a larger
// loss scale would avoid), and optionally (log.recorder<true>()) each
// parameter's gradient norm. The two are kept apart because most zeros are
// not underflow: inputs that are zero (blank pixels, padding) and units
// that did not fire give exact zero gradients at any scale. A gradient that
// underflowed all the way to zero cannot be told from those after the
// fact. Its element rule is the identity and its statistics ride on the
// statistics pass, so it adds no pass.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <vector>

#include <mixprec/component/component.hpp>
#include <mixprec/core/error.hpp>
#include <mixprec/core/pinned_arithmetic.hpp>
#include <mixprec/core/stream.hpp>
#include <mixprec/detail/memory.hpp>

MIXPREC_PINNED_BEGIN

namespace mixprec {

template <bool PerParameter>
struct record_statistics_declarations {
  static constexpr statistic statistics[] = {
      {"norm_sq", scope::global, reduction::power_sum, source::input},
      {"non_finite", scope::global, reduction::non_finite_count, source::input},
      {"zeros", scope::global, reduction::zero_count, source::gradient},
      {"subnormals", scope::global, reduction::subnormal_count, source::gradient}};
};
template <>
struct record_statistics_declarations<true> {
  static constexpr statistic statistics[] = {
      {"norm_sq", scope::global, reduction::power_sum, source::input},
      {"non_finite", scope::global, reduction::non_finite_count, source::input},
      {"zeros", scope::global, reduction::zero_count, source::gradient},
      {"subnormals", scope::global, reduction::subnormal_count, source::gradient},
      {"parameter_sq", scope::parameter, reduction::power_sum, source::input}};
};

// The fields of one record, in ring order.
enum record_field : std::size_t {
  record_step,
  record_loss_scale,
  record_skipped,
  record_non_finite,
  record_gradient_norm,
  record_clip_coefficient,
  record_learning_rate,
  record_zero_fraction,
  record_subnormal_fraction,
  record_parameters  // then one gradient norm per parameter
};

template <bool PerParameter = false>
struct record_statistics : record_statistics_declarations<PerParameter> {
  static constexpr const char* name = "record_statistics";
  struct traits : component_traits {
    static constexpr bool observes = true;  // records after every other rule has decided
  };                                        // (no element rule: the engine treats it as the identity)
  using declarations = record_statistics_declarations<PerParameter>;
  static constexpr stat_id<statistic_index(declarations::statistics, "norm_sq")> norm_sq{};
  static constexpr stat_id<statistic_index(declarations::statistics, "non_finite")> non_finite{};
  static constexpr stat_id<statistic_index(declarations::statistics, "zeros")> zeros{};
  static constexpr stat_id<statistic_index(declarations::statistics, "subnormals")> subnormals{};

  double* ring = nullptr;         // [capacity][width], device
  std::uint64_t* head = nullptr;  // records written so far, device
  std::uint32_t capacity = 0, width = 0;

  no_scalars initial_scalars(const arena_info& arena) const {
    detail::require(ring != nullptr && head != nullptr && capacity > 0,
                    "record_statistics: make it with statistics_log::recorder()");
    detail::require(!PerParameter || width >= record_parameters + arena.names.size(),
                    "record_statistics: the log "
                    "holds ",
                    width - record_parameters, " parameter norms but the arena has ", arena.names.size(),
                    " parameters (statistics_log(capacity, parameters))");
    return {};
  }
  template <class Ctx>
  MIXPREC_HOST_DEVICE void decide(no_scalars&, const Ctx& ctx) const {
    const std::uint64_t n = *head;
    double* r = ring + (n % capacity) * width;
    r[record_step] = static_cast<double>(ctx.step().count);
    const float scale = ctx.report(quantity::loss_scale);
    r[record_loss_scale] = scale == scale ? scale : 1.0;
    r[record_skipped] = ctx.skipped() ? 1.0 : 0.0;
    r[record_non_finite] = ctx.statistic(non_finite) != 0.0 ? 1.0 : 0.0;
    r[record_gradient_norm] = sqrt(ctx.statistic(norm_sq));
    r[record_clip_coefficient] = ctx.report(quantity::clip_coefficient);
    r[record_learning_rate] = ctx.report(quantity::learning_rate);
    const double elements = static_cast<double>(ctx.elements());
    r[record_zero_fraction] = elements > 0 ? ctx.statistic(zeros) / elements : 0.0;
    r[record_subnormal_fraction] = elements > 0 ? ctx.statistic(subnormals) / elements : 0.0;
    if constexpr (PerParameter)
      for (std::size_t p = 0; p < ctx.parameters(); ++p)
        r[record_parameters + p] = sqrt(ctx.statistic_at(stat_id<4>{}, p));
    *head = n + 1;
  }
};

// The ring buffer record_statistics writes to, and its host-side reader.
class statistics_log {
 public:
  struct record {
    std::uint64_t step;  // completed steps after it
    double loss_scale;   // in effect for the step (1 without a scaler)
    bool skipped, non_finite;
    double gradient_norm;
    double clip_coefficient;  // NaN without a clipper
    double learning_rate;     // NaN without a learning-rate stage
    // Of the gradients as stored (scaled, in their format; padding not counted):
    double zero_fraction;                 // exactly zero
    double subnormal_fraction;            // non-zero and below the format's smallest normal
    std::vector<double> parameter_norms;  // recorder<true>() only
  };

  explicit statistics_log(std::size_t capacity, std::size_t parameters = 0)
      : capacity_(capacity), width_(record_parameters + parameters) {
    detail::require(capacity > 0 && capacity < (std::size_t{1} << 32), "statistics_log: capacity must be positive");
    ring_ = detail::allocate<double>(capacity * width_, "a statistics log");
    head_ = detail::allocate<std::uint64_t>(1, "a statistics log");
  }

  // The component that writes here (per-parameter norms with <true>).
  template <bool PerParameter = false>
  record_statistics<PerParameter> recorder() {
    record_statistics<PerParameter> r;
    r.ring = detail::raw(ring_);
    r.head = detail::raw(head_);
    r.capacity = static_cast<std::uint32_t>(capacity_);
    r.width = static_cast<std::uint32_t>(width_);
    return r;
  }

  // Records written so far (some may have been overwritten).
  std::uint64_t recorded(stream s = {}) const { return detail::read_back(detail::raw(head_), s); }

  // The records the ring still holds, oldest first (waits for `s`).
  std::vector<record> read(stream s = {}) const {
    const std::uint64_t n = recorded(s);
    std::vector<double> raw(capacity_ * width_);
    detail::copy_to_host(detail::raw(ring_), raw.data(), raw.size(), s);
    const std::uint64_t first = n > capacity_ ? n - capacity_ : 0;
    std::vector<record> out;
    for (std::uint64_t k = first; k < n; ++k) {
      const double* r = raw.data() + (k % capacity_) * width_;
      record x;
      x.step = static_cast<std::uint64_t>(r[record_step]);
      x.loss_scale = r[record_loss_scale];
      x.skipped = r[record_skipped] != 0.0;
      x.non_finite = r[record_non_finite] != 0.0;
      x.gradient_norm = r[record_gradient_norm];
      x.clip_coefficient = r[record_clip_coefficient];
      x.learning_rate = r[record_learning_rate];
      x.zero_fraction = r[record_zero_fraction];
      x.subnormal_fraction = r[record_subnormal_fraction];
      x.parameter_norms.assign(r + record_parameters, r + width_);
      out.push_back(std::move(x));
    }
    return out;
  }

 private:
  std::size_t capacity_, width_;
  detail::device_buffer<double> ring_;
  detail::device_buffer<std::uint64_t> head_;
};

}  // namespace mixprec

MIXPREC_PINNED_END
