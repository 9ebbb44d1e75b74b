// The component protocol's mistakes as compile errors. The engine detects
// protocol members by signature (component/protocol.hpp), so a member that
// is almost right (not const, not static, not a template, misspelled) would
// otherwise be ignored and the step would silently compute something else.
// chain() instantiates component_check<C> for each component; each check
// is a static_assert whose message names the member, and the compiler's
// "In instantiation of 'component_check<C>'" line names the component.
#pragma once

#include <cstddef>
#include <type_traits>
#include <utility>

#include <mixprec/component/component.hpp>
#include <mixprec/component/protocol.hpp>

namespace mixprec {

namespace detail {

// initial_scalars() callable on a non-const object but not on a const one.
template <class C, class = void>
struct initial_scalars_callable_non_const : std::false_type {};
template <class C>
struct initial_scalars_callable_non_const<C, std::void_t<decltype(std::declval<C&>().initial_scalars())>>
    : std::true_type {};
template <class C, class = void>
struct initial_scalars_for_arena_callable_non_const : std::false_type {};
template <class C>
struct initial_scalars_for_arena_callable_non_const<
    C, std::void_t<decltype(std::declval<C&>().initial_scalars(std::declval<const arena_info&>()))>> : std::true_type {
};

template <class C>
constexpr bool has_any_rule() {
  return has_update<C>::value || has_decide<C>::value || has_decide_row<C>::value || has_decide_column<C>::value ||
         has_decide_parameter<C>::value || traits_of<C>::writes_weights;
}
template <class C>
constexpr bool has_entry_rule() {
  return has_decide_row<C>::value || has_decide_column<C>::value || has_decide_parameter<C>::value;
}
template <class C>
constexpr bool unique_field_names() {
  constexpr std::size_t n = field_count<C>();
  for (std::size_t a = 0; a != n; ++a)  // != rather than <: nvcc warns of "a < 0" when n is 0
    for (std::size_t b = a + 1; b != n; ++b)
      if (field_of<C>(a).name != nullptr && same_text(field_of<C>(a).name, field_of<C>(b).name)) return false;
  return true;
}
template <class C>
constexpr bool unique_statistic_names() {
  constexpr std::size_t n = statistic_count<C>();
  for (std::size_t a = 0; a != n; ++a)
    for (std::size_t b = a + 1; b != n; ++b)
      if (statistic_of<C>(a).name != nullptr && same_text(statistic_of<C>(a).name, statistic_of<C>(b).name))
        return false;
  return true;
}
template <class C>
constexpr bool element_fields_only() {
  for (std::size_t k = 0; k != field_count<C>(); ++k)
    if (field_of<C>(k).where != extent::element) return false;
  return true;
}

template <class C>
struct component_check {
  static_assert(!std::is_final_v<C>,
                "mixprec::chain: a component cannot be final (the engine finds its members by name, through a class "
                "derived from it)");
  static_assert(std::is_trivially_copyable_v<C>,
                "mixprec::chain: a component must be a trivially copyable value type (its members are copied into "
                "every pass): no std::vector, std::string or other owning member (the component is named in the "
                "'In instantiation of component_check<...>' line)");
  static_assert(std::is_final_v<C> || has_member_name<C>::value,
                "mixprec::chain: a component needs static constexpr const char* name = \"...\"");
  static_assert(!has_member_traits<C>::value || traits_derived<C>::value,
                "mixprec::chain: the component's struct traits must derive from mixprec::component_traits "
                "(struct traits : mixprec::component_traits { ... })");
  // Members named like protocol members that the engine would not call.
  static_assert(!has_member_update<C>::value || has_update<C>::value,
                "mixprec::chain: the component's member `update` is not the element rule the engine calls: write "
                "template <class Ctx> float update(float u, const Ctx& ctx) const");
  static_assert(!has_member_decide<C>::value || has_decide<C>::value,
                "mixprec::chain: the component's member `decide` is not the scalar rule the engine calls: write "
                "template <class Ctx> void decide(scalars& s, const Ctx& ctx) const");
  static_assert((!has_member_decide_row<C>::value || has_decide_row<C>::value) &&
                    (!has_member_decide_column<C>::value || has_decide_column<C>::value) &&
                    (!has_member_decide_parameter<C>::value || has_decide_parameter<C>::value),
                "mixprec::chain: the component's entry rule (decide_row, decide_column or decide_parameter) must be "
                "template <class E> void decide_...(const E& e) const");
  static_assert(!initial_scalars_callable_non_const<C>::value || has_initial_scalars<C>::value,
                "mixprec::chain: the component's `initial_scalars()` must be a const member function (else the "
                "engine would not call it: no validation, scalars starting from {})");
  static_assert(!initial_scalars_for_arena_callable_non_const<C>::value || has_initial_scalars_for_arena<C>::value,
                "mixprec::chain: the component's `initial_scalars(const arena_info&)` must be a const member function");
  static_assert(!has_member_initial_scalars<C>::value || has_initial_scalars<C>::value ||
                    has_initial_scalars_for_arena<C>::value,
                "mixprec::chain: the component's member `initial_scalars` is neither scalars initial_scalars() "
                "const nor scalars initial_scalars(const mixprec::arena_info&) const");
  static_assert(!has_member_visit_scalars<C>::value || has_visit_scalars<C>::value,
                "mixprec::chain: the component's member `visit_scalars` is not template <class V> static void "
                "visit_scalars(scalars& s, V&& v)");
  static_assert(!has_member_visit_hyperparameters<C>::value || has_visit_hyperparameters<C>::value,
                "mixprec::chain: the component's member `visit_hyperparameters` is not template <class V> void "
                "visit_hyperparameters(V&& v) const");
  // Names the protocol does not have.
  static_assert(!has_member_apply<C>::value && !has_member_rule<C>::value && !has_member_transform<C>::value &&
                    !has_member_update_element<C>::value && !has_member_element_rule<C>::value,
                "mixprec::chain: the component has a member named like an element rule (apply, rule, transform, "
                "update_element, element_rule) that the protocol does not know: the element rule is `update`");
  static_assert(!has_member_decide_rows<C>::value && !has_member_decide_columns<C>::value &&
                    !has_member_decide_parameters<C>::value,
                "mixprec::chain: the component has a member decide_rows, decide_columns or decide_parameters: the "
                "entry rules are decide_row, decide_column and decide_parameter");
  static_assert(!has_member_initial_scalar<C>::value && !has_member_init_scalars<C>::value &&
                    !has_member_visit_hyperparams<C>::value && !has_member_visit_scalar<C>::value &&
                    !has_member_stats<C>::value && !has_member_states<C>::value,
                "mixprec::chain: the component has a member named like a protocol member (initial_scalar, "
                "init_scalars, visit_hyperparams, visit_scalar, stats, states) that the protocol does not know: "
                "the names are initial_scalars, visit_hyperparameters, visit_scalars, statistics, state");
  // Declarations no rule can use.
  static_assert(std::is_final_v<C> || has_any_rule<C>(),
                "mixprec::chain: the component has no rule (update, decide, decide_row, decide_column, "
                "decide_parameter, or a weight writer's): it would change nothing");
  static_assert(field_count<C>() == 0 || has_update<C>::value || has_entry_rule<C>() || traits_of<C>::writes_weights,
                "mixprec::chain: the component declares state fields but no rule that reads them (update, or "
                "decide_row / decide_column / decide_parameter for row, column and parameter fields)");
  static_assert(field_count<C>() == 0 || !element_fields_only<C>() || has_update<C>::value ||
                    traits_of<C>::writes_weights,
                "mixprec::chain: the component declares per-element state fields but no element rule `update` "
                "that reads them");
  static_assert(statistic_count<C>() == 0 || has_decide<C>::value || has_update<C>::value || has_entry_rule<C>(),
                "mixprec::chain: the component declares statistics but no rule that reads them");
  static_assert(unique_field_names<C>(), "mixprec::chain: two of the component's state fields have the same name");
  static_assert(unique_statistic_names<C>(), "mixprec::chain: two of the component's statistics have the same name");
  static_assert(!has_variants<C>::value || variant_count<C>() >= 1,
                "mixprec::chain: the component's `variants` must be at least 1");
  static constexpr bool ok = true;
};

// Where the engine calls a rule or visitor, with what it passes (A, the
// argument's type as the call passes it): the member found by name must
// take it, const (a rule, visit_hyperparameters) or static (visit_scalars).
// The engine calls the member only when X_check<C, A>::ok, so a mistake is
// this one error, in an instantiation that names the component.
#define MIXPREC_CALL_CHECK(X, message, ...)                             \
  template <class C, class A, class = void>                             \
  struct X##_takes : std::false_type {};                                \
  template <class C, class A>                                           \
  struct X##_takes<C, A, std::void_t<__VA_ARGS__>> : std::true_type {}; \
  template <class C, class A>                                           \
  struct X##_check {                                                    \
    static constexpr bool ok = X##_takes<C, A>::value;                  \
    static_assert(ok, message);                                         \
  };
MIXPREC_CALL_CHECK(
    update,
    "mixprec: the component's element rule must be template <class Ctx> float update(float u, const "
    "Ctx& ctx) const (const, returning the new update)",
    std::enable_if_t<std::is_convertible_v<decltype(std::declval<const C&>().update(0.0f, std::declval<A>())), float>>)
MIXPREC_CALL_CHECK(decide,
                   "mixprec: the component's scalar rule must be template <class Ctx> void decide(scalars& s, const "
                   "Ctx& ctx) const",
                   decltype(std::declval<const C&>().decide(std::declval<scalars_of<C>&>(), std::declval<A>())))
MIXPREC_CALL_CHECK(decide_row,
                   "mixprec: the component's entry rule must be template <class E> void decide_row(const E& e) const",
                   decltype(std::declval<const C&>().decide_row(std::declval<A>())))
MIXPREC_CALL_CHECK(decide_column,
                   "mixprec: the component's entry rule must be template <class E> void decide_column(const E& e) "
                   "const",
                   decltype(std::declval<const C&>().decide_column(std::declval<A>())))
MIXPREC_CALL_CHECK(decide_parameter,
                   "mixprec: the component's entry rule must be template <class E> void decide_parameter(const E& e) "
                   "const",
                   decltype(std::declval<const C&>().decide_parameter(std::declval<A>())))
MIXPREC_CALL_CHECK(visit_hyperparameters,
                   "mixprec: the component's `visit_hyperparameters` must be template <class V> void "
                   "visit_hyperparameters(V&& v) const",
                   decltype(std::declval<const C&>().visit_hyperparameters(std::declval<A>())))
MIXPREC_CALL_CHECK(visit_scalars,
                   "mixprec: the component's `visit_scalars` must be static: template <class V> static void "
                   "visit_scalars(scalars& s, V&& v)",
                   decltype(C::visit_scalars(std::declval<scalars_of<C>&>(), std::declval<A>())))
#undef MIXPREC_CALL_CHECK

}  // namespace detail
}  // namespace mixprec
