// One recipe of the Python package: the chain a mixprec.torch.Optimizer
// runs, chosen at compile time, behind the `core` interface (core.hpp).
//
//   recipe<optimizer, Model, Master, Moments, writer, scaler, Clip, Ema, Stats>
//
// builds parameters<Model, Model, Master> (torch needs a gradient in the
// parameter's own dtype) and the chain
//
//   [loss scaler] [record_statistics] [clip_by_global_norm] optimizer [ema_of_weights] [writer]
//
// from one step's hyperparameters. The chain is rebuilt from `hyper` at
// every step: its type never changes, only the values its components carry
// into the passes, so a learning rate changed in param_groups (by the user
// or an lr_scheduler) takes effect at the next step with nothing copied to
// the device. Hyperparameters are validated (the components' own checks)
// whenever they change, before anything runs.
#pragma once

#include <cstring>
#include <optional>
#include <stdexcept>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include <mixprec/mixprec.hpp>
#if defined(MIXPREC_PYTHON_SAFETENSORS)
#include <mixprec/io/safetensors.hpp>
#endif

#include "core.hpp"
#include "grad_scaler_input.hpp"

namespace mixprec::python {

enum class optimizer_kind { sgd, adam, adamw, lion, lamb, adafactor, adam_mini };
enum class writer_kind { nearest, stochastic, kahan };
enum class scaler_kind { none, fixed, dynamic, grad_scaler };

template <class T>
constexpr format_code code_of() {
  if constexpr (std::is_same_v<T, float>) return format_code::f32;
  else if constexpr (std::is_same_v<T, bfloat16>) return format_code::bf16;
  else return format_code::f16;
}

inline stream to_stream(std::uintptr_t s) {
#if defined(MIXPREC_BACKEND_CUDA)
  return stream(reinterpret_cast<cudaStream_t>(s));
#else
  (void)s;
  return {};
#endif
}

// The component types of a chain, and the first one with a given name.
template <class Chain>
struct chain_types;
template <class... C>
struct chain_types<chain_t<C...>> {
  using tuple = std::tuple<C...>;
};
constexpr bool same_name(const char* a, const char* b) {
  while (*a != 0 && *a == *b) ++a, ++b;
  return *a == *b;
}
template <class... C>
constexpr int index_named_in(const char* name, const std::tuple<C...>*) {
  const bool match[] = {same_name(C::name, name)..., false};
  for (int k = 0; k < static_cast<int>(sizeof...(C)); ++k)
    if (match[k]) return k;
  return -1;
}
template <class Chain>
constexpr int index_named(const char* name) {
  return index_named_in(name, static_cast<const typename chain_types<Chain>::tuple*>(nullptr));
}

template <optimizer_kind O, class Moments>
auto make_optimizer(const hyper& h) {
  if constexpr (O == optimizer_kind::sgd) {
    sgd_options o;
    o.lr = h.lr;
    o.momentum = h.momentum;
    o.dampening = h.dampening;
    o.nesterov = h.nesterov;
    o.weight_decay = h.weight_decay;
    o.maximize = h.maximize;
    return sgd<Moments>(o);
  } else if constexpr (O == optimizer_kind::adam || O == optimizer_kind::adamw) {
    adamw_options o;
    o.lr = h.lr;
    o.beta1 = h.beta1;
    o.beta2 = h.beta2;
    o.eps = h.eps;
    o.weight_decay = h.weight_decay;
    o.amsgrad = h.amsgrad;
    o.maximize = h.maximize;
    if constexpr (O == optimizer_kind::adam) return adam<Moments>(o);
    else return adamw<Moments>(o);
  } else if constexpr (O == optimizer_kind::lion) {
    lion_options o;
    o.lr = h.lr;
    o.beta1 = h.beta1;
    o.beta2 = h.beta2;
    o.weight_decay = h.weight_decay;
    return lion<Moments>(o);
  } else if constexpr (O == optimizer_kind::lamb) {
    lamb_options o;
    o.lr = h.lr;
    o.beta1 = h.beta1;
    o.beta2 = h.beta2;
    o.eps = h.eps;
    o.weight_decay = h.weight_decay;
    return lamb<Moments>(o);
  } else if constexpr (O == optimizer_kind::adafactor) {
    static_assert(std::is_same_v<Moments, float>, "adafactor keeps float factored moments");
    adafactor_options o;
    o.lr = h.lr;
    o.beta2_decay = h.beta2_decay;
    o.eps1 = h.eps1;
    o.eps2 = h.eps2;
    o.d = h.d;
    o.weight_decay = h.weight_decay;
    o.maximize = h.maximize;
    return adafactor(o);
  } else {
    static_assert(O == optimizer_kind::adam_mini);
    adam_mini_options o;  // the authors' name patterns; the parameters' names come from the arena
    o.lr = h.lr;
    o.beta1 = h.beta1;
    o.beta2 = h.beta2;
    o.eps = h.eps;
    o.weight_decay = h.weight_decay;
    o.dim = h.dim;
    o.n_heads = h.n_heads;
    o.n_kv_heads = h.n_kv_heads;
    return adam_mini<Moments>(o);
  }
}

template <optimizer_kind O, class Model, class Master, class Moments, writer_kind W, scaler_kind S, bool Clip, bool Ema,
          bool Stats>
struct recipe {
  using model_type = Model;
  using arena = parameters<Model, Model, Master>;
  static constexpr bool has_master = !std::is_void_v<Master>;
  static constexpr bool stats = Stats;
  static_assert(W != writer_kind::kahan || !has_master, "Kahan compensation is for weights without master copies");
  static_assert(W != writer_kind::stochastic || !std::is_same_v<Model, float>,
                "stochastic rounding needs a model narrower than float");

