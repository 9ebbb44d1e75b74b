// Checkpoints: a round trip restores every byte of parameters and state, and
// a resumed run continues bit for bit; every malformed file (truncated at
// several offsets, any flipped byte, wrong magic or version, mismatched
// names, shapes, formats or chain) raises an error that says what did not
// match and changes nothing; a failed write leaves the previous file intact.
#include <sys/resource.h>
#include <sys/stat.h>
#include <algorithm>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <limits>
#include <string>
#include <thread>
#include <vector>

#include <doctest/doctest.h>

#include <mixprec/mixprec.hpp>

#include "../support/errors.hpp"
#include "../support/files.hpp"
#include "../support/synthetic.hpp"

using namespace mixprec;

namespace {

using arena = parameters<bfloat16, half>;

void build(arena& p) {
  p.add("fc1.weight", {16, 8});
  p.add("fc1.bias", {16}, "no_decay");
  p.add("fc2.weight", {4, 16});
  p.finalize();
  p.initialize_all(init::kaiming_uniform{}, 3);
}

auto make_chain() {
  dynamic_loss_scale scaler;
  scaler.init_scale = 256.0f;
  scaler.growth_interval = 3;
  adamw_options o;
  o.lr = 1e-2f;
  return chain(scaler, clip_by_global_norm{1.0f}, adamw(o), round_model_stochastic{5});
}

template <class Arena>
void write_gradients(Arena& p, int t) {
  std::vector<half> g(p.padded_size());
  for (std::size_t i = 0; i < g.size(); ++i) g[i] = convert<half>(64.0f * test::unit_value(t * 1000003ull + i));
  if (t % 4 == 2) g[5] = convert<half>(INFINITY);  // some steps overflow
  detail::write_to_device(g.data(), p.grad_data(), g.size());
}

std::string temp_path(const char* name) { return std::string("/tmp/mixprec_test_") + name; }

// A trace m <- m / 2 + u (saved) beside, by variant: a scratch field
// recomputed every step (0), nothing (1), a second saved field (2).
template <int V>
struct trace_fields;
template <>
struct trace_fields<0> {
  static constexpr state_field state[] = {{"m", format_id::f32},
                                          {"scratch", format_id::f32, extent::element, parameter_set::all, false}};
};
template <>
struct trace_fields<1> {
  static constexpr state_field state[] = {{"m", format_id::f32}};
};
template <>
struct trace_fields<2> {
  static constexpr state_field state[] = {{"m", format_id::f32}, {"extra", format_id::f32}};
};
template <int V>
struct trace_beside : trace_fields<V> {
  static constexpr const char* name = "trace_beside";
  template <class Ctx>
  MIXPREC_HOST_DEVICE float update(float u, const Ctx& ctx) const {
    if constexpr (V != 1) ctx.state(field_id<1>{}).update([&](float) { return u; });
    return ctx.state(field_id<0>{}).update([&](float old) { return 0.5f * old + u; });
  }
};

template <class Arena>
void trace_gradients(Arena& p, int t) {
  std::vector<float> g(p.padded_size());
  for (std::size_t i = 0; i < g.size(); ++i) g[i] = test::unit_value(t * 7919ull + i);
  detail::write_to_device(g.data(), p.grad_data(), g.size());
}
void trace_arena(parameters<float>& p) {
  p.add("w", {8, 4});
  p.add("b", {8});
  p.finalize();
  p.initialize_all(init::kaiming_uniform{}, 9);
}

// Editing checkpoints as a crafted file would: the bytes of a value, then
// the checksum recomputed so that only the value's check can refuse it.
void reseal(std::vector<std::uint8_t>& bytes) {
  const std::uint32_t crc = detail::crc32(bytes.data(), bytes.size() - 4);
  std::memcpy(bytes.data() + bytes.size() - 4, &crc, 4);
}
// Where the `occurrence`-th length-prefixed string `name` ends (-1: the last).
std::size_t after_name(const std::vector<std::uint8_t>& bytes, const std::string& name, int occurrence) {
  std::vector<std::uint8_t> pattern(4 + name.size());
  const auto n = static_cast<std::uint32_t>(name.size());
  std::memcpy(pattern.data(), &n, 4);
  std::memcpy(pattern.data() + 4, name.data(), name.size());
  std::vector<std::size_t> found;
  for (auto it = bytes.begin(); (it = std::search(it, bytes.end(), pattern.begin(), pattern.end())) != bytes.end();
       ++it)
    found.push_back(static_cast<std::size_t>(it - bytes.begin()) + pattern.size());
  REQUIRE(found.size() > static_cast<std::size_t>(occurrence < 0 ? 0 : occurrence));
  return occurrence < 0 ? found.back() : found[static_cast<std::size_t>(occurrence)];
}
// A checkpoint with the `occurrence`-th scalar or hyperparameter `name` set
// to x (values are name, u8 kind, bytes; the kind must match T).
template <class T>
std::vector<std::uint8_t> with_value(std::vector<std::uint8_t> bytes, const std::string& name, T x,
                                     int occurrence = 0) {
  std::size_t at = after_name(bytes, name, occurrence);
  REQUIRE(bytes[at] == static_cast<std::uint8_t>(detail::kind_of<T>()));
  std::memcpy(bytes.data() + at + 1, &x, sizeof x);
  reseal(bytes);
  return bytes;
}
// A checkpoint with group `name`'s multipliers set (the groups section is
// after the arena's, which names groups too: the last occurrence).
std::vector<std::uint8_t> with_group(std::vector<std::uint8_t> bytes, const std::string& name, float lr, float wd) {
  const std::size_t at = after_name(bytes, name, -1);
  std::memcpy(bytes.data() + at, &lr, 4);
  std::memcpy(bytes.data() + at + 4, &wd, 4);
  reseal(bytes);
  return bytes;
}

// Runs `step` for two steps on the test arena, saves, runs one more, then
// loads `edit(saved bytes)`; returns the error and whether nothing changed.
struct load_result {
  std::string message;
  bool unchanged;
};
template <class Chain, class Edit>
load_result load_edited(const Chain& step, Edit&& edit, checkpoint_options options = {}) {
  arena p;
  build(p);
  auto state = step.init(p);
  state.set_group("no_decay", {1.0f, 0.0f});
  for (int t = 1; t <= 3; t += 2) {  // odd steps: finite gradients
    write_gradients(p, t);
    step.apply(p, state);
  }
  const std::vector<std::uint8_t> bytes = edit(serialize_checkpoint(step, p, state));
  write_gradients(p, 5);
  step.apply(p, state);
  const std::vector<std::uint8_t> before = serialize_checkpoint(step, p, state);
  load_result r;
  r.message = test::error_message([&] { deserialize_checkpoint(bytes.data(), bytes.size(), step, p, state, options); });
  r.unchanged = serialize_checkpoint(step, p, state) == before;
  return r;
}
template <class Chain, class T>
load_result load_with_value(const Chain& step, const std::string& name, T x, int occurrence = 0) {
  return load_edited(step, [&](std::vector<std::uint8_t> b) { return with_value(std::move(b), name, x, occurrence); });
}

}  // namespace

