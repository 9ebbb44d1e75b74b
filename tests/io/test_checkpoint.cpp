// Checkpoints: a round trip restores every byte of parameters and state, and
// a resumed run continues bit for bit; every malformed file (truncated at
// several offsets, any flipped byte, wrong magic or version, mismatched
// names, shapes, formats or chain) raises an error that says what did not
// match and changes nothing; a failed write leaves the previous file intact.
#include <csignal>
#include <cstdio>
#include <string>
#include <sys/resource.h>
#include <sys/stat.h>
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
    bad[8] = 3;  // version 3, with a valid checksum
    const std::uint32_t crc = detail::crc32(bad.data(), bad.size() - 4);
    std::memcpy(bad.data() + bad.size() - 4, &crc, 4);
    CHECK(test::contains(load(bad), "unsupported checkpoint version 3 (this build reads versions 1 and 2)"));
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
    const auto other = chain(dynamic_loss_scale{}, clip_by_global_norm{1.0f}, adam(adam_options{}), round_model_stochastic{5});
    auto sq = other.init(q);
    const std::vector<std::uint8_t> before = serialize_checkpoint(other, q, sq);
    CHECK(test::contains(test::error_message([&] { load_checkpoint(path, other, q, sq); }),
                         "checkpoint chain is [dynamic_loss_scale, clip_by_global_norm, adamw, round_model_stochastic] "
                         "but this chain is [dynamic_loss_scale, clip_by_global_norm, adam, round_model_stochastic]: "
                         "component 3 is adamw/scale_by_constant in the checkpoint but adam/scale_by_constant here"));
    CHECK(serialize_checkpoint(other, q, sq) == before);
    const auto shorter = chain(dynamic_loss_scale{}, lion(lion_options{}));
    auto ss = shorter.init(q);
    CHECK(test::contains(test::error_message([&] { load_checkpoint(path, shorter, q, ss); }),
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
  const checkpoint_metadata m = load_checkpoint(std::string(MIXPREC_TEST_DATA_DIR) + "/checkpoint_v1.ckpt", step, old, so);
  CHECK(m.empty());
  CHECK(so.count() == 5);
  CHECK(so.step().skipped_total == 2);
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
  CHECK(test::contains(test::error_message([&] {
                         load_checkpoint(std::string(MIXPREC_TEST_DATA_DIR) + "/checkpoint_v1.ckpt", other, old, st);
                       }),
                       "version-1 checkpoint chain is [dynamic_loss_scale, clip_by_global_norm, scale_by_constant, "));
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

TEST_CASE("concurrent saves to one path each land whole; stale temporaries of dead processes are removed") {
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

TEST_CASE("a state that init() did not make is a clear error, not a crash") {
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