  static auto make(const hyper& h, statistics_log* log) {
    auto scaler = [&] {
      if constexpr (S == scaler_kind::fixed) return std::make_tuple(static_loss_scale{h.static_scale});
      else if constexpr (S == scaler_kind::dynamic) {
        dynamic_loss_scale d;
        d.init_scale = h.init_scale;
        d.growth_factor = h.growth_factor;
        d.backoff_factor = h.backoff_factor;
        d.growth_interval = h.growth_interval;
        d.hysteresis = h.hysteresis;
        d.min_scale = h.min_scale;
        d.max_scale = h.max_scale;
        return std::make_tuple(d);
      } else if constexpr (S == scaler_kind::grad_scaler) {
        grad_scaler_input g;
        g.grad_scale = reinterpret_cast<const float*>(h.grad_scale);
        g.found_inf = reinterpret_cast<const float*>(h.found_inf);
        return std::make_tuple(g);
      } else {
        return std::tuple<>{};
      }
    }();
    auto recorder = [&] {
      if constexpr (Stats) return std::make_tuple(log != nullptr ? log->recorder() : record_statistics<>{});
      else return std::tuple<>{};
    }();
    auto clip = [&] {
      if constexpr (Clip) return std::make_tuple(clip_by_global_norm{h.max_norm, h.norm_type});
      else return std::tuple<>{};
    }();
    auto ema = [&] {
      if constexpr (Ema) return std::make_tuple(ema_of_weights{h.ema_decay, static_cast<ema_warmup>(h.ema_warmup)});
      else return std::tuple<>{};
    }();
    auto writer = [&] {
      if constexpr (W == writer_kind::stochastic) return std::make_tuple(round_model_stochastic{h.seed});
      else if constexpr (W == writer_kind::kahan) return std::make_tuple(kahan_summation<bfloat16>{});
      else return std::tuple<>{};
    }();
    auto all = std::tuple_cat(scaler, recorder, clip, std::make_tuple(make_optimizer<O, Moments>(h)), ema, writer);
    return std::apply([](const auto&... c) { return chain(c...); }, all);
  }
};

template <class R>
class bound final : public core {
  using arena_t = typename R::arena;
  using chain_type = decltype(R::make(std::declval<const hyper&>(), nullptr));
  using state_type = decltype(std::declval<const chain_type&>().init(std::declval<const arena_t&>()));

 public:
  explicit bound(std::string key) : key_(std::move(key)) {}

  std::string recipe() const override { return key_; }
  bool cuda() const override {
#if defined(MIXPREC_BACKEND_CUDA)
    return true;
#else
    return false;
#endif
  }

