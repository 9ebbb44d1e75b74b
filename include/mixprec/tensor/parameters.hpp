// The parameter arena: every parameter of a model in one contiguous buffer
// per role, so that a pass over all parameters is one launch.
//
//   parameters<Model, Grad = Model, Master = float>
//
// Roles: fp32 master weights (Master = float; Master = void for a pure
// low-precision model updated with stochastic rounding or Kahan
// compensation), the model copy the forward pass reads (Model: float, half,
// bfloat16, fp8; when Model is float it is the master itself), and gradients
// (Grad: float, half or bfloat16), all in the same layout (arena_layout).
// Usage: add() named parameters with shapes and optional groups, finalize(),
// then initialise, read views, and hand the arena to a training step.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

#include <mixprec/cast/convert_range.hpp>
#include <mixprec/detail/memory.hpp>
#include <mixprec/tensor/arena_layout.hpp>
#include <mixprec/tensor/arena_signature.hpp>
#include <mixprec/tensor/elementwise.hpp>
#include <mixprec/tensor/initializers.hpp>
#include <mixprec/tensor/tensor_view.hpp>

namespace mixprec {

// The buffers of an arena: fp32 master weights, the model copy, gradients.
enum class role { master, model, grad };

inline const char* role_name(role r) {
  return r == role::master ? "master weights" : r == role::model ? "model copy" : "gradients";
}

template <class Model, class Grad = Model, class Master = float>
class parameters {
  static_assert(std::is_void_v<Master> || std::is_same_v<Master, float>,
                "mixprec::parameters: master weights must be float (fp32). Low-precision master weights lose "
                "small updates; for a model without fp32 master weights use Master = void with stochastic "
                "rounding or Kahan compensation in the optimizer.");
  static_assert(is_format_v<Model>, "mixprec::parameters: Model must be float, half, bfloat16, fp8_e4m3 or fp8_e5m2");
  static_assert(std::is_same_v<Grad, float> || std::is_same_v<Grad, half> || std::is_same_v<Grad, bfloat16>,
                "mixprec::parameters: gradients are stored in float, half or bfloat16");
  static_assert(!std::is_void_v<Master> || std::is_same_v<Model, bfloat16> || std::is_same_v<Model, half> ||
                    std::is_same_v<Model, float>,
                "mixprec::parameters: without master weights the model must be float, bfloat16 or half (fp8 "
                "weights need fp32 master weights)");

 public:
  using model_type = Model;
  using grad_type = Grad;
  using master_type = Master;
  static constexpr bool has_master = !std::is_void_v<Master>;
  // A float model with float master weights is one buffer.
  static constexpr bool model_is_master = has_master && std::is_same_v<Model, float>;

  struct parameter {
    std::string name;
    mixprec::shape shape;
    std::string group;
    std::uint32_t group_id = 0;
    std::size_t index = 0;   // position in the arena, also the initialisers' stream
    std::size_t offset = 0;  // first element in every role (valid after finalize)
    std::size_t size = 0;
  };

  parameters() = default;
  parameters(const parameters&) = delete;
  parameters& operator=(const parameters&) = delete;
  parameters(parameters&&) noexcept = default;
  parameters& operator=(parameters&&) noexcept = default;

  // Adds a parameter; returns its index. Empty parameters (size 0) are allowed.
  std::size_t add(const std::string& name, mixprec::shape s, const std::string& group = "default") {
    detail::require(!finalized_, "parameters::add(\"", name, "\"): the arena is already finalized");
    detail::require(!name.empty(), "parameters::add: a parameter needs a name");
    detail::require(!group.empty(), "parameters::add(\"", name, "\"): empty group name");
    detail::require(index_.find(name) == index_.end(), "parameters::add: a parameter named \"", name,
                    "\" already exists");
    const std::size_t n = s.size();  // throws on overflow
    std::uint32_t gid = 0;
    const auto g = std::find(group_names_.begin(), group_names_.end(), group);
    if (g == group_names_.end()) {
      gid = static_cast<std::uint32_t>(group_names_.size());
      group_names_.push_back(group);
    } else {
      gid = static_cast<std::uint32_t>(g - group_names_.begin());
    }
    parameter p{name, s, group, gid, params_.size(), 0, n};
    params_.push_back(std::move(p));
    index_.emplace(name, params_.size() - 1);
    return params_.size() - 1;
  }

