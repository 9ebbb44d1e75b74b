// What the engine reads off a component (component/protocol.hpp): rules and
// visitors found by name, never by a specialization made up for the test,
// and the shape checks made where the engine calls them
// (component/protocol_check.hpp). The mistakes themselves are compile errors
// (tests/compile_fail/protocol_*); here, what is and is not detected.
#include <doctest/doctest.h>

#include <mixprec/mixprec.hpp>

// A named namespace: the tests below form calls with types of their own,
// which, for members of an anonymous namespace's types, nvcc would report as
// declared but never referenced.
namespace protocol_test {

struct protocol_rule {
  static constexpr const char* name = "protocol_rule";
  struct scalars {
    float gain;
  };
  template <class Ctx>
  MIXPREC_HOST_DEVICE float update(float u, const Ctx&) const {
    return 2.0f * u;
  }
  template <class Ctx>
  MIXPREC_HOST_DEVICE void decide(scalars& s, const Ctx&) const {
    s.gain = 2.0f;
  }
  template <class E>
  MIXPREC_HOST_DEVICE void decide_parameter(const E&) const {}
  template <class V>
  void visit_hyperparameters(V&&) const {}
  template <class V>
  static void visit_scalars(scalars& s, V&& v) {
    v("gain", s.gain);
  }
};
// The rules of a base count as the component's own.
struct protocol_derived : protocol_rule {
  static constexpr const char* name = "protocol_derived";
};
struct protocol_none {
  static constexpr const char* name = "protocol_none";
};
// Members named like rules that are not templates: not detected as rules
// (component_check refuses them: protocol_update_not_template).
struct protocol_plain {
  float update(float u) const { return u; }
  int decide = 0;
};
// Templates of the wrong shape: detected by name, refused where called.
struct protocol_mutable {
  template <class Ctx>
  float update(float u, const Ctx&) {
    return u;
  }
  template <class V>
  void visit_scalars(protocol_rule::scalars&, V&&) {}
};
// A context type of the test's own: the checks form the call with it.
struct protocol_context {};
// A visitor of the test's own.
struct protocol_visitor {
  template <class T>
  void operator()(const char*, T&) const {}
};

}  // namespace protocol_test

using namespace protocol_test;

TEST_SUITE("component") {
  TEST_CASE("rules and visitors are found by name in the component or its bases") {
    using namespace mixprec::detail;
    CHECK(has_update<protocol_rule>::value);
    CHECK(has_decide<protocol_rule>::value);
    CHECK(has_decide_parameter<protocol_rule>::value);
    CHECK_FALSE(has_decide_row<protocol_rule>::value);
    CHECK_FALSE(has_decide_column<protocol_rule>::value);
    CHECK(has_visit_hyperparameters<protocol_rule>::value);
    CHECK(has_visit_scalars<protocol_rule>::value);
    CHECK(has_update<protocol_derived>::value);
    CHECK(has_decide_parameter<protocol_derived>::value);
    CHECK_FALSE(has_update<protocol_none>::value);
    CHECK_FALSE(has_decide<protocol_none>::value);
    CHECK_FALSE(has_visit_scalars<protocol_none>::value);
    CHECK(has_update<protocol_mutable>::value);
    CHECK(has_visit_scalars<protocol_mutable>::value);
  }

  TEST_CASE("a member named like a rule that is not a template is not a rule") {
    using namespace mixprec::detail;
    CHECK(has_member_update<protocol_plain>::value);
    CHECK_FALSE(has_update<protocol_plain>::value);
    CHECK(has_member_decide<protocol_plain>::value);
    CHECK_FALSE(has_decide<protocol_plain>::value);
    CHECK_FALSE(has_member_update<protocol_none>::value);
  }

  TEST_CASE("where the engine calls a rule its check takes const rules and static visit_scalars only") {
    using namespace mixprec::detail;
    CHECK(update_takes<protocol_rule, const protocol_context&>::value);
    CHECK(update_takes<protocol_derived, const protocol_context&>::value);
    CHECK_FALSE(update_takes<protocol_mutable, const protocol_context&>::value);
    CHECK(decide_takes<protocol_rule, const protocol_context&>::value);
    CHECK(decide_parameter_takes<protocol_rule, const protocol_context&>::value);
    CHECK(visit_scalars_takes<protocol_rule, protocol_visitor>::value);
    CHECK_FALSE(visit_scalars_takes<protocol_mutable, protocol_visitor>::value);
    CHECK(visit_hyperparameters_takes<protocol_rule, protocol_visitor>::value);
  }

  TEST_CASE("a chain of a derived component runs the base's rule") {
    // The inherited update doubles the update before SGD's learning rate.
    mixprec::sgd_options o;
    o.lr = 0.5f;
    const auto step = mixprec::chain(protocol_derived{}, mixprec::sgd(o));
    mixprec::parameters<float> params;
    params.add("w", {4});
    params.finalize();
    params.from_host(mixprec::role::master, {1.0f, 2.0f, 3.0f, 4.0f});
    params.from_host(mixprec::role::grad, {0.25f, -0.5f, 1.0f, 0.0f});
    auto state = step.init(params);
    step.apply(params, state);
    const std::vector<float> w = params.to_host(mixprec::role::master);
    // w - lr * 2 * g, each exact in binary32.
    CHECK(w == std::vector<float>{0.75f, 2.5f, 2.0f, 4.0f});
  }
}