  void build(const std::vector<std::string>& names, const std::vector<std::vector<std::size_t>>& shapes,
             const std::vector<std::string>& groups) override {
    detail::require(names.size() == shapes.size() && names.size() == groups.size(), "build: ", names.size(), " names, ",
                    shapes.size(), " shapes and ", groups.size(), " groups");
    arena_t p;
    for (std::size_t k = 0; k < names.size(); ++k)
      p.add(names[k], shape(shapes[k].begin(), shapes[k].end()), groups[k]);
    p.finalize();
    params_ = std::move(p);
    shapes_ = shapes;
    if constexpr (stats_enabled) log_.emplace(64);
  }
  std::vector<std::size_t> offsets() const override {
    std::vector<std::size_t> out;
    for (const auto& p : params_.list()) out.push_back(p.offset);
    return out;
  }
  bool has_master() const override { return arena_t::has_master; }
  buffer master() override {
    if constexpr (arena_t::has_master)
      return {reinterpret_cast<std::uintptr_t>(params_.master_data()), params_.padded_size(), format_code::f32};
    else return {};
  }
  buffer model() override {
    return {reinterpret_cast<std::uintptr_t>(params_.model_data()), params_.padded_size(),
            code_of<typename arena_t::model_type>()};
  }
  buffer grad() override {
    return {reinterpret_cast<std::uintptr_t>(params_.grad_data()), params_.padded_size(),
            code_of<typename arena_t::grad_type>()};
  }

  void init(const hyper& h, std::uintptr_t s) override {
    const chain_type c = R::make(h, log_ ? &*log_ : nullptr);
    state_ = c.init(params_, to_stream(s));
    chain_.emplace(c);
    last_ = h;
  }
  std::string describe() const override { return chain_->describe(); }
  double state_bytes() const override { return static_cast<double>(state().state_bytes()); }
  std::vector<std::string> group_names() const override { return params_.group_names(); }
  void set_group(const std::string& group, float lr_scale, float wd_scale, std::uintptr_t s) override {
    state_mut().set_group(group, {lr_scale, wd_scale}, to_stream(s));
  }

  void validate(const hyper& h) override { static_cast<void>(chain_for(h)); }
  void step(const hyper& h, std::uintptr_t s) override {
    const chain_type& c = chain_for(h);
    c.apply(params_, state_mut(), to_stream(s));
  }
  void zero_grad(std::uintptr_t s) override { params_.zero_grads(to_stream(s)); }
  std::uintptr_t loss_scale_address() const override {
    return reinterpret_cast<std::uintptr_t>(state().loss_scale_data());
  }
  void synchronize(std::uintptr_t s) const override { mixprec::synchronize(to_stream(s)); }

  step_stats stats(std::uintptr_t s) const override {
    step_stats out;
    const auto block = state().block(to_stream(s));
    out.steps = block.step.count;
    out.skipped = block.step.skipped_total;
    out.last_skipped = block.step.skip != 0;
    out.loss_scale = state().loss_scale(to_stream(s));
    out.gradient_norm = NAN;
    out.clip_coefficient = NAN;
    out.zero_fraction = out.subnormal_fraction = NAN;
    if constexpr (stats_enabled) {
      const auto records = log_->read(to_stream(s));
      if (!records.empty()) {
        const auto& r = records.back();
        out.recorded = true;
        out.gradient_norm = r.gradient_norm;
        out.clip_coefficient = r.clip_coefficient;
        out.zero_fraction = r.zero_fraction;
        out.subnormal_fraction = r.subnormal_fraction;
      }
    }
    read_clip(block, out);
    return out;
  }

  std::vector<field_info> fields() override {
    std::vector<field_info> out;
    add_fields(out, std::make_index_sequence<chain_type::n>{});
    return out;
  }
  std::vector<scalar_value> scalars(std::uintptr_t s) const override {
    std::vector<scalar_value> out;
    const auto block = state().block(to_stream(s));
    collect_scalars(out, block, std::make_index_sequence<chain_type::n>{});
    return out;
  }
  void set_scalars(const std::vector<scalar_value>& values, std::uint64_t steps, std::uint64_t skipped,
                   std::uintptr_t s) override {
    auto block = state().block(to_stream(s));
    assign_scalars(block, values, std::make_index_sequence<chain_type::n>{});  // throws before anything changes
    block.at_start = block.comps;
    block.step.count = steps;
    block.step.skipped_total = skipped;
    block.step.t = steps + 1;
    block.step.skip = 0;
    block.step.hold = 0;
    detail::write_to_device(&block, detail::raw(state_mut().storage().block), 1, to_stream(s));
  }

