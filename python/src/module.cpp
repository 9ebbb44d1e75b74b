// The Python module of one backend (_host: Thrust's OpenMP system; _cuda:
// CUDA): the recipes compiled into it, a loader for recipes built on first
// use, and `Core`, a compiled chain with its arena, whose buffers are handed
// to Python as DLPack tensors that alias the arena (no copy).
#include <dlfcn.h>

#include <cstdint>
#include <exception>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/map.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/tuple.h>
#include <nanobind/stl/vector.h>

#if defined(MIXPREC_PYTHON_CUDA)
#include <cuda_runtime_api.h>
#endif

#include "core.hpp"

namespace nb = nanobind;
using namespace nb::literals;
namespace mp = mixprec::python;

namespace {

struct core_handle {
  std::unique_ptr<mp::core> impl;
  mp::core& operator*() const {
    if (!impl) throw std::runtime_error("mixprec: this optimizer core was released");
    return *impl;
  }
};

nb::dlpack::dtype dlpack_dtype(mp::format_code f) {
  switch (f) {
    case mp::format_code::bf16:
      return {static_cast<std::uint8_t>(nb::dlpack::dtype_code::Bfloat), 16, 1};
    case mp::format_code::f16:
      return {static_cast<std::uint8_t>(nb::dlpack::dtype_code::Float), 16, 1};
    case mp::format_code::u8:
      return {static_cast<std::uint8_t>(nb::dlpack::dtype_code::UInt), 8, 1};
    default:
      return {static_cast<std::uint8_t>(nb::dlpack::dtype_code::Float), 32, 1};
  }
}

int device_type() {
#if defined(MIXPREC_PYTHON_CUDA)
  return nb::device::cuda::value;
#else
  return nb::device::cpu::value;
#endif
}
int device_id() {
#if defined(MIXPREC_PYTHON_CUDA)
  int d = 0;
  if (cudaGetDevice(&d) != cudaSuccess) throw std::runtime_error("mixprec: cudaGetDevice failed");
  return d;
#else
  return 0;
#endif
}

// A torch tensor over device memory owned by `owner` (kept alive by the tensor).
nb::object tensor_of(const mp::buffer& b, nb::handle owner, bool scalar = false) {
  const std::size_t shape[1] = {b.count};
  nb::ndarray<nb::pytorch> a(reinterpret_cast<void*>(b.data), scalar ? 0 : 1, shape, owner, nullptr,
                             dlpack_dtype(b.format), device_type(), device_id());
  return nb::cast(a, nb::rv_policy::reference);
}

std::map<std::string, mp::core_factory>& loaded() {
  static std::map<std::string, mp::core_factory> m;
  return m;
}

// Loads a recipe built on first use (a shared library exporting the
// factory) and remembers it under `key`.
void load_recipe(const std::string& key, const std::string& path) {
  void* lib = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (lib == nullptr) throw std::runtime_error(std::string("mixprec: cannot load ") + path + ": " + dlerror());
  using abi_fn = int (*)();
  auto abi = reinterpret_cast<abi_fn>(dlsym(lib, "mixprec_python_core_abi"));
  auto make = reinterpret_cast<mp::core_factory>(dlsym(lib, "mixprec_python_make_core"));
  if (abi == nullptr || make == nullptr) {
    dlclose(lib);
    throw std::runtime_error("mixprec: " + path + " is not a mixprec recipe library");
  }
  if (abi() != mp::core_abi) {
    const int theirs = abi();
    dlclose(lib);
    throw std::runtime_error("mixprec: " + path + " was built for interface version " + std::to_string(theirs) +
                             ", this module has " + std::to_string(mp::core_abi) + " (delete the cached file)");
  }
  loaded()[key] = make;  // the library stays loaded for the life of the process
}

core_handle create(const std::string& key) {
  auto it = mp::registry().find(key);
  mp::core_factory f = nullptr;
  if (it != mp::registry().end()) f = it->second;
  else if (auto l = loaded().find(key); l != loaded().end()) f = l->second;
  if (f == nullptr) throw std::runtime_error("mixprec: recipe " + key + " is neither compiled in nor loaded");
  return core_handle{std::unique_ptr<mp::core>(f())};
}

nb::dict stats_dict(const mp::step_stats& s) {
  nb::dict d;
  d["steps"] = s.steps;
  d["skipped_steps"] = s.skipped;
  d["last_step_skipped"] = s.last_skipped;
  d["loss_scale"] = s.loss_scale;
  d["grad_norm"] = s.gradient_norm;
  d["clip_coef"] = s.clip_coefficient;
  d["zero_fraction"] = s.zero_fraction;
  d["subnormal_fraction"] = s.subnormal_fraction;
  d["recorded"] = s.recorded;
  return d;
}

}  // namespace

