// The interface between the Python module and one compiled chain.
//
// Every chain the package can run (a "recipe": optimizer, formats, writer,
// loss scaling, clipping, EMA, statistics) is compiled once into a class
// implementing `core`, either inside the module (the precompiled recipes)
// or into a small shared library built on first use (python/mixprec/_jit.py)
// and loaded with dlopen. Both sides include this header and are built by
// the same compiler, so the virtual table and the standard-library types
// agree; `core_abi` changes whenever this header does.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace mixprec::python {

inline constexpr int core_abi = 5;

// Element formats as the Python side names them.
enum class format_code : int { f32 = 0, bf16 = 1, f16 = 2, u8 = 3 };

// One step's hyperparameters, read from the optimizer's param_groups (base
// values; per-group factors go through set_groups). Which fields matter
// depends on the recipe; the rest are ignored.
struct hyper {
  float lr = 1e-3f, weight_decay = 0.0f;
  float beta1 = 0.9f, beta2 = 0.999f, eps = 1e-8f;
  float momentum = 0.0f, dampening = 0.0f;
  bool nesterov = false, maximize = false, amsgrad = false;
  float beta2_decay = -0.8f, eps1 = 1.1920928955078125e-07f, eps2 = 1e-3f, d = 1.0f;  // adafactor
  std::uint32_t n_heads = 0, n_kv_heads = 0, dim = 0;                                 // adam_mini
  float max_norm = 1.0f, norm_type = 2.0f;                                            // clip_grad_norm
  double ema_decay = 0.9999;
  std::uint32_t ema_warmup = 0;  // mixprec::ema_warmup: none, tensorflow, timm_v3
  float static_scale = 1.0f;     // static loss scale
  float init_scale = 65536.0f;   // dynamic loss scale
  double growth_factor = 2.0, backoff_factor = 0.5;
  std::uint32_t growth_interval = 2000, hysteresis = 1;
  float min_scale = 1.1754943508222875e-38f, max_scale = 3.4028234663852886e+38f;
  std::uint64_t seed = 0;                        // stochastic rounding
  std::uintptr_t grad_scale = 0, found_inf = 0;  // GradScaler's tensors (device addresses), grad_scaler recipes
};

// A device buffer: address, elements, format (for DLPack views).
struct buffer {
  std::uintptr_t data = 0;
  std::size_t count = 0;
  format_code format = format_code::f32;
};

// One state field of one component.
struct field_info {
  std::string path;                  // the component, as checkpoints name it ("adamw/scale_by_adam")
  std::string name;                  // "exp_avg"
  int extent = 0;                    // mixprec::extent: element, parameter, row, column, scalar
  bool saved = true;                 // false: recomputed every step
  std::string format;                // "float", "bfloat16", "dynamic8 (signed)", ...
  buffer data;                       // every entry (8-bit codes: u8)
  std::vector<std::uint64_t> base;   // per parameter: its first entry (~0 when the field does not cover it)
  std::vector<std::uint64_t> count;  // per parameter: its entries
  // 8-bit codes only (block > 0): one float scale per block of `block`
  // elements of each parameter, parameter p's at [scale_base[p], + scale_count[p]).
  std::uint32_t block = 0;
  buffer scales;
  std::vector<std::uint64_t> scale_base, scale_count;
};

// One device scalar of one component (or of the step), as raw bytes.
struct scalar_value {
  std::string path, name;
  int kind = 0;  // 1 float, 2 double, 3 uint32, 4 uint64, 5 bool
  std::vector<std::uint8_t> bytes;
};

// What stats() reads back (NaN where the recipe has no such quantity).
struct step_stats {
  std::uint64_t steps = 0, skipped = 0;
  bool last_skipped = false;
  double loss_scale = 1.0;
  double gradient_norm = 0.0, clip_coefficient = 1.0;
  double zero_fraction = 0.0, subnormal_fraction = 0.0;  // of the stored gradients, in their own format
  bool recorded = false;                                 // the statistics recorder has written at least one record
};

class core {
 public:
  virtual ~core() = default;
  virtual std::string recipe() const = 0;
  virtual bool cuda() const = 0;

  // The arena: parameters by name, shape and group, then one buffer per role.
  virtual void build(const std::vector<std::string>& names, const std::vector<std::vector<std::size_t>>& shapes,
                     const std::vector<std::string>& groups) = 0;
  virtual std::vector<std::size_t> offsets() const = 0;
  virtual buffer master() = 0;  // count 0: no master weights
  virtual buffer model() = 0;   // the master itself when the model is float
  virtual buffer grad() = 0;
  virtual bool has_master() const = 0;

  // The chain's state, once the weights are in the arena.
  virtual void init(const hyper& h, std::uintptr_t stream) = 0;
  virtual std::string describe() const = 0;
  virtual double state_bytes() const = 0;
  virtual std::vector<std::string> group_names() const = 0;
  virtual void set_group(const std::string& group, float lr_scale, float weight_decay_scale, std::uintptr_t stream) = 0;
  virtual void validate(const hyper& h) = 0;  // the components' own checks; throws, changes nothing
  virtual void step(const hyper& h, std::uintptr_t stream) = 0;
  virtual void zero_grad(std::uintptr_t stream) = 0;
  virtual std::uintptr_t loss_scale_address() const = 0;
  virtual step_stats stats(std::uintptr_t stream) const = 0;
  virtual void synchronize(std::uintptr_t stream) const = 0;

  // State for state_dict()/load_state_dict(): fields, scalars, counters.
  virtual std::vector<field_info> fields() = 0;
  virtual std::vector<scalar_value> scalars(std::uintptr_t stream) const = 0;
  virtual void set_scalars(const std::vector<scalar_value>& values, std::uint64_t steps, std::uint64_t skipped,
                           std::uintptr_t stream) = 0;

  // mixprec's own files.
  virtual void save_checkpoint(const std::string& path, const hyper& h,
                               const std::map<std::string, std::string>& metadata, std::uintptr_t stream) = 0;
  virtual std::map<std::string, std::string> load_checkpoint(const std::string& path, const hyper& h,
                                                             std::uintptr_t stream) = 0;
  virtual void save_safetensors(const std::string& path, int role, const std::map<std::string, std::string>& metadata,
                                std::uintptr_t stream) = 0;
};

using core_factory = core* (*)();

// The recipes compiled into this library, by key.
inline std::map<std::string, core_factory>& registry() {
  static std::map<std::string, core_factory> r;
  return r;
}
struct registration {
  registration(const char* key, core_factory f) { registry()[key] = f; }
};

}  // namespace mixprec::python