  // Lays the arena out and allocates every role (zero-filled). Nothing
  // changes if it throws (e.g. on allocation failure). `master_shard`
  // keeps fp32 master weights only for those elements (ZeRO: each rank owns
  // a shard of them, mixprec/dist); the model copy and gradients are whole.
  MIXPREC_COLD void finalize(element_range master_shard = {}) {
    detail::require(!finalized_, "parameters::finalize: already finalized");
    detail::require(!params_.empty(), "parameters::finalize: empty parameter set (add parameters first)");
    std::vector<std::size_t> sizes;
    std::vector<std::uint32_t> groups;
    for (const parameter& p : params_) {
      sizes.push_back(p.size);
      groups.push_back(p.group_id);
    }
    // Allocate the roles first: a failure is cheap to report before the tile table is built.
    const std::size_t n = arena_layout::padded_size_of(sizes);
    const std::size_t master_end = master_shard.end < n ? master_shard.end : n;
    detail::require(master_shard.begin <= master_end, "parameters::finalize: master shard [", master_shard.begin, ", ",
                    master_shard.end, ") is reversed");
    const bool sharded = master_shard.begin != 0 || master_end != n;
    detail::require(!sharded || (has_master && !model_is_master),
                    "parameters::finalize: only fp32 master weights "
                    "kept apart from a narrower model copy can be sharded (a float model is its own master)");
    detail::device_buffer<float> master;
    detail::device_buffer<Model> model;
    if constexpr (has_master) master = detail::allocate<float>(master_end - master_shard.begin, "the master weights");
    if constexpr (!model_is_master) model = detail::allocate<Model>(n, "the model copy");
    detail::device_buffer<Grad> grads = detail::allocate<Grad>(n, "the gradients");
    arena_layout layout(sizes, groups);
    detail::arena_signature signature;
    signature.formats =
        detail::concat(format_traits<Model>::name, "/", format_traits<Grad>::name, "/", has_master ? "float" : "none");
    for (const parameter& p : params_) signature.add(p.name, p.shape, p.group);
    signature.seal();
    // Commit: nothing below throws.
    for (std::size_t k = 0; k < params_.size(); ++k) params_[k].offset = layout.offset(k);
    layout_ = std::move(layout);
    signature_ = std::move(signature);
    master_ = std::move(master);
    model_ = std::move(model);
    grads_ = std::move(grads);
    master_begin_ = has_master ? master_shard.begin : 0;
    master_end_ = has_master ? master_end : 0;
    finalized_ = true;
  }

  bool finalized() const { return finalized_; }
  std::size_t count() const { return params_.size(); }
  std::size_t element_count() const {
    std::size_t n = 0;
    for (const parameter& p : params_) n += p.size;
    return n;
  }
  const parameter& operator[](std::size_t index) const {
    detail::require(index < params_.size(), "parameters: no parameter with index ", index, " (", params_.size(),
                    " parameters)");
    return params_[index];
  }
  const parameter& operator[](const std::string& name) const { return params_[index_of(name)]; }
  bool contains(const std::string& name) const { return index_.find(name) != index_.end(); }
  std::size_t index_of(const std::string& name) const {
    const auto it = index_.find(name);
    detail::require(it != index_.end(), "parameters: no parameter named \"", name, "\"");
    return it->second;
  }
  const std::vector<parameter>& list() const { return params_; }
  const std::vector<std::string>& group_names() const { return group_names_; }
  std::uint32_t group_id(const std::string& group) const {
    const auto g = std::find(group_names_.begin(), group_names_.end(), group);
    detail::require(g != group_names_.end(), "parameters: no group named \"", group, "\"");
    return static_cast<std::uint32_t>(g - group_names_.begin());
  }

  // The layout and whole-role buffers (padded_size() elements each; padding is zero).
  const arena_layout& layout() const {
    require_finalized("layout");
    return layout_;
  }
  std::size_t padded_size() const { return layout().padded_size(); }
  // Formats, names, shapes and groups, with a hash (chain states check it).
  const detail::arena_signature& signature() const {
    require_finalized("signature");
    return signature_;
  }
  // The master weights: element master_begin() is at master_data()[0]
  // (master_begin() is 0 unless finalize() kept a shard).
  float* master_data() {
    static_assert(has_master, "this arena has no master weights (Master = void)");
    require_finalized("master_data");
    return detail::raw(master_);
  }
  std::size_t master_begin() const { return master_begin_; }
  std::size_t master_end() const { return master_end_; }
  bool master_sharded() const { return has_master && (master_begin_ != 0 || master_end_ != padded_size()); }
  // Whether this arena keeps parameter k's master weights.
  bool owns_master(std::size_t k) const {
    const parameter& p = (*this)[k];
    return has_master && p.offset >= master_begin_ && p.offset + p.size <= master_end_;
  }
  Model* model_data() {
    require_finalized("model_data");
    if constexpr (model_is_master) return detail::raw(master_);
    else return detail::raw(model_);
  }
  Grad* grad_data() {
    require_finalized("grad_data");
    return detail::raw(grads_);
  }
  const float* master_data() const { return const_cast<parameters&>(*this).master_data(); }
  const Model* model_data() const { return const_cast<parameters&>(*this).model_data(); }
  const Grad* grad_data() const { return const_cast<parameters&>(*this).grad_data(); }