NB_MODULE(MIXPREC_PYTHON_MODULE, m) {
  m.doc() = "mixprec's fused mixed-precision training step (one backend)";
  // Tensors that alias an arena keep its Core alive; at interpreter exit some may still exist.
  nb::set_leak_warnings(false);
  m.attr("core_abi") = mp::core_abi;
#if defined(MIXPREC_PYTHON_CUDA)
  m.attr("backend") = "cuda";
#else
  m.attr("backend") = "host";
#endif

  nb::register_exception_translator([](const std::exception_ptr& p, void*) {
    try {
      std::rethrow_exception(p);
    } catch (const std::bad_alloc& e) {
      PyErr_SetString(PyExc_MemoryError, e.what());
    } catch (const std::runtime_error& e) {
      // The library's errors (mixprec::error, "mixprec: ...") become mixprec.Error.
      if (std::string(e.what()).rfind("mixprec:", 0) != 0) throw;
      nb::object type = nb::module_::import_("mixprec._errors").attr("Error");
      PyErr_SetString(type.ptr(), e.what());
    }
  });

  m.def(
      "recipes",
      [] {
        std::vector<std::string> keys;
        for (const auto& [k, f] : mp::registry()) keys.push_back(k);
        return keys;
      },
      "The recipes compiled into this module.");
  m.def("is_available",
        [](const std::string& key) { return mp::registry().count(key) != 0 || loaded().count(key) != 0; });
  m.def("load_recipe", &load_recipe, "key"_a, "path"_a);

  nb::class_<mp::hyper>(m, "Hyper")
      .def(nb::init<>())
      .def_rw("lr", &mp::hyper::lr)
      .def_rw("weight_decay", &mp::hyper::weight_decay)
      .def_rw("beta1", &mp::hyper::beta1)
      .def_rw("beta2", &mp::hyper::beta2)
      .def_rw("eps", &mp::hyper::eps)
      .def_rw("momentum", &mp::hyper::momentum)
      .def_rw("dampening", &mp::hyper::dampening)
      .def_rw("nesterov", &mp::hyper::nesterov)
      .def_rw("maximize", &mp::hyper::maximize)
      .def_rw("amsgrad", &mp::hyper::amsgrad)
      .def_rw("beta2_decay", &mp::hyper::beta2_decay)
      .def_rw("eps1", &mp::hyper::eps1)
      .def_rw("eps2", &mp::hyper::eps2)
      .def_rw("d", &mp::hyper::d)
      .def_rw("n_heads", &mp::hyper::n_heads)
      .def_rw("n_kv_heads", &mp::hyper::n_kv_heads)
      .def_rw("dim", &mp::hyper::dim)
      .def_rw("max_norm", &mp::hyper::max_norm)
      .def_rw("norm_type", &mp::hyper::norm_type)
      .def_rw("ema_decay", &mp::hyper::ema_decay)
      .def_rw("ema_warmup", &mp::hyper::ema_warmup)
      .def_rw("static_scale", &mp::hyper::static_scale)
      .def_rw("init_scale", &mp::hyper::init_scale)
      .def_rw("growth_factor", &mp::hyper::growth_factor)
      .def_rw("backoff_factor", &mp::hyper::backoff_factor)
      .def_rw("growth_interval", &mp::hyper::growth_interval)
      .def_rw("hysteresis", &mp::hyper::hysteresis)
      .def_rw("min_scale", &mp::hyper::min_scale)
      .def_rw("max_scale", &mp::hyper::max_scale)
      .def_rw("seed", &mp::hyper::seed)
      .def_rw("grad_scale", &mp::hyper::grad_scale)
      .def_rw("found_inf", &mp::hyper::found_inf)
      .def("copy", [](const mp::hyper& h) { return h; });

  nb::class_<core_handle>(m, "Core")
      .def_static("create", &create, "key"_a)
      .def_prop_ro("recipe", [](const core_handle& c) { return (*c).recipe(); })
      .def_prop_ro("has_master", [](const core_handle& c) { return (*c).has_master(); })
      .def("build", [](core_handle& c, const std::vector<std::string>& names,
                       const std::vector<std::vector<std::size_t>>& shapes,
                       const std::vector<std::string>& groups) { (*c).build(names, shapes, groups); })
      .def("offsets", [](const core_handle& c) { return (*c).offsets(); })
      .def("buffer",
           [](nb::handle self, const std::string& role) -> nb::object {
             mp::core& c = *nb::cast<core_handle&>(self);
             const mp::buffer b = role == "master" ? c.master() : role == "model" ? c.model() : c.grad();
             if (role != "master" && role != "model" && role != "grad")
               throw nb::value_error("buffer: role is 'master', 'model' or 'grad'");
             if (b.count == 0) return nb::none();
             return tensor_of(b, self);
           })
      .def("loss_scale_tensor",
           [](nb::handle self) {
             mp::core& c = *nb::cast<core_handle&>(self);
             return tensor_of({c.loss_scale_address(), 1, mp::format_code::f32}, self, true);
           })
      .def("init", [](core_handle& c, const mp::hyper& h, std::uintptr_t s) { (*c).init(h, s); })
      .def("describe", [](const core_handle& c) { return (*c).describe(); })
      .def("state_bytes", [](const core_handle& c) { return (*c).state_bytes(); })
      .def("group_names", [](const core_handle& c) { return (*c).group_names(); })
      .def("set_group", [](core_handle& c, const std::string& g, float lr, float wd,
                           std::uintptr_t s) { (*c).set_group(g, lr, wd, s); })
      .def("validate", [](core_handle& c, const mp::hyper& h) { (*c).validate(h); })
      .def("step",
           [](core_handle& c, const mp::hyper& h, std::uintptr_t s) {
             mp::core& impl = *c;
             nb::gil_scoped_release release;
             impl.step(h, s);
           })
      .def("zero_grad", [](core_handle& c, std::uintptr_t s) { (*c).zero_grad(s); })
      .def("synchronize",
           [](const core_handle& c, std::uintptr_t s) {
             const mp::core& impl = *c;
             nb::gil_scoped_release release;
             impl.synchronize(s);
           })
      .def("stats", [](const core_handle& c, std::uintptr_t s) { return stats_dict((*c).stats(s)); })
      .def("fields",
           [](nb::handle self) {
             mp::core& c = *nb::cast<core_handle&>(self);
             nb::list out;
             for (const mp::field_info& f : c.fields()) {
               nb::dict d;
               d["path"] = f.path;
               d["name"] = f.name;
               d["extent"] = f.extent;
               d["saved"] = f.saved;
               d["format"] = f.format;
               d["data"] = tensor_of(f.data, self);
               d["base"] = f.base;
               d["count"] = f.count;
               d["block"] = f.block;
               d["scales"] = f.block != 0 ? tensor_of(f.scales, self) : nb::none();
               d["scale_base"] = f.scale_base;
               d["scale_count"] = f.scale_count;
               out.append(d);
             }
             return out;
           })
      .def("scalars",
           [](const core_handle& c, std::uintptr_t s) {
             nb::list out;
             for (const mp::scalar_value& v : (*c).scalars(s))
               out.append(nb::make_tuple(v.path, v.name, v.kind,
                                         nb::bytes(reinterpret_cast<const char*>(v.bytes.data()), v.bytes.size())));
             return out;
           })
      .def("set_scalars",
           [](core_handle& c, const nb::list& values, std::uint64_t steps, std::uint64_t skipped, std::uintptr_t s) {
             std::vector<mp::scalar_value> v;
             for (nb::handle x : values) {
               auto t = nb::cast<nb::tuple>(x);
               mp::scalar_value sv;
               sv.path = nb::cast<std::string>(t[0]);
               sv.name = nb::cast<std::string>(t[1]);
               sv.kind = nb::cast<int>(t[2]);
               auto b = nb::cast<nb::bytes>(t[3]);
               sv.bytes.assign(reinterpret_cast<const std::uint8_t*>(b.c_str()),
                               reinterpret_cast<const std::uint8_t*>(b.c_str()) + b.size());
               v.push_back(std::move(sv));
             }
             (*c).set_scalars(v, steps, skipped, s);
           })
      .def("save_checkpoint",
           [](core_handle& c, const std::string& path, const mp::hyper& h,
              const std::map<std::string, std::string>& meta, std::uintptr_t s) {
             mp::core& impl = *c;
             nb::gil_scoped_release release;
             impl.save_checkpoint(path, h, meta, s);
           })
      .def("load_checkpoint",
           [](core_handle& c, const std::string& path, const mp::hyper& h, std::uintptr_t s) {
             mp::core& impl = *c;
             std::map<std::string, std::string> meta;
             {
               nb::gil_scoped_release release;
               meta = impl.load_checkpoint(path, h, s);
             }
             nb::dict d;
             for (const auto& [k, v] : meta) d[k.c_str()] = nb::bytes(v.data(), v.size());
             return d;
           })
      .def("save_safetensors", [](core_handle& c, const std::string& path, const std::string& role,
                                  const std::map<std::string, std::string>& meta, std::uintptr_t s) {
        const int r = role == "master" ? 0 : role == "model" ? 1 : role == "grad" ? 2 : -1;
        if (r < 0) throw nb::value_error("save_safetensors: role is 'master', 'model' or 'grad'");
        mp::core& impl = *c;
        nb::gil_scoped_release release;
        impl.save_safetensors(path, r, meta, s);
      });
}