TEST_SUITE("io") {
  TEST_CASE("a checkpoint round trip restores everything and resuming is bit-identical") {
    const auto step = make_chain();
    arena a;
    build(a);
    auto sa = step.init(a);
    sa.set_group("no_decay", {1.0f, 0.0f});
    for (int t = 1; t <= 7; ++t) {
      write_gradients(a, t);
      step.apply(a, sa);
    }
    const std::string path = temp_path("roundtrip.ckpt");
    save_checkpoint(path, step, a, sa);
    const std::vector<std::uint8_t> saved = serialize_checkpoint(step, a, sa);
    // Continue the original run.
    for (int t = 8; t <= 15; ++t) {
      write_gradients(a, t);
      step.apply(a, sa);
    }
    // A fresh process-like start: new arena and state, loaded from the file.
    arena b;
    build(b);
    b.initialize_all(init::zeros{}, 0);
    auto sb = step.init(b);
    load_checkpoint(path, step, b, sb);
    CHECK(serialize_checkpoint(step, b, sb) == saved);
    for (int t = 8; t <= 15; ++t) {
      write_gradients(b, t);
      step.apply(b, sb);
    }
    CHECK(serialize_checkpoint(step, b, sb) == serialize_checkpoint(step, a, sa));
    CHECK(sb.count() == sa.count());
    CHECK(sb.step().skipped_total > 0);
    std::remove(path.c_str());
  }

  TEST_CASE("malformed checkpoints raise clear errors and change nothing") {
    const auto step = make_chain();
    arena p;
    build(p);
    auto state = step.init(p);
    write_gradients(p, 1);
    step.apply(p, state);
    const std::vector<std::uint8_t> good = serialize_checkpoint(step, p, state);
    // Move the arena on so that a wrongful load would show.
    write_gradients(p, 3);
    step.apply(p, state);
    const std::vector<std::uint8_t> before = serialize_checkpoint(step, p, state);
    auto load = [&](std::vector<std::uint8_t> bytes) {
      return test::error_message([&] { deserialize_checkpoint(bytes.data(), bytes.size(), step, p, state); });
    };
    auto unchanged = [&] { return serialize_checkpoint(step, p, state) == before; };

    SUBCASE("truncated at several offsets") {
      for (std::size_t keep : {std::size_t{0}, std::size_t{5}, std::size_t{23}, std::size_t{24}, std::size_t{60},
                               good.size() / 2, good.size() - 5, good.size() - 1}) {
        const std::string msg = load({good.begin(), good.begin() + keep});
        INFO("kept " << keep << " of " << good.size() << " bytes: " << msg);
        CHECK(test::contains(msg, "truncated"));
        CHECK(unchanged());
      }
    }
    SUBCASE("every flipped byte is caught") {
      std::size_t caught = 0;
      for (std::size_t at = 0; at < good.size(); ++at) {
        std::vector<std::uint8_t> bad = good;
        bad[at] ^= 0x5a;
        const std::string msg = load(bad);
        caught += test::contains(msg, "mixprec:");
      }
      CHECK(caught == good.size());
      CHECK(unchanged());
    }
    SUBCASE("wrong magic and wrong version") {
      std::vector<std::uint8_t> bad = good;
      bad[0] = 'X';
      CHECK(test::contains(load(bad), "not a mixprec checkpoint"));
      bad = good;
      bad[8] = 4;  // version 4, with a valid checksum
      const std::uint32_t crc = detail::crc32(bad.data(), bad.size() - 4);
      std::memcpy(bad.data() + bad.size() - 4, &crc, 4);
      CHECK(test::contains(load(bad), "unsupported checkpoint version 4 (this build reads versions 1 to 3)"));
      CHECK(unchanged());
    }
    SUBCASE("a corrupted byte in the data section") {
      std::vector<std::uint8_t> bad = good;
      bad[good.size() - 10] ^= 1;
      CHECK(test::contains(load(bad), "checksum mismatch"));
      CHECK(unchanged());
    }
  }

  TEST_CASE("checkpoints of another arena or chain are rejected with what differs") {
    const auto step = make_chain();
    arena p;
    build(p);
    auto state = step.init(p);
    const std::string path = temp_path("mismatch.ckpt");
    save_checkpoint(path, step, p, state);

    SUBCASE("another parameter name") {
      arena q;
      q.add("fc1.weight", {16, 8});
      q.add("fc1.b", {16}, "no_decay");
      q.add("fc2.weight", {4, 16});
      q.finalize();
      auto sq = step.init(q);
      CHECK(test::contains(test::error_message([&] { load_checkpoint(path, step, q, sq); }),
                           "parameter 1 is \"fc1.bias\" in the checkpoint but \"fc1.b\" in this arena"));
    }
    SUBCASE("another shape") {
      arena q;
      q.add("fc1.weight", {8, 16});
      q.add("fc1.bias", {16}, "no_decay");
      q.add("fc2.weight", {4, 16});
      q.finalize();
      auto sq = step.init(q);
      CHECK(test::contains(test::error_message([&] { load_checkpoint(path, step, q, sq); }),
                           "\"fc1.weight\" has shape [16, 8] in the checkpoint but [8, 16] in this arena"));
    }
    SUBCASE("another format") {
      parameters<half, half> q;
      q.add("fc1.weight", {16, 8});
      q.add("fc1.bias", {16}, "no_decay");
      q.add("fc2.weight", {4, 16});
      q.finalize();
      auto sq = step.init(q);
      CHECK(test::contains(test::error_message([&] { load_checkpoint(path, step, q, sq); }),
                           "checkpoint model copy is bfloat16 but this arena's is half"));
    }
    SUBCASE("another chain: named as the user composed it") {
      arena q;
      build(q);
      const auto other =
          chain(dynamic_loss_scale{}, clip_by_global_norm{1.0f}, adam(adam_options{}), round_model_stochastic{5});
      auto sq = other.init(q);
      const std::vector<std::uint8_t> before = serialize_checkpoint(other, q, sq);
      CHECK(
          test::contains(test::error_message([&] { load_checkpoint(path, other, q, sq); }),
                         "checkpoint chain is [dynamic_loss_scale, clip_by_global_norm, adamw, round_model_stochastic] "
                         "but this chain is [dynamic_loss_scale, clip_by_global_norm, adam, round_model_stochastic]: "
                         "component 3 is adamw/scale_by_constant in the checkpoint but adam/scale_by_constant here"));
      CHECK(serialize_checkpoint(other, q, sq) == before);
      const auto shorter = chain(dynamic_loss_scale{}, lion(lion_options{}));
      auto ss = shorter.init(q);
      CHECK(
          test::contains(test::error_message([&] { load_checkpoint(path, shorter, q, ss); }),
                         "checkpoint chain is [dynamic_loss_scale, clip_by_global_norm, adamw, round_model_stochastic] "
                         "but this chain is [dynamic_loss_scale, lion]"));
    }
    SUBCASE("the same chain with other hyperparameters, refused unless asked") {
      arena q;
      build(q);
      dynamic_loss_scale scaler;
      scaler.init_scale = 256.0f;
      scaler.growth_interval = 3;
      adamw_options o;
      o.lr = 2e-2f;
      const auto other = chain(scaler, clip_by_global_norm{1.0f}, adamw(o), round_model_stochastic{5});
      auto sq = other.init(q);
      const std::vector<std::uint8_t> before = serialize_checkpoint(other, q, sq);
      CHECK(test::contains(test::error_message([&] { load_checkpoint(path, other, q, sq); }),
                           "hyperparameter adamw/decoupled_weight_decay.lr.value is 0.01 in the checkpoint but 0.02 in "
                           "this chain (pass checkpoint_options{true} to take the new value)"));
      CHECK(serialize_checkpoint(other, q, sq) == before);
      load_checkpoint(path, other, q, sq, checkpoint_options{true});
      CHECK(sq.count() == state.count());
    }
    SUBCASE("the same chain with other state options") {
      arena q;
      build(q);
      dynamic_loss_scale scaler;
      scaler.init_scale = 256.0f;
      scaler.growth_interval = 3;
      adamw_options o;
      o.lr = 1e-2f;
      o.amsgrad = true;
      const auto other = chain(scaler, clip_by_global_norm{1.0f}, adamw(o), round_model_stochastic{5});
      auto sq = other.init(q);
      CHECK(test::contains(test::error_message([&] { load_checkpoint(path, other, q, sq); }),
                           "hyperparameter adamw/scale_by_adam.amsgrad is false in the checkpoint but true"));
      CHECK(test::contains(test::error_message([&] { load_checkpoint(path, other, q, sq, checkpoint_options{true}); }),
                           "state field adamw/scale_by_adam.max_exp_avg_sq is not in the checkpoint but used here"));
    }
    std::remove(path.c_str());
  }

  TEST_CASE("a field recomputed every step may be added or dropped and earlier checkpoints still load") {
    sgd_options o;
    o.lr = 0.1f;
    const auto with = chain(trace_beside<0>{}, sgd(o));
    const auto without = chain(trace_beside<1>{}, sgd(o));
    parameters<float> p, q;
    trace_arena(p);
    trace_arena(q);
    auto sw = with.init(p);
    for (int t = 0; t < 3; ++t) trace_gradients(p, t), with.apply(p, sw);
    const std::string path = temp_path("recomputed_field.ckpt");
    save_checkpoint(path, with, p, sw);
    // One more step in the chain that saved and in one without the field
    // that loaded its checkpoint: the same weights, bit for bit.
    auto so = without.init(q);
    load_checkpoint(path, without, q, so);
    trace_gradients(p, 3), with.apply(p, sw);
    trace_gradients(q, 3), without.apply(q, so);
    for (std::size_t k = 0; k < 2; ++k) CHECK(q.to_host(role::master, k) == p.to_host(role::master, k));
    // And back: the chain without the field saves, one with it loads.
    save_checkpoint(path, without, q, so);
    auto sw2 = with.init(p);
    load_checkpoint(path, with, p, sw2);
    CHECK(sw2.count() == 4);
    // A saved field that this chain lacks is still refused.
    const auto extra = chain(trace_beside<2>{}, sgd(o));
    auto se = extra.init(q);
    save_checkpoint(path, extra, q, se);
    CHECK(test::contains(test::error_message([&] { load_checkpoint(path, without, q, so); }),
                         "state field trace_beside.extra of the checkpoint is unknown to this chain"));
    CHECK(test::contains(test::error_message([&] { load_checkpoint(path, with, p, sw2); }),
                         "state field trace_beside.extra of the checkpoint is unknown to this chain"));
    std::remove(path.c_str());
  }

  TEST_CASE("a state that init() made for another arena is refused on load as on save") {
    const auto step = make_chain();
    arena p;
    build(p);
    auto state = step.init(p);
    write_gradients(p, 1);
    step.apply(p, state);
    const std::string path = temp_path("other_arena.ckpt");
    save_checkpoint(path, step, p, state);
    write_gradients(p, 3);  // move on, so that a wrongful load would show
    step.apply(p, state);

    // The same sizes under another name, and a smaller arena (whose state
    // buffers the file's data would overflow).
    arena renamed, small;
    renamed.add("fc1.weight", {16, 8});
    renamed.add("fc1.bias", {16}, "no_decay");
    renamed.add("fc2.kernel", {4, 16});
    renamed.finalize();
    small.add("w", {3});
    small.finalize();
    auto s_renamed = step.init(renamed);
    auto s_small = step.init(small);
    const std::vector<std::uint8_t> renamed_before = serialize_checkpoint(step, renamed, s_renamed);
    const std::vector<std::uint8_t> small_before = serialize_checkpoint(step, small, s_small);
    const std::vector<float> weights_before = p.to_host(role::master);
    const std::string expected = "load_checkpoint: the state was made by init() for another parameter arena";
    CHECK(test::contains(test::error_message([&] { load_checkpoint(path, step, p, s_renamed); }), expected));
    CHECK(test::contains(test::error_message([&] { load_checkpoint(path, step, p, s_small); }), expected));
    CHECK(test::contains(
        test::error_message([&] { load_checkpoint(std::vector<std::string>{path}, step, p, s_small); }), expected));
    const std::vector<std::uint8_t> bytes = test::file_bytes(path);
    CHECK(test::contains(
        test::error_message([&] { deserialize_checkpoint(bytes.data(), bytes.size(), step, p, s_small); }), expected));
    // Save refuses the same pair.
    CHECK(test::contains(test::error_message([&] { save_checkpoint(path + ".2", step, p, s_small); }),
                         "save_checkpoint: the state was made by init() for another parameter arena"));
    CHECK(p.to_host(role::master) == weights_before);
    CHECK(serialize_checkpoint(step, renamed, s_renamed) == renamed_before);
    CHECK(serialize_checkpoint(step, small, s_small) == small_before);
    std::remove(path.c_str());
  }

  TEST_CASE("values a checkpoint carries are refused on load where init() or set_group would refuse them") {
    const auto step = make_chain();  // dynamic_loss_scale, clip_by_global_norm, adamw, round_model_stochastic
    const float inf = std::numeric_limits<float>::infinity(), nan = std::numeric_limits<float>::quiet_NaN();
    auto refused = [](const load_result& r, const char* expected) {
      INFO(r.message);
      CHECK(test::contains(r.message, expected));
      CHECK(r.unchanged);
    };
    SUBCASE("the unedited file loads") {
      const load_result r = load_edited(step, [](std::vector<std::uint8_t> b) { return b; });
      CHECK(r.message == "<no exception>");
    }
    SUBCASE("group multipliers: as set_group, finite and non-negative") {
      const char* expected = "checkpoint: group \"no_decay\" has lr_scale ";
      for (const group_hyper& g :
           {group_hyper{nan, 0.0f}, group_hyper{-1.0f, 0.0f}, group_hyper{1.0f, inf}, group_hyper{1.0f, -0.5f}}) {
        CAPTURE(g.lr_scale);
        CAPTURE(g.weight_decay_scale);
        refused(load_edited(step,
                            [&](std::vector<std::uint8_t> b) {
                              return with_group(std::move(b), "no_decay", g.lr_scale, g.weight_decay_scale);
                            }),
                expected);
      }
    }
    SUBCASE("dynamic_loss_scale: a scale the scaler never holds") {
      for (float bad : {0.0f, -inf, inf, nan, -2.0f, 0x1p-127f}) {
        CAPTURE(bad);
        refused(load_with_value(step, "scale", bad), "dynamic_loss_scale: the checkpoint's loss scale");
      }
      refused(load_with_value(step, "inv_scale", 1.0f), "is not the reciprocal of its loss scale");
      refused(load_with_value(step, "growth_tracker", std::uint32_t{3}), "growth tracker 3");
      refused(load_with_value(step, "hysteresis_left", std::uint32_t{0}), "hysteresis left 0");
      // Outside [min_scale, max_scale] of the hyperparameters it was saved with.
      dynamic_loss_scale bounded;
      bounded.init_scale = 256.0f;
      bounded.min_scale = 1.0f;
      bounded.max_scale = 4096.0f;
      const auto capped = chain(bounded, adamw(adamw_options{}));
      for (float bad : {0.5f, 8192.0f}) {
        CAPTURE(bad);
        refused(load_edited(capped,
                            [&](std::vector<std::uint8_t> b) {
                              b = with_value(std::move(b), "inv_scale", static_cast<float>(1.0 / bad));
                              return with_value(std::move(b), "scale", bad);
                            }),
                "lies outside [min_scale, max_scale] = [1, 4096] of the hyperparameters it was saved with");
      }
    }
    SUBCASE("clip_by_global_norm, adamw: scalars no step produces") {
      refused(load_with_value(step, "coef", 2.0f), "clip_by_global_norm: the checkpoint's coefficient 2");
      refused(load_with_value(step, "norm", -1.0f), "clip_by_global_norm: the checkpoint's norm -1");
      refused(load_with_value(step, "bias_correction1", 0.0f), "scale_by_adam: the checkpoint's bias corrections");
      refused(load_with_value(step, "bias_correction2_sqrt", nan), "scale_by_adam: the checkpoint's bias corrections");
      for (int k : {0, 1}) {  // decoupled_weight_decay's, then scale_by_learning_rate's
        CAPTURE(k);
        refused(load_with_value(step, "lr", nan, k), "the checkpoint's learning rate nan");
        refused(load_with_value(step, "lr", -1.0f, k), "the checkpoint's learning rate -1");
      }
    }
    SUBCASE("adafactor, adam_mini, ema_of_weights, every_k, static_loss_scale") {
      adafactor_options af;
      refused(load_with_value(chain(adafactor(af)), "weight", nan),
              "scale_by_factored_rms: the checkpoint's weight nan");
      refused(load_with_value(chain(adafactor(af)), "rho", -1.0),
              "scale_by_relative_step: the checkpoint's step size -1");
      refused(load_with_value(chain(adam_mini(adam_mini_options{})), "inverse_bias_correction1", 0.5f),
              "scale_by_adam_mini: the checkpoint's inverse bias correction 0.5");
      refused(load_with_value(chain(adamw(adamw_options{}), ema_of_weights{0.99}), "decay", 1.5f, 1),
              "ema_of_weights: the checkpoint's decay 1.5");
      refused(load_with_value(chain(every_k{4}, adamw(adamw_options{})), "phase", std::uint32_t{5}),
              "every_k: the checkpoint's micro-batch 5 of a group of k = 4");
      const auto fixed = chain(static_loss_scale{128.0f}, sgd(sgd_options{}));
      refused(load_with_value(fixed, "scale", 64.0f, 1), "static_loss_scale: the checkpoint's scale 64");
    }
    SUBCASE("hyperparameters: the file's, when new ones are taken, and this chain's, as init() checks them") {
      // The file's own hyperparameters are checked as init() would check them.
      refused(load_edited(
                  step, [](std::vector<std::uint8_t> b) { return with_value(std::move(b), "growth_factor", 0.5); },
                  checkpoint_options{true}),
              "growth_factor must be finite and greater than 1 (got 0.5)");
      // A chain of the same type whose own values init() would refuse.
      dynamic_loss_scale bad;
      bad.max_scale = 0.5f;  // below init_scale
      const auto other = chain(bad, clip_by_global_norm{1.0f}, adamw(adamw_options{}), round_model_stochastic{5});
      arena p;
      build(p);
      auto state = step.init(p);
      const std::vector<std::uint8_t> saved = serialize_checkpoint(step, p, state);
      write_gradients(p, 1);
      step.apply(p, state);
      const std::vector<std::uint8_t> before = serialize_checkpoint(step, p, state);
      const std::string msg = test::error_message(
          [&] { deserialize_checkpoint(saved.data(), saved.size(), other, p, state, checkpoint_options{true}); });
      CHECK(test::contains(msg, "dynamic_loss_scale: init_scale 65536 lies outside [min_scale, max_scale]"));
      CHECK(serialize_checkpoint(step, p, state) == before);
    }
  }

  TEST_CASE("resuming with new hyperparameters brings the state within them") {
    arena p;
    build(p);
    SUBCASE("a lowered max_scale: the loss scale is clamped to it, as the scaler clamps a grown scale") {
      dynamic_loss_scale scaler;
      scaler.init_scale = 256.0f;
      scaler.growth_interval = 1;
      const auto step = chain(scaler, adamw(adamw_options{}));
      auto state = step.init(p);
      for (int t = 1; t <= 9; t += 2) {
        write_gradients(p, t);
        step.apply(p, state);
      }
      REQUIRE(state.loss_scale() == 256.0f * 32);
      const std::vector<std::uint8_t> saved = serialize_checkpoint(step, p, state);
      scaler.max_scale = 1000.0f;
      const auto lowered = chain(scaler, adamw(adamw_options{}));
      arena q;
      build(q);
      auto sq = lowered.init(q);
      deserialize_checkpoint(saved.data(), saved.size(), lowered, q, sq, checkpoint_options{true});
      CHECK(sq.loss_scale() == 1000.0f);
      CHECK(sq.scalars<0>().inv_scale == static_cast<float>(1.0 / 1000.0));
      write_gradients(q, 11);
      lowered.apply(q, sq);
      CHECK(sq.loss_scale() == 1000.0f);
      // A raised min_scale lifts it.
      scaler.max_scale = std::numeric_limits<float>::infinity();
      scaler.min_scale = 16384.0f;
      scaler.init_scale = 16384.0f;
      const auto raised = chain(scaler, adamw(adamw_options{}));
      auto sr = raised.init(q);
      deserialize_checkpoint(saved.data(), saved.size(), raised, q, sr, checkpoint_options{true});
      CHECK(sr.loss_scale() == 16384.0f);
    }
    SUBCASE("static_loss_scale: the new scale applies") {
      const auto step = chain(static_loss_scale{128.0f}, sgd(sgd_options{}));
      auto state = step.init(p);
      const std::vector<std::uint8_t> saved = serialize_checkpoint(step, p, state);
      const auto other = chain(static_loss_scale{512.0f}, sgd(sgd_options{}));
      auto so = other.init(p);
      deserialize_checkpoint(saved.data(), saved.size(), other, p, so, checkpoint_options{true});
      CHECK(so.loss_scale() == 512.0f);
      CHECK(so.scalars<0>().inv_scale == 1.0f / 512.0f);
    }
    SUBCASE("every_k: another k continues from the end of a group, and refuses the middle of one") {
      const auto four = chain(every_k{4}, adamw(adamw_options{}));
      auto state = four.init(p);
      for (int t = 1; t <= 4; ++t) {
        write_gradients(p, 2 * t + 1);
        four.apply(p, state);
      }
      REQUIRE(state.count() == 1);
      const std::vector<std::uint8_t> boundary = serialize_checkpoint(four, p, state);
      for (int t = 5; t <= 6; ++t) {
        write_gradients(p, 2 * t + 1);
        four.apply(p, state);
      }
      const std::vector<std::uint8_t> middle = serialize_checkpoint(four, p, state);
      for (std::uint32_t k : {2u, 8u}) {
        CAPTURE(k);
        const auto other = chain(every_k{k}, adamw(adamw_options{}));
        arena q;
        build(q);
        auto sq = other.init(q);
        deserialize_checkpoint(boundary.data(), boundary.size(), other, q, sq, checkpoint_options{true});
        // A whole new group of k micro-batches makes the next step, not fewer.
        for (std::uint32_t t = 1; t < k; ++t) {
          write_gradients(q, 2 * static_cast<int>(t) + 1);
          other.apply(q, sq);
        }
        CHECK(sq.count() == 1);
        write_gradients(q, 3);
        other.apply(q, sq);
        CHECK(sq.count() == 2);
        const std::vector<std::uint8_t> before = serialize_checkpoint(other, q, sq);
        CHECK(test::contains(test::error_message([&] {
                               deserialize_checkpoint(middle.data(), middle.size(), other, q, sq,
                                                      checkpoint_options{true});
                             }),
                             "every_k: the checkpoint was saved after micro-batch 2 of a group of 4"));
        CHECK(serialize_checkpoint(other, q, sq) == before);
      }
    }
  }

  TEST_CASE("user metadata is saved and returned") {
    const auto step = make_chain();
    arena p;
    build(p);
    auto state = step.init(p);
    const std::string path = temp_path("metadata.ckpt");
    std::string binary("a\0b", 3);
    save_checkpoint(path, step, p, state, {{"epoch", "3"}, {"loader", "shard 7, offset 1234"}, {"bytes", binary}});
    const checkpoint_metadata m = load_checkpoint(path, step, p, state);
    CHECK(m.size() == 3);
    CHECK(m.at("epoch") == "3");
    CHECK(m.at("loader") == "shard 7, offset 1234");
    CHECK(m.at("bytes") == binary);
    std::remove(path.c_str());
  }

  TEST_CASE("a version-1 checkpoint loads and equals the same run in this version") {
    // tests/data/checkpoint_v1.ckpt: seven steps of this chain on this arena,
    // written by mixprec 0.1 (tests/data/README.md).
    const auto step = make_chain();
    arena old, fresh;
    build(old);
    build(fresh);
    old.initialize_all(init::zeros{}, 0);
    auto so = step.init(old);
    auto sf = step.init(fresh);
    sf.set_group("no_decay", {1.0f, 0.0f});
    for (int t = 1; t <= 7; ++t) {
      write_gradients(fresh, t);
      step.apply(fresh, sf);
    }
    const checkpoint_metadata m =
        load_checkpoint(std::string(MIXPREC_TEST_DATA_DIR) + "/checkpoint_v1.ckpt", step, old, so);
    CHECK(m.empty());
    CHECK(so.count() == 5);
    CHECK(so.step().skipped_total == 2);
    // mixprec 0.1 drew one Philox block per element for stochastic rounding,
    // this version one per 8 elements: the file's model copy was rounded with
    // other bits. Everything else, and everything after the next step, agrees.
    CHECK(old.to_host(role::master) == fresh.to_host(role::master));
    std::vector<bfloat16> copy(fresh.padded_size());
    detail::copy_to_host(fresh.model_data(), copy.data(), copy.size());
    detail::write_to_device(copy.data(), old.model_data(), copy.size());
    CHECK(serialize_checkpoint(step, old, so) == serialize_checkpoint(step, fresh, sf));
    // And both continue identically.
    for (int t = 8; t <= 12; ++t) {
      write_gradients(old, t);
      write_gradients(fresh, t);
      step.apply(old, so);
      step.apply(fresh, sf);
    }
    CHECK(serialize_checkpoint(step, old, so) == serialize_checkpoint(step, fresh, sf));
    // A version-1 file into another chain: the user's names in the message.
    const auto other = chain(dynamic_loss_scale{}, adamw(adamw_options{}));
    auto st = other.init(old);
    CHECK(
        test::contains(test::error_message([&] {
                         load_checkpoint(std::string(MIXPREC_TEST_DATA_DIR) + "/checkpoint_v1.ckpt", other, old, st);
                       }),
                       "version-1 checkpoint chain is [dynamic_loss_scale, clip_by_global_norm, scale_by_constant, "));
  }

  TEST_CASE("a version-2 checkpoint (no range section) loads") {
    // Version 2 is version 3 without the 24-byte range section after the
    // arena: rebuild a version-2 file from a version-3 one by that rule.
    const auto step = make_chain();
    arena a;
    build(a);
    auto sa = step.init(a);
    for (int t = 1; t <= 4; ++t) {
      write_gradients(a, t);
      step.apply(a, sa);
    }
    const std::vector<std::uint8_t> v3 = serialize_checkpoint(step, a, sa);
    std::size_t arena_bytes = 1 + 1 + 1 + 1 + 8 + 4;
    for (const auto& p : a.list()) arena_bytes += 4 + p.name.size() + 4 + 8 * p.shape.rank() + 4 + p.group.size();
    const std::size_t range_at = 24 + arena_bytes;
    std::uint64_t first, end;
    std::memcpy(&first, v3.data() + range_at, 8);
    std::memcpy(&end, v3.data() + range_at + 8, 8);
    REQUIRE(first == 0);
    REQUIRE(end == a.padded_size());
    std::vector<std::uint8_t> v2(v3.begin(), v3.begin() + static_cast<std::ptrdiff_t>(range_at));
    v2.insert(v2.end(), v3.begin() + static_cast<std::ptrdiff_t>(range_at + 24), v3.end() - 4);
    v2[8] = 2;
    const std::uint64_t total = v2.size() + 4;
    std::memcpy(v2.data() + 16, &total, 8);
    const std::uint32_t crc = detail::crc32(v2.data(), v2.size());
    v2.resize(v2.size() + 4);
    std::memcpy(v2.data() + v2.size() - 4, &crc, 4);

    arena b;
    build(b);
    b.initialize_all(init::zeros{}, 0);
    auto sb = step.init(b);
    deserialize_checkpoint(v2.data(), v2.size(), step, b, sb);
    CHECK(serialize_checkpoint(step, b, sb) == v3);
  }

  TEST_CASE("a checkpoint in shards loads whole and a whole one loads into shards and both continue bit for bit") {
    // States that each update a shard of one arena (what each rank of a
    // ZeRO run holds, mixprec/dist) with a chain whose updates need no
    // statistics of other elements: the shards together equal one state.
    adamw_options o;
    o.lr = 1e-2f;
    const auto step = chain(adamw(o), round_model_stochastic{9});
    const std::size_t cut = 136;  // inside fc1.bias, not on a 16-element boundary
    arena whole, split;
    build(whole);
    build(split);
    auto sw = step.init(whole);
    auto s0 = step.init(split, {}, element_range{0, cut});
    auto s1 = step.init(split, {}, element_range{cut, split.padded_size()});
    CHECK(s0.shard().end == cut);
    CHECK(s1.shard().end == split.padded_size());
    auto run = [&](int from, int to) {
      for (int t = from; t <= to; ++t) {
        write_gradients(whole, t * 2 + 1);  // odd: no inf (no scaler here)
        write_gradients(split, t * 2 + 1);
        step.apply(whole, sw);
        step.apply(split, s0);
        step.apply(split, s1);
      }
    };
    run(1, 5);
    CHECK(split.to_host(role::master) == whole.to_host(role::master));
    CHECK(split.to_host(role::model) == whole.to_host(role::model));
    const std::string f0 = temp_path("shard0.ckpt"), f1 = temp_path("shard1.ckpt"), fw = temp_path("whole.ckpt");
    save_checkpoint(f0, step, split, s0);
    save_checkpoint(f1, step, split, s1);
    save_checkpoint(fw, step, whole, sw);
    run(6, 9);
    const std::vector<std::uint8_t> after = serialize_checkpoint(step, whole, sw);

    // Shards into a whole arena.
    arena c;
    build(c);
    c.initialize_all(init::zeros{}, 0);
    auto sc = step.init(c);
    load_checkpoint(std::vector<std::string>{f1, f0}, step, c, sc);
    for (int t = 6; t <= 9; ++t) {
      write_gradients(c, t * 2 + 1);
      step.apply(c, sc);
    }
    CHECK(serialize_checkpoint(step, c, sc) == after);

    // A whole checkpoint into shards cut elsewhere (three of them).
    arena d;
    build(d);
    d.initialize_all(init::zeros{}, 0);
    const std::size_t cuts[] = {0, 64, 150, d.padded_size()};
    std::vector<decltype(step.init(d))> parts;
    for (int k = 0; k < 3; ++k) parts.push_back(step.init(d, {}, element_range{cuts[k], cuts[k + 1]}));
    for (auto& part : parts) load_checkpoint(std::vector<std::string>{fw}, step, d, part);
    for (int t = 6; t <= 9; ++t) {
      write_gradients(d, t * 2 + 1);
      for (auto& part : parts) step.apply(d, part);
    }
    CHECK(d.to_host(role::master) == whole.to_host(role::master));
    CHECK(d.to_host(role::model) == whole.to_host(role::model));

    // Sets that do not hold everything, or mix steps: refused, nothing changed.
    const std::vector<std::uint8_t> before = serialize_checkpoint(step, c, sc);
    CHECK(test::contains(test::error_message([&] { load_checkpoint(f0, step, c, sc); }),
                         "this file holds elements [0, 136) of 208 only, one shard of a sharded checkpoint"));
    CHECK(test::contains(test::error_message([&] { load_checkpoint(std::vector<std::string>{f0}, step, c, sc); }),
                         "the files do not hold every element of the master weights"));
    save_checkpoint(f1, step, split, s1);  // step 9 now
    CHECK(test::contains(test::error_message([&] {
                           load_checkpoint(std::vector<std::string>{f0, f1}, step, c, sc);
                         }),
                         "checkpoint files of different steps (5 and 9)"));
    CHECK(test::contains(test::error_message([&] {
                           load_checkpoint(std::vector<std::string>{f0, temp_path("no_such_shard.ckpt")}, step, c, sc);
                         }),
                         "cannot open /tmp/mixprec_test_no_such_shard.ckpt"));
    CHECK(serialize_checkpoint(step, c, sc) == before);
    for (const std::string& f : {f0, f1, fw}) std::remove(f.c_str());
  }

  TEST_CASE("a failed write leaves the previous checkpoint intact and no temporary behind") {
    const auto step = make_chain();
    arena p;
    build(p);
    auto state = step.init(p);
    const std::string path = temp_path("atomic.ckpt");
    save_checkpoint(path, step, p, state);
    const std::vector<std::uint8_t> first = serialize_checkpoint(step, p, state);
    write_gradients(p, 1);
    step.apply(p, state);

    SUBCASE("the temporary cannot be created: the message names the OS reason") {
      const std::string msg = test::error_message([&] { save_checkpoint("/nonexistent-dir/x.ckpt", step, p, state); });
      CHECK(test::contains(msg, "cannot create /nonexistent-dir/x.ckpt.tmp."));
      CHECK(test::contains(msg, "No such file or directory"));
    }
    SUBCASE("the write fails midway (file size limit): EFBIG is reported, the temporary removed") {
      ::signal(SIGXFSZ, SIG_IGN);
      rlimit old{};
      ::getrlimit(RLIMIT_FSIZE, &old);
      rlimit small = old;
      small.rlim_cur = first.size() / 2;  // inside the data section
      ::setrlimit(RLIMIT_FSIZE, &small);
      const std::string msg = test::error_message([&] { save_checkpoint(path, step, p, state); });
      ::setrlimit(RLIMIT_FSIZE, &old);
      ::signal(SIGXFSZ, SIG_DFL);
      CHECK(test::contains(msg, "cannot write"));
      CHECK(test::contains(msg, "File too large"));
      CHECK(test::temporaries_of(path).empty());
    }
    arena q;
    build(q);
    auto sq = step.init(q);
    load_checkpoint(path, step, q, sq);
    CHECK(serialize_checkpoint(step, q, sq) == first);
    const std::string missing = test::error_message([&] { load_checkpoint(path + ".missing", step, q, sq); });
    CHECK(test::contains(missing, "cannot open"));
    CHECK(test::contains(missing, "No such file or directory"));
    std::remove(path.c_str());
  }

  TEST_CASE("concurrent saves to one path each land whole and stale temporaries of dead processes are removed") {
    const auto step = make_chain();
    arena big, small;
    build(big);
    small.add("w", {3});
    small.finalize();
    auto sbig = step.init(big);
    auto ssmall = step.init(small);
    const auto big_bytes = serialize_checkpoint(step, big, sbig);
    const auto small_bytes = serialize_checkpoint(step, small, ssmall);
    const std::string path = temp_path("concurrent.ckpt");
    for (int round = 0; round < 20; ++round) {
      std::thread a([&] { save_checkpoint(path, step, big, sbig); });
      std::thread b([&] { save_checkpoint(path, step, small, ssmall); });
      a.join();
      b.join();
      const std::vector<std::uint8_t> now = test::file_bytes(path);
      INFO("round " << round);
      CHECK((now == big_bytes || now == small_bytes));
      CHECK(test::temporaries_of(path).empty());
    }
    // A temporary left by a process that was killed mid-save (its pid no
    // longer exists) is removed by the next save; one of a live process is not.
    const pid_t dead = test::pid_of_exited_child();
    const std::string stale = path + ".tmp." + std::to_string(dead) + ".0";
    const std::string live = path + ".tmp.1.0";  // pid 1 is always alive
    test::write_file(stale, std::vector<std::uint8_t>(1000, 7));
    test::write_file(live, std::vector<std::uint8_t>(10, 7));
    save_checkpoint(path, step, small, ssmall);
    CHECK(test::temporaries_of(path) == std::vector<std::string>{live});
    std::remove(live.c_str());
    std::remove(path.c_str());
  }

  TEST_CASE("a file that is not a checkpoint is refused after reading its header") {
    arena p;
    build(p);
    const auto step = make_chain();
    auto state = step.init(p);
    std::vector<std::uint8_t> junk(1 << 20, 0x42);  // 1 MiB of something else
    test::counting_source src(junk);
    CHECK(test::contains(test::error_message([&] { detail::decode_checkpoint(src, step, p, state, {}, {}); }),
                         "bad magic"));
    CHECK(src.bytes_read <= detail::checkpoint_header);
  }

  TEST_CASE("a state that init() did not make is a clear error and not a crash") {
    arena p;
    build(p);
    const auto step = make_chain();
    decltype(step.init(p)) empty;
    CHECK_FALSE(empty.initialized());
    CHECK(test::contains(test::error_message([&] { (void)empty.loss_scale(); }), "init() did not make"));
    CHECK(test::contains(test::error_message([&] { save_checkpoint(temp_path("empty.ckpt"), step, p, empty); }),
                         "not made by init()"));
    CHECK(test::contains(test::error_message([&] { step.apply(p, empty); }), "init() did not make"));
    CHECK(test::temporaries_of(temp_path("empty.ckpt")).empty());
  }
}