  // Views of one parameter in each role.
  tensor_view<float> master(std::size_t index) {
    require_owned(index, "master");
    const parameter& p = (*this)[index];
    return tensor_view<float>(master_data() + (p.offset - master_begin_), p.shape);
  }
  tensor_view<Model> model(std::size_t index) {
    const parameter& p = (*this)[index];
    return tensor_view<Model>(model_data() + p.offset, p.shape);
  }
  tensor_view<Grad> grad(std::size_t index) {
    const parameter& p = (*this)[index];
    return tensor_view<Grad>(grad_data() + p.offset, p.shape);
  }
  tensor_view<float> master(const std::string& name) { return master(index_of(name)); }
  tensor_view<Model> model(const std::string& name) { return model(index_of(name)); }
  tensor_view<Grad> grad(const std::string& name) { return grad(index_of(name)); }

  // Host access that works on every backend (the buffers are device
  // memory on CUDA): copies of one parameter (by index or name), or of every
  // parameter in order without the padding, widened to float. Each waits
  // for the work queued on `s`.
  std::vector<float> to_host(role r, std::size_t index, stream s = {}) const {
    const parameter& p = (*this)[index];
    return read_role(r, p.offset, p.size, s);
  }
  std::vector<float> to_host(role r, const std::string& name, stream s = {}) const {
    return to_host(r, index_of(name), s);
  }
  std::vector<float> to_host(role r, stream s = {}) const {
    require_finalized("to_host");
    std::vector<float> all;
    all.reserve(element_count());
    for (const parameter& p : params_) {
      const std::vector<float> v = read_role(r, p.offset, p.size, s);
      all.insert(all.end(), v.begin(), v.end());
    }
    return all;
  }
  // Writes values (rounded to nearest even in the role's format). Writing
  // the master weights also rounds them into the model copy, so the two
  // stay consistent; an arena with master weights refuses direct writes of
  // its model copy (write the master weights instead).
  void from_host(role r, std::size_t index, const std::vector<float>& values, stream s = {}) {
    const parameter& p = (*this)[index];
    detail::require(values.size() == p.size, "parameters::from_host(\"", p.name, "\"): ", values.size(),
                    " values for shape ", p.shape.to_string(), " (", p.size, " elements)");
    check_writable(r, p.name);
    write_role(r, p.offset, values.data(), p.size, s);
  }
  void from_host(role r, const std::string& name, const std::vector<float>& values, stream s = {}) {
    from_host(r, index_of(name), values, s);
  }
  void from_host(role r, const std::vector<float>& values, stream s = {}) {
    require_finalized("from_host");
    detail::require(values.size() == element_count(), "parameters::from_host: ", values.size(), " values for ",
                    element_count(), " elements");
    for (const parameter& p : params_) check_writable(r, p.name);
    std::size_t at = 0;
    for (const parameter& p : params_) {
      write_role(r, p.offset, values.data() + at, p.size, s);
      at += p.size;
    }
  }

  // Initialises one parameter: master weights (or the model directly when
  // there are none) from `init`, then the model copy rounded to nearest.
  template <class Init>
  void initialize(std::size_t index, const Init& init, std::uint64_t seed, stream s = {}) {
    constexpr bool callable =
        std::is_invocable_v<const Init&, std::uint64_t, std::size_t, std::size_t, const mixprec::shape&>;
    static_assert(callable,
                  "parameters::initialize: the initialiser must be callable as init(seed, parameter index, element "
                  "index, shape), e.g. mixprec::init::constant{0.5} or mixprec::init::kaiming_uniform{}; a plain "
                  "number is not an initialiser");
    if constexpr (callable) initialize_with(index, init, seed, s);
  }
  template <class Init>
  void initialize(const std::string& name, const Init& init, std::uint64_t seed, stream s = {}) {
    initialize(index_of(name), init, seed, s);
  }
  // Initialises every parameter of `group` (all parameters when group is empty).
  template <class Init>
  void initialize_all(const Init& init, std::uint64_t seed, const std::string& group = "", stream s = {}) {
    for (const parameter& p : params_)
      if (group.empty() || p.group == group) initialize(p.index, init, seed, s);
  }