  void save_checkpoint(const std::string& path, const hyper& h, const std::map<std::string, std::string>& metadata,
                       std::uintptr_t s) override {
    mixprec::save_checkpoint(path, chain_for(h), params_, state_mut(), metadata, to_stream(s));
  }
  std::map<std::string, std::string> load_checkpoint(const std::string& path, const hyper& h,
                                                     std::uintptr_t s) override {
    return mixprec::load_checkpoint(path, chain_for(h), params_, state_mut(), checkpoint_options{true}, to_stream(s));
  }
  void save_safetensors(const std::string& path, int role, const std::map<std::string, std::string>& metadata,
                        std::uintptr_t s) override {
#if defined(MIXPREC_PYTHON_SAFETENSORS)
    const mixprec::role r = role == 0 ? mixprec::role::master : role == 1 ? mixprec::role::model : mixprec::role::grad;
    mixprec::save_safetensors(path, params_, r, metadata, to_stream(s));
#else
    (void)path, (void)role, (void)metadata, (void)s;
    throw error(
        "save_safetensors: this build of the mixprec module has no .safetensors support (nlohmann/json was "
        "not found when it was built)");
#endif
  }

 private:
  static constexpr bool stats_enabled = R::stats;
  template <std::size_t K>
  using component_t = std::tuple_element_t<K, typename chain_types<chain_type>::tuple>;
  static constexpr int clip_index = index_named<chain_type>("clip_by_global_norm");

  template <class Block>
  void read_clip(const Block& block, step_stats& out) const {
    if constexpr (clip_index >= 0) {
      const auto& c = detail::get<static_cast<std::size_t>(clip_index)>(block.comps);
      out.gradient_norm = c.norm;
      out.clip_coefficient = c.coef;
    }
  }

  const chain_type& chain_for(const hyper& h) {
    if (std::memcmp(&h, &last_, sizeof(hyper)) != 0) {
      const chain_type c = R::make(h, log_ ? &*log_ : nullptr);
      validate(c, std::make_index_sequence<chain_type::n>{});  // throws: nothing changed
      chain_.emplace(c);
      last_ = h;
    }
    return *chain_;
  }
  template <std::size_t... K>
  void validate(const chain_type& c, std::index_sequence<K...>) const {
    const arena_info a = info();
    (static_cast<void>(detail::initial_scalars_of(c.template component<K>(), a)), ...);
  }

  template <std::size_t... K>
  void add_fields(std::vector<field_info>& out, std::index_sequence<K...>) {
    std::size_t f = 0;
    (add_fields_of<K>(out, f), ...);
  }
  template <std::size_t K>
  void add_fields_of(std::vector<field_info>& out, std::size_t& f) {
    using C = component_t<K>;
    constexpr std::size_t nf = detail::field_count<C>();
    if constexpr (nf > 0) add_component_fields<K, C, nf>(out, f);
  }
  template <std::size_t K, class C, std::size_t NF>
  void add_component_fields(std::vector<field_info>& out, std::size_t& f) {
    auto& buffers = state_mut().storage().fields;
    for (std::size_t j = 0; j < NF; ++j, ++f) {
      const state_field d = detail::field_of<C>(j);
      const detail::field_buffer& b = buffers[f];
      if (!b.used) continue;
      field_info x;
      x.path = chain_->path(K);
      x.name = d.name;
      x.extent = static_cast<int>(d.where);
      x.saved = d.saved;
      x.format = format_name(d.format);
      const bool coded = detail::is_coded(d.format);
      const std::uintptr_t bytes = reinterpret_cast<std::uintptr_t>(detail::raw(b.bytes));
      x.data = {bytes, static_cast<std::size_t>(b.entries),
                coded                         ? format_code::u8
                : d.format == format_id::bf16 ? format_code::bf16
                                              : format_code::f32};
      x.base = b.base_h;
      for (std::size_t p = 0; p < shapes_.size(); ++p) x.count.push_back(entries_of(d.where, shapes_[p], b.base_h[p]));
      if (coded) {  // the scales: each parameter's blocks in turn (train/layout.hpp)
        x.block = d.block != 0 ? d.block : detail::default_code_block;
        x.scales = {bytes + static_cast<std::uintptr_t>(b.scale_offset), static_cast<std::size_t>(b.scales),
                    format_code::f32};
        std::uint64_t next = 0;
        for (std::size_t p = 0; p < shapes_.size(); ++p) {
          const std::uint64_t n = entries_of(extent::element, shapes_[p], 0);
          x.scale_base.push_back(next);
          x.scale_count.push_back((n + x.block - 1) / x.block);
          next += x.scale_count.back();
        }
        detail::require(next == b.scales, "fields: ", d.name, " has ", b.scales, " scales, its parameters ", next,
                        " blocks");
      }
      out.push_back(std::move(x));
    }
  }
  static std::uint64_t entries_of(extent where, const std::vector<std::size_t>& s, std::uint64_t base) {
    if (base == detail::no_entry) return 0;
    std::uint64_t size = 1;
    for (std::size_t d : s) size *= d;
    const std::uint64_t cols = s.empty() ? 1 : s.back();
    switch (where) {
      case extent::element:
        return size;
      case extent::row:
        return s.size() < 2 ? 1 : (cols == 0 ? 0 : size / cols);
      case extent::column:
        return s.size() < 2 ? cols : (s[s.size() - 2] == 0 ? 0 : size / s[s.size() - 2]);
      case extent::parameter:
      case extent::scalar:
        return 1;
    }
    return 0;
  }

