// A chain state belongs to the arena it was made for: another arena (more
// groups, other names, shapes or formats with the same element count) is a
// clear error naming the difference, and changes nothing; so are
// uninitialised states. Read-backs wait on the stream the state was last
// used on. Hyperparameters that would train uphill or produce NaN are
// refused at init.
#include <cmath>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include <mixprec/mixprec.hpp>

#include "../support/errors.hpp"

using namespace mixprec;

namespace {

using arena = parameters<bfloat16, bfloat16>;

void build(arena& p, const char* second_name = "b", const char* second_group = "default", shape second_shape = {16}) {
  p.add("w", {4, 16});
  p.add(second_name, second_shape, second_group);
  p.finalize();
  p.initialize_all(init::normal{0.0, 0.5}, 1);
}

}  // namespace

TEST_SUITE("train") {
  TEST_CASE("a state applied to another arena of the same size is refused with what differs") {
    const auto step = chain(dynamic_loss_scale{}, adamw(adamw_options{}));
    arena a;
    build(a);
    auto state = step.init(a);
    auto refused = [&](arena& other, const char* expected) {
      other.from_host(role::grad, std::vector<float>(other.element_count(), 0.25f));
      const std::vector<float> before = other.to_host(role::master);
      const std::string msg = test::error_message([&] { step.apply(other, state); });
      INFO(msg);
      CHECK(test::contains(msg, "the state was made by init() for another parameter arena"));
      CHECK(test::contains(msg, expected));
      CHECK(other.to_host(role::master) == before);
      CHECK(state.count() == 0);
    };
    SUBCASE("more groups") {
      arena b;
      build(b, "b", "no_decay");
      refused(b, "parameter \"b\" is in group \"default\" but \"no_decay\"");
    }
    SUBCASE("another name") {
      arena b;
      build(b, "bias");
      refused(b, "parameter 1 is \"b\" but \"bias\"");
    }
    SUBCASE("another shape") {
      arena b;
      build(b, "b", "default", {4, 4});
      refused(b, "parameter \"b\" has shape [16] but [4, 4]");
    }
    SUBCASE("the same layout is accepted") {
      arena b;
      build(b);
      b.from_host(role::grad, std::vector<float>(b.element_count(), 0.25f));
      step.apply(b, state);
      CHECK(state.count() == 1);
    }
  }

  TEST_CASE("an empty parameter with adaptive clipping has no units and no division by zero") {
    parameters<float> p;
    p.add("empty", {0, 5});
    p.add("w", {3, 4});
    p.finalize();
    p.from_host(role::master, std::vector<float>(12, 1.0f));
    p.from_host(role::grad, std::vector<float>(12, 100.0f));
    const auto step = chain(clip_adaptive{0.01f}, sgd(sgd_options{}));
    auto state = step.init(p);
    step.apply(p, state);
    for (float w : p.to_host(role::master, "w")) CHECK(std::isfinite(w));
    CHECK(p.to_host(role::master, "w")[0] < 1.0f);
  }

  TEST_CASE("learning rates and group multipliers that train uphill or give NaN are refused") {
    parameters<float> p;
    p.add("w", {4});
    p.finalize();
    auto message = [&](const auto& c) { return test::error_message([&] { (void)chain(c).init(p); }); };
    auto rate = "must be finite and non-negative";
    for (float bad : {-1e-3f, NAN, INFINITY}) {
      INFO("lr " << bad);
      adamw_options aw;
      aw.lr = bad;
      CHECK(test::contains(message(adamw(aw)), rate));
      sgd_options sg;
      sg.lr = bad;
      CHECK(test::contains(message(sgd(sg)), rate));
      lion_options li;
      li.lr = bad;
      CHECK(test::contains(message(lion(li)), rate));
      adagrad_options ag;
      ag.lr = bad;
      CHECK(test::contains(message(adagrad(ag)), rate));
      lamb_options la;
      la.lr = bad;
      CHECK(test::contains(message(lamb(la)), rate));
    }
    const adamw_options o;
    CHECK(test::contains(message(adamw(o, cosine_decay{NAN, 100, 0.0f})), rate));
    CHECK(test::contains(message(adamw(o, cosine_decay{1e-3f, 100, NAN})), "alpha must lie in [0, 1]"));
    CHECK(test::contains(message(adamw(o, exponential_decay{1e-3f, NAN})), "gamma must lie in (0, 1]"));
    CHECK(test::contains(message(adamw(o, exponential_decay{NAN, 0.9f})), rate));
    CHECK(test::contains(message(adamw(o, linear_schedule{NAN, 1e-3f, 10})), rate));
    CHECK(test::contains(message(adamw(o, linear_schedule{0.0f, -1e-3f, 10})), rate));
    CHECK(test::contains(message(adamw(o, step_decay{1e-3f, 10, NAN})), "gamma must lie in [0, 1]"));
    CHECK(test::contains(message(adamw(o, step_decay{NAN, 10, 0.5f})), rate));
    CHECK(test::contains(message(adamw(o, warmup<constant_schedule>{10, NAN, {1e-3f}})), rate));
    CHECK(test::contains(message(adamw(o, warmup<constant_schedule>{10, 0.0f, {NAN}})), rate));
    // eps = 0 divides 0 by 0 where every gradient was 0: refused where it is a divisor.
    adamw_options zero_eps;
    zero_eps.eps = 0.0f;
    CHECK(test::contains(message(adamw(zero_eps)), "eps must be finite and positive"));
    adagrad_options zero_eps_adagrad;
    zero_eps_adagrad.eps = 0.0f;
    CHECK(test::contains(message(adagrad(zero_eps_adagrad)), "eps must be finite and positive"));

    const auto step = chain(adamw(adamw_options{}));
    auto state = step.init(p);
    for (group_hyper bad :
         {group_hyper{NAN, 1.0f}, group_hyper{1.0f, -0.5f}, group_hyper{-1.0f, 1.0f}, group_hyper{1.0f, INFINITY}}) {
      CHECK(test::contains(test::error_message([&] { state.set_group("default", bad); }),
                           "lr_scale and weight_decay_scale must be finite and non-negative"));
    }
  }

  TEST_CASE("read-backs without a stream wait for the stream of the last apply") {
    parameters<float> p;
    p.add("w", {1000});
    p.finalize();
    p.from_host(role::grad, std::vector<float>(1000, INFINITY));
    const auto step = chain(dynamic_loss_scale{}, sgd(sgd_options{}));
#if defined(MIXPREC_BACKEND_CUDA)
    cudaStream_t raw;
    REQUIRE(cudaStreamCreateWithFlags(&raw, cudaStreamNonBlocking) == cudaSuccess);
    const stream s(raw);
#else
    const stream s{};
#endif
    auto state = step.init(p, s);
    for (int k = 0; k < 20; ++k) step.apply(p, state, s);  // queued on a non-blocking stream
    CHECK(state.step().skipped_total == 20);
    CHECK(state.loss_scale() == 65536.0f / 1048576.0f);
#if defined(MIXPREC_BACKEND_CUDA)
    cudaStreamDestroy(raw);
#endif
  }
}