 private:
  template <class Init>
  void initialize_with(std::size_t index, const Init& init, std::uint64_t seed, stream s) {
    require_finalized("initialize");
    const parameter& p = (*this)[index];
    std::vector<float> values(p.size);
    for (std::size_t i = 0; i < p.size; ++i) values[i] = static_cast<float>(init(seed, p.index, i, p.shape));
    if constexpr (has_master) {
      // The master weights this arena keeps, and the model copy rounded from the values.
      const std::size_t b = std::max(p.offset, master_begin_), e = std::min(p.offset + p.size, master_end_);
      if (b < e) detail::write_to_device(values.data() + (b - p.offset), master_data() + (b - master_begin_), e - b, s);
    }
    if constexpr (!model_is_master) {
      std::vector<Model> rounded(p.size);
      for (std::size_t i = 0; i < p.size; ++i) rounded[i] = convert<Model, weight_overflow<Model>>(values[i]);
      detail::write_to_device(rounded.data(), model_data() + p.offset, p.size, s);
    } else {
      detail::write_to_device(values.data(), model_data() + p.offset, p.size, s);
    }
  }

 public:
  // model = master rounded under `round` (the whole arena, one launch).
  template <class O = weight_overflow<Model>, class R = round_nearest_even>
  void sync_model(R round = {}, stream s = {}) {
    static_assert(has_master, "sync_model: this arena has no master weights");
    if constexpr (!model_is_master)
      convert_n<Model, O>(master_data(), master_end_ - master_begin_, model_data() + master_begin_, round, s,
                          master_begin_);
  }

  void zero_grads(stream s = {}) { fill(tensor_view<Grad>(grad_data(), padded_size()), 0.0f, round_nearest_even{}, s); }

 private:
  template <class T>
  static std::vector<float> widen(const T* device, std::size_t n, stream s) {
    std::vector<T> raw(n);
    detail::copy_to_host(device, raw.data(), n, s);
    std::vector<float> out(n);
    for (std::size_t i = 0; i < n; ++i) out[i] = to_float(raw[i]);
    return out;
  }
  std::vector<float> read_role(role r, std::size_t offset, std::size_t n, stream s) const {
    require_finalized("to_host");
    auto& self = const_cast<parameters&>(*this);  // the data accessors are non-const; nothing is written
    if (r == role::grad) return widen(self.grad_data() + offset, n, s);
    if (r == role::model) return widen(self.model_data() + offset, n, s);
    if constexpr (has_master) {
      detail::require(offset >= master_begin_ && offset + n <= master_end_,
                      "parameters::to_host: the master weights "
                      "of elements [",
                      offset, ", ", offset + n, ") are not kept here (sharded master weights)");
      return widen(self.master_data() + (offset - master_begin_), n, s);
    }
    throw error("parameters::to_host: this arena has no master weights (Master = void)");
  }
  void check_writable(role r, const std::string& name) const {
    require_finalized("from_host");
    detail::require(r != role::master || has_master, "parameters::from_host(\"", name,
                    "\"): this arena has no master weights (Master = void); write role::model");
    detail::require(r != role::model || !has_master || model_is_master, "parameters::from_host(\"", name,
                    "\"): this arena keeps fp32 master weights; write role::master (the model copy follows)");
  }
  template <class T>
  static void narrow(const float* values, T* device, std::size_t n, stream s) {
    std::vector<T> rounded(n);
    for (std::size_t i = 0; i < n; ++i) rounded[i] = convert<T, weight_overflow<T>>(values[i]);
    detail::write_to_device(rounded.data(), device, n, s);
  }
  void write_role(role r, std::size_t offset, const float* values, std::size_t n, stream s) {
    if (r == role::grad) {
      narrow(values, grad_data() + offset, n, s);
    } else if (r == role::model) {
      narrow(values, model_data() + offset, n, s);
    } else if constexpr (has_master) {
      detail::require(offset >= master_begin_ && offset + n <= master_end_,
                      "parameters::from_host: the master weights "
                      "of elements [",
                      offset, ", ", offset + n, ") are not kept here (sharded master weights)");
      detail::write_to_device(values, master_data() + (offset - master_begin_), n, s);
      if constexpr (!model_is_master)
        convert_n<Model, weight_overflow<Model>>(master_data() + (offset - master_begin_), n, model_data() + offset,
                                                 round_nearest_even{}, s);
    }
  }

  void require_owned(std::size_t index, const char* what) const {
    detail::require(owns_master(index), "parameters::", what, "(\"", (*this)[index].name,
                    "\"): this arena does not "
                    "keep its master weights (sharded master weights)");
  }
  void require_finalized(const char* what) const {
    detail::require(finalized_, "parameters::", what, ": the arena is used before finalize()");
  }

  std::vector<parameter> params_;
  std::unordered_map<std::string, std::size_t> index_;
  std::vector<std::string> group_names_;
  bool finalized_ = false;
  arena_layout layout_;
  detail::arena_signature signature_;
  detail::device_buffer<float> master_;
  detail::device_buffer<Model> model_;
  detail::device_buffer<Grad> grads_;
  std::size_t master_begin_ = 0, master_end_ = 0;
};

}  // namespace mixprec
