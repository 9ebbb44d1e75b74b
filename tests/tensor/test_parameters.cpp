// The parameter arena: layout and alignment, views per role, initialisers
// (deterministic per seed, the right distributions), master/model
// consistency, per-segment norms over hundreds of parameters of mixed sizes,
// and every misuse raising a clear mixprec::error that changes nothing.
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include <doctest/doctest.h>

#include <mixprec/tensor/all.hpp>

#include "../support/device.hpp"
#include "../support/errors.hpp"
#include "../support/formats.hpp"
#include "../support/random.hpp"

using namespace mixprec;

TEST_SUITE("tensor") {
  TEST_CASE("the arena lays parameters out on 16-byte boundaries in every role") {
    parameters<fp8_e4m3, bfloat16> p;
    p.add("a", {3});
    p.add("b", {5, 7}, "no_decay");
    p.add("empty", {0, 4});
    p.add("c", {1});
    p.finalize();
    CHECK(p.count() == 4);
    CHECK(p.element_count() == 3 + 35 + 0 + 1);
    CHECK(p["b"].group == "no_decay");
    CHECK(p.group_names() == std::vector<std::string>{"default", "no_decay"});
    for (const auto& q : p.list()) {
      CHECK(q.offset % 16 == 0);
      CHECK(reinterpret_cast<std::uintptr_t>(p.master(q.index).data()) % 16 == 0);
      CHECK(reinterpret_cast<std::uintptr_t>(p.model(q.index).data()) % 16 == 0);
      CHECK(reinterpret_cast<std::uintptr_t>(p.grad(q.index).data()) % 16 == 0);
    }
    CHECK(p.padded_size() == 16 + 48 + 0 + 16);
    CHECK(p.layout().tile_count() == 3);  // the empty parameter has no tile
    CHECK(p.model("b").shape() == shape{5, 7});
  }

  TEST_CASE("a float model is its own master copy") {
    parameters<float> p;
    p.add("w", {8});
    p.finalize();
    CHECK(p.model_data() == p.master_data());
  }

  TEST_CASE("an arena can keep the master weights of a shard of its elements") {
    parameters<bfloat16, half> whole, part;
    for (auto* p : {&whole, &part}) {
      p->add("w", {8, 5});
      p->add("b", {5});
    }
    whole.finalize();
    part.finalize(element_range{48, 53});  // b's five elements only (w is [0, 40), padded to 48)
    CHECK_FALSE(whole.master_sharded());
    CHECK(part.master_sharded());
    CHECK(part.master_begin() == 48);
    CHECK(part.master_end() == 53);
    whole.initialize_all(init::kaiming_uniform{}, 7);
    part.initialize_all(init::kaiming_uniform{}, 7);
    // The whole model copy, and the kept master weights, as in the whole arena.
    CHECK(part.to_host(role::model) == whole.to_host(role::model));
    CHECK(part.to_host(role::master, "b") == whole.to_host(role::master, "b"));
    CHECK(part.master("b").size() == 5);
    CHECK(test::contains(test::error_message([&] { (void)part.master("w"); }),
                         "parameters::master(\"w\"): this arena does not keep its master weights"));
    // Only fp32 master weights apart from a narrower model can be sharded.
    parameters<float> f;
    f.add("w", {4});
    CHECK(test::contains(test::error_message([&] {
                           f.finalize(element_range{0, 8});
                         }),
                         "only fp32 master weights kept apart from a narrower model copy can be sharded"));
    CHECK_FALSE(f.finalized());
    parameters<half> r;
    r.add("w", {40});
    CHECK(test::contains(test::error_message([&] {
                           r.finalize(element_range{20, 10});
                         }),
                         "master shard [20, 10) is reversed"));
    CHECK_FALSE(r.finalized());
  }

  TEST_CASE("initialisers are deterministic per seed and follow their distributions") {
    parameters<bfloat16> p;
    p.add("w", {256, 512});
    p.add("v", {256, 512});
    p.add("b", {512}, "bias");
    p.finalize();
    p.initialize("w", init::normal{0.0, 0.5}, 42);
    p.initialize("v", init::normal{0.0, 0.5}, 42);
    p.initialize("b", init::constant{0.25}, 1);
    const auto w = test::to_host(p.master("w").data(), 256 * 512), v = test::to_host(p.master("v").data(), 256 * 512);
    CHECK(w != v);  // each parameter draws its own stream
    double mean = 0, var = 0;
    for (float x : w) mean += x;
    mean /= w.size();
    for (float x : w) var += (x - mean) * (x - mean);
    var /= w.size();
    CHECK(std::fabs(mean) < 4 * 0.5 / std::sqrt(double(w.size())));
    CHECK(std::fabs(std::sqrt(var) - 0.5) < 0.01);
    for (float x : test::to_host(p.master("b").data(), 512)) CHECK(x == 0.25f);

    // The same seed gives the same bits; the model copy is the master rounded.
    p.initialize("v", init::normal{0.0, 0.5}, 42);
    p.initialize("w", init::normal{0.0, 0.5}, 42);
    CHECK(test::to_host(p.master("w").data(), w.size()) == w);
    const auto model = test::to_host(p.model("w").data(), w.size());
    std::size_t wrong = 0;
    for (std::size_t i = 0; i < w.size(); ++i)
      wrong += test::bits_of(model[i]) != test::bits_of(convert<bfloat16>(w[i]));
    CHECK(wrong == 0);
  }

  TEST_CASE("Kaiming and Xavier initialisers scale with the fans") {
    parameters<float> p;
    p.add("conv", {64, 32, 3, 3});
    p.add("fc", {100, 300});
    p.finalize();
    p.initialize("conv", init::kaiming_uniform{}, 3);
    p.initialize("fc", init::xavier_normal{}, 3);
    const auto conv = test::to_host(p.master("conv").data(), 64 * 32 * 9),
               fc = test::to_host(p.master("fc").data(), 30000);
    const double bound = std::sqrt(2.0) * std::sqrt(3.0 / (32 * 9));  // fan_in = 32 * 3 * 3
    float lo = 0, hi = 0;
    for (float x : conv) lo = std::min(lo, x), hi = std::max(hi, x);
    CHECK(hi <= bound);
    CHECK(lo >= -bound);
    CHECK(hi > 0.98 * bound);
    double var = 0;
    for (float x : fc) var += double(x) * x;
    var /= fc.size();
    CHECK(std::fabs(var - 2.0 / (100 + 300)) < 0.05 * 2.0 / 400);
  }

  TEST_CASE("a model without master weights is initialised in its own format") {
    parameters<bfloat16, bfloat16, void> p;
    p.add("w", {1000});
    p.finalize();
    p.initialize("w", init::uniform{-1.0, 1.0}, 9);
    parameters<float> q;
    q.add("w", {1000});
    q.finalize();
    q.initialize("w", init::uniform{-1.0, 1.0}, 9);
    const auto low = test::to_host(p.model("w").data(), 1000);
    const auto wide = test::to_host(q.master("w").data(), 1000);
    for (std::size_t i = 0; i < 1000; ++i) CHECK(test::bits_of(low[i]) == test::bits_of(convert<bfloat16>(wide[i])));
  }

  TEST_CASE_TEMPLATE("per-parameter norms over hundreds of parameters match per-tensor references", G, float, half,
                     bfloat16) {
    std::mt19937 gen(17);
    const std::size_t sizes[] = {0, 1, 2, 15, 16, 17, 100, 4095, 4096, 4097, 9000, 20000};
    parameters<bfloat16, G> p;
    for (int k = 0; k < 300; ++k) p.add("p" + std::to_string(k), {sizes[gen() % 12]});
    p.finalize();
    std::vector<std::vector<float>> values(p.count());
    for (std::size_t k = 0; k < p.count(); ++k) {
      values[k] = test::random_values<G>(p[k].size, static_cast<unsigned>(k), 0.0f, 1.0f + k % 7);
      const std::vector<G> stored = test::to_format<G>(values[k]);
      detail::write_to_device(stored.data(), p.grad(k).data(), stored.size());
    }
    workspace ws;
    thrust::device_vector<double> norms(p.count());
    segment_l2_norms(p.layout(), static_cast<const G*>(p.grad_data()), test::ptr(norms), ws);
    const auto got = test::to_host(norms);
    for (std::size_t k = 0; k < p.count(); ++k) {
      long double ref = 0;
      for (float x : values[k]) ref += static_cast<long double>(x) * x;
      ref = std::sqrt(ref);
      INFO("parameter " << k << " of size " << p[k].size);
      CHECK(std::fabs(static_cast<long double>(got[k]) - ref) <= std::ldexp(1.0L, -24) * ref);
    }
    // The same reduction twice: identical bits.
    thrust::device_vector<double> again(p.count());
    segment_l2_norms(p.layout(), static_cast<const G*>(p.grad_data()), test::ptr(again), ws);
    CHECK(test::to_host(again) == got);
  }

  TEST_CASE("arena misuse raises clear errors and leaves the arena unchanged") {
    parameters<half> p;
    p.add("w", {4, 4});
    SUBCASE("use before finalize") {
      CHECK(test::contains(test::error_message([&] { (void)p.model("w"); }), "used before finalize"));
      CHECK(test::contains(test::error_message([&] { (void)p.layout(); }), "used before finalize"));
    }
    SUBCASE("duplicate name") {
      CHECK(test::contains(test::error_message([&] { p.add("w", {3}); }), "named \"w\" already exists"));
      CHECK(p.count() == 1);
      CHECK(p["w"].shape == shape{4, 4});
    }
    SUBCASE("unknown name") {
      CHECK(test::contains(test::error_message([&] { (void)p["bias"]; }), "no parameter named \"bias\""));
    }
    SUBCASE("add after finalize") {
      p.finalize();
      CHECK(
          test::contains(test::error_message([&] { p.add("b", {4}); }), "add(\"b\"): the arena is already finalized"));
      CHECK(p.count() == 1);
    }
    SUBCASE("empty parameter set") {
      parameters<half> empty;
      CHECK(test::contains(test::error_message([&] { empty.finalize(); }), "empty parameter set"));
      CHECK_FALSE(empty.finalized());
    }
    SUBCASE("a view past the end of a parameter") {
      p.finalize();
      const std::string msg = test::error_message([&] { (void)p.grad("w").subview(10, 10); });
      CHECK(test::contains(msg, "past the end"));
      CHECK(test::contains(msg, "[4, 4]"));
    }
    // AddressSanitizer aborts on impossible allocations instead of throwing
    // std::bad_alloc, so this case runs in the non-sanitized builds only.
#if !defined(__SANITIZE_ADDRESS__)
    SUBCASE("allocation failure leaves the arena unfinalized and usable") {
      p.add("huge", {1ull << 20, 1ull << 20});
      CHECK(test::contains(test::error_message([&] { p.finalize(); }), "cannot allocate"));
      CHECK_FALSE(p.finalized());
      CHECK(p.count() == 2);
      CHECK(test::contains(test::error_message([&] { (void)p.model("w"); }), "used before finalize"));
    }
#endif
  }
}
