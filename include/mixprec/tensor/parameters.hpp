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
#include <mixprec/tensor/elementwise.hpp>
#include <mixprec/tensor/initializers.hpp>
#include <mixprec/tensor/tensor_view.hpp>

namespace mixprec {

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
  // changes if it throws (e.g. on allocation failure).
  void finalize() {
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
    detail::device_vector<float> master;
    detail::device_vector<Model> model;
    if constexpr (has_master) master = detail::allocate<float>(n, "the master weights");
    if constexpr (!model_is_master) model = detail::allocate<Model>(n, "the model copy");
    detail::device_vector<Grad> grads = detail::allocate<Grad>(n, "the gradients");
    arena_layout layout(sizes, groups);
    // Commit: nothing below throws.
    for (std::size_t k = 0; k < params_.size(); ++k) params_[k].offset = layout.offset(k);
    layout_ = std::move(layout);
    master_ = std::move(master);
    model_ = std::move(model);
    grads_ = std::move(grads);
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
  float* master_data() {
    static_assert(has_master, "this arena has no master weights (Master = void)");
    require_finalized("master_data");
    return detail::raw(master_);
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

  // Views of one parameter in each role.
  tensor_view<float> master(std::size_t index) {
    const parameter& p = (*this)[index];
    return tensor_view<float>(master_data() + p.offset, p.shape);
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

  // Initialises one parameter: master weights (or the model directly when
  // there are none) from `init`, then the model copy rounded to nearest.
  template <class Init>
  void initialize(std::size_t index, const Init& init, std::uint64_t seed, stream s = {}) {
    require_finalized("initialize");
    const parameter& p = (*this)[index];
    std::vector<float> values(p.size);
    for (std::size_t i = 0; i < p.size; ++i) values[i] = static_cast<float>(init(seed, p.index, i, p.shape));
    if constexpr (has_master) {
      detail::write_to_device(values.data(), master_data() + p.offset, p.size, s);
      if constexpr (!model_is_master) convert_n(master_data() + p.offset, p.size, model_data() + p.offset, round_nearest_even{}, s);
    } else {
      std::vector<Model> rounded(p.size);
      for (std::size_t i = 0; i < p.size; ++i) rounded[i] = convert<Model>(values[i]);
      detail::write_to_device(rounded.data(), model_data() + p.offset, p.size, s);
    }
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

  // model = master rounded under `round` (the whole arena, one launch).
  template <class O = overflow_to_infinity, class R = round_nearest_even>
  void sync_model(R round = {}, stream s = {}) {
    static_assert(has_master, "sync_model: this arena has no master weights");
    if constexpr (!model_is_master) convert_n<Model, O>(master_data(), padded_size(), model_data(), round, s);
  }

  void zero_grads(stream s = {}) { fill(tensor_view<Grad>(grad_data(), padded_size()), 0.0f, round_nearest_even{}, s); }

 private:
  void require_finalized(const char* what) const {
    detail::require(finalized_, "parameters::", what, ": the arena is used before finalize()");
  }

  std::vector<parameter> params_;
  std::unordered_map<std::string, std::size_t> index_;
  std::vector<std::string> group_names_;
  bool finalized_ = false;
  arena_layout layout_;
  detail::device_vector<float> master_;
  detail::device_vector<Model> model_;
  detail::device_vector<Grad> grads_;
};

}  // namespace mixprec