  template <class Block, std::size_t... K>
  void collect_scalars(std::vector<scalar_value>& out, const Block& block, std::index_sequence<K...>) const {
    (collect_scalars_of<K>(out, block), ...);
  }
  template <std::size_t K, class Block>
  void collect_scalars_of(std::vector<scalar_value>& out, const Block& block) const {
    using C = component_t<K>;
    for (const auto& v : detail::scalars_of_value<C>(detail::get<K>(block.comps)))
      out.push_back({chain_->path(K), v.name, static_cast<int>(v.kind), v.bytes});
  }
  template <class Block, std::size_t... K>
  void assign_scalars(Block& block, const std::vector<scalar_value>& values, std::index_sequence<K...>) const {
    (assign_scalars_of<K>(block, values), ...);
  }
  template <std::size_t K, class Block>
  void assign_scalars_of(Block& block, const std::vector<scalar_value>& values) const {
    using C = component_t<K>;
    std::vector<detail::named_value> mine;
    for (const auto& v : values)
      if (v.path == chain_->path(K)) mine.push_back({v.name, static_cast<detail::value_kind>(v.kind), v.bytes});
    auto& s = detail::get<K>(block.comps);
    detail::assign_scalars<C>(s, mine, chain_->path(K));
    // What the component accepts from a checkpoint (it refuses values no step could produce).
    const C& c = chain_->template component<K>();
    s = detail::restored_scalars_of(c, s, detail::initial_scalars_of(c, info()), c);
  }
  arena_info info() const {
    arena_info a;
    a.group_names = params_.group_names();
    for (const auto& p : params_.list()) {
      a.names.push_back(p.name);
      a.groups.push_back(p.group);
      a.shapes.emplace_back(p.shape.begin(), p.shape.end());
      a.group_of.push_back(p.group_id);
    }
    return a;
  }

  const state_type& state() const {
    detail::require(state_.initialized(), "the optimizer's state is not initialised");
    return state_;
  }
  state_type& state_mut() {
    detail::require(state_.initialized(), "the optimizer's state is not initialised");
    return state_;
  }
  state_type& state_mut() const { return const_cast<bound&>(*this).state_mut(); }

  std::string key_;
  arena_t params_;
  std::vector<std::vector<std::size_t>> shapes_;
  std::optional<statistics_log> log_;
  state_type state_;
  std::optional<chain_type> chain_;
  hyper last_{};
};

}  // namespace mixprec::python

// Registers recipe R under KEY in this library (precompiled recipes), or
// exports it as the library's one recipe (recipes built on first use).
#define MIXPREC_PYTHON_RECIPE_ID2(a, b) a##b
#define MIXPREC_PYTHON_RECIPE_ID(a, b) MIXPREC_PYTHON_RECIPE_ID2(a, b)
#define MIXPREC_PYTHON_REGISTER(KEY, ...)                                                                  \
  static const ::mixprec::python::registration MIXPREC_PYTHON_RECIPE_ID(mixprec_python_recipe_, __LINE__)( \
      KEY, [] { return static_cast<::mixprec::python::core*>(new ::mixprec::python::bound<__VA_ARGS__>(KEY)); })
#define MIXPREC_PYTHON_EXPORT(KEY, ...)                                                                   \
  extern "C" __attribute__((visibility("default"))) int mixprec_python_core_abi() {                       \
    return ::mixprec::python::core_abi;                                                                   \
  }                                                                                                       \
  extern "C" __attribute__((visibility("default"))) ::mixprec::python::core* mixprec_python_make_core() { \
    return new ::mixprec::python::bound<__VA_ARGS__>(KEY);                                                \
  }
