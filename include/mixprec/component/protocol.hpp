// What the engine reads off a component type: its optional protocol members
// (component/component.hpp), each detected, with a default when absent.
#pragma once

#include <cstddef>
#include <string>
#include <type_traits>
#include <utility>

#include <mixprec/component/component.hpp>
#include <mixprec/format/block_codes.hpp>

namespace mixprec::detail {

// Whether the component's traits (if it has them) derive from
// component_traits; when they do not, the engine uses the defaults and
// component_check reports the mistake once.
template <class C, class = void>
struct traits_derived : std::true_type {};
template <class C>
struct traits_derived<C, std::void_t<typename C::traits>> : std::is_base_of<component_traits, typename C::traits> {};
template <class C, class = void>
struct traits_of_impl {
  using type = component_traits;
};
template <class C>
struct traits_of_impl<C, std::void_t<typename C::traits>> {
  using type = std::conditional_t<traits_derived<C>::value, typename C::traits, component_traits>;
};
template <class C>
using traits_of = typename traits_of_impl<C>::type;

template <class C, class = void>
struct scalars_of_impl {
  using type = no_scalars;
};
template <class C>
struct scalars_of_impl<C, std::void_t<typename C::scalars>> {
  using type = typename C::scalars;
};
template <class C>
using scalars_of = typename scalars_of_impl<C>::type;

// The generator of the component's stochastic rounding (its bfloat16 state
// fields written stochastically; a writer's weights): its `generator`
// member type, else the default (cast/generator.hpp).
template <class C, class = void>
struct generator_of_impl {
  using type = default_generator;
};
template <class C>
struct generator_of_impl<C, std::void_t<typename C::generator>> {
  static_assert(is_generator_v<typename C::generator>,
                "mixprec: a component's `generator` must be a generator policy (cast/generator.hpp), e.g. "
                "splitmix_generator or philox_generator");
  using type = typename C::generator;
};
template <class C>
using generator_of = typename generator_of_impl<C>::type;

#define MIXPREC_DETECT(trait, expr)  \
  template <class C, class = void>   \
  struct trait : std::false_type {}; \
  template <class C>                 \
  struct trait<C, std::void_t<decltype(expr)>> : std::true_type {};

MIXPREC_DETECT(has_initial_scalars, std::declval<const C&>().initial_scalars())
MIXPREC_DETECT(has_initial_scalars_for_arena,
               std::declval<const C&>().initial_scalars(std::declval<const arena_info&>()))
MIXPREC_DETECT(has_state, C::state[0])
MIXPREC_DETECT(has_statistics, C::statistics[0])
MIXPREC_DETECT(has_uses, std::declval<const C&>().uses(std::size_t{0}))
MIXPREC_DETECT(has_initial_state, std::declval<const C&>().initial_state(std::size_t{0}))
MIXPREC_DETECT(has_initial_state_for_parameter,
               std::declval<const C&>().initial_state(std::size_t{0}, std::declval<const arena_info&>(),
                                                      std::size_t{0}))
MIXPREC_DETECT(has_power, std::declval<const C&>().power(std::size_t{0}))
MIXPREC_DETECT(has_variants, C::variants)
MIXPREC_DETECT(has_multiplier, std::declval<const C&>().multiplier(std::declval<const scalars_of<C>&>()))
MIXPREC_DETECT(has_restored_scalars, std::declval<const C&>().restored_scalars(std::declval<scalars_of<C>>(),
                                                                               std::declval<const scalars_of<C>&>(),
                                                                               std::declval<const C&>()))
MIXPREC_DETECT(has_report, std::declval<const C&>().report(quantity::loss_scale, std::declval<const scalars_of<C>&>(),
                                                           std::declval<const scalars_of<C>&>()))
#undef MIXPREC_DETECT

// Whether C has any member named X (data, function, overloaded or
// template): a class deriving from C and from one with X finds X
// ambiguous exactly when C has one. Nothing of C's is instantiated.
// Components are plain structs (component_check refuses a final one).
#define MIXPREC_HAS_MEMBER_NAMED(X)                                     \
  struct has_member_##X##_probe {                                       \
    int X;                                                              \
  };                                                                    \
  template <class C, bool = std::is_class_v<C> && !std::is_final_v<C>>  \
  struct has_member_##X : std::false_type {};                           \
  template <class C>                                                    \
  struct has_member_##X<C, true> {                                      \
    struct both : C, has_member_##X##_probe {};                         \
    template <class U>                                                  \
    static std::false_type test(decltype(&U::X));                       \
    template <class U>                                                  \
    static std::true_type test(...);                                    \
    static constexpr bool value = decltype(test<both>(nullptr))::value; \
  };
MIXPREC_HAS_MEMBER_NAMED(update)
MIXPREC_HAS_MEMBER_NAMED(decide)
MIXPREC_HAS_MEMBER_NAMED(decide_row)
MIXPREC_HAS_MEMBER_NAMED(decide_column)
MIXPREC_HAS_MEMBER_NAMED(decide_parameter)
MIXPREC_HAS_MEMBER_NAMED(initial_scalars)
MIXPREC_HAS_MEMBER_NAMED(visit_scalars)
MIXPREC_HAS_MEMBER_NAMED(visit_hyperparameters)
MIXPREC_HAS_MEMBER_NAMED(traits)
MIXPREC_HAS_MEMBER_NAMED(name)
// Names a component author may mean for a protocol member.
MIXPREC_HAS_MEMBER_NAMED(apply)
MIXPREC_HAS_MEMBER_NAMED(rule)
MIXPREC_HAS_MEMBER_NAMED(transform)
MIXPREC_HAS_MEMBER_NAMED(update_element)
MIXPREC_HAS_MEMBER_NAMED(element_rule)
MIXPREC_HAS_MEMBER_NAMED(decide_rows)
MIXPREC_HAS_MEMBER_NAMED(decide_columns)
MIXPREC_HAS_MEMBER_NAMED(decide_parameters)
MIXPREC_HAS_MEMBER_NAMED(initial_scalar)
MIXPREC_HAS_MEMBER_NAMED(init_scalars)
MIXPREC_HAS_MEMBER_NAMED(visit_hyperparams)
MIXPREC_HAS_MEMBER_NAMED(visit_scalar)
MIXPREC_HAS_MEMBER_NAMED(stats)
MIXPREC_HAS_MEMBER_NAMED(states)
#undef MIXPREC_HAS_MEMBER_NAMED

// The rules and visitors are templates on what the engine passes them
// (contexts, visitors), found by name: a member template named X whose
// address cannot be taken without its arguments. Detecting them by a
// specialization (update<int>) would instantiate a declaration that no code
// calls, which nvcc reports ("declared but never referenced", #177) for
// every component in an anonymous namespace. Their shape (const, static,
// the parameters) is checked where the engine calls them
// (component/protocol_check.hpp); a member named X that is not a template
// is refused by component_check.
#define MIXPREC_DETECT_TEMPLATE_MEMBER(X)                                   \
  template <class C, class = void>                                          \
  struct X##_is_plain : std::false_type {};                                 \
  template <class C>                                                        \
  struct X##_is_plain<C, std::void_t<decltype(&C::X)>> : std::true_type {}; \
  template <class C>                                                        \
  struct has_##X : std::bool_constant<has_member_##X<C>::value && !X##_is_plain<C>::value> {};
MIXPREC_DETECT_TEMPLATE_MEMBER(update)
MIXPREC_DETECT_TEMPLATE_MEMBER(decide)
MIXPREC_DETECT_TEMPLATE_MEMBER(decide_row)
MIXPREC_DETECT_TEMPLATE_MEMBER(decide_column)
MIXPREC_DETECT_TEMPLATE_MEMBER(decide_parameter)
MIXPREC_DETECT_TEMPLATE_MEMBER(visit_scalars)
MIXPREC_DETECT_TEMPLATE_MEMBER(visit_hyperparameters)
#undef MIXPREC_DETECT_TEMPLATE_MEMBER

// Alternative element rules selected by the options (amsgrad on or off):
// C::variants of them, c.variant() the one in use; the passes are
// instantiated per variant so that no element loop branches on an option.
template <class C>
constexpr int variant_count() {
  if constexpr (has_variants<C>::value) return C::variants;
  else return 1;
}
template <class C>
int variant_of(const C& c) {
  if constexpr (has_variants<C>::value) return c.variant();
  else return 0;
}

template <class C>
constexpr std::size_t field_count() {
  if constexpr (has_state<C>::value) return sizeof(C::state) / sizeof(C::state[0]);
  else return 0;
}
template <class C>
constexpr std::size_t statistic_count() {
  if constexpr (has_statistics<C>::value) return sizeof(C::statistics) / sizeof(C::statistics[0]);
  else return 0;
}
// The counts as constants for __host__ __device__ bodies: nvcc (without
// --expt-relaxed-constexpr) warns about calls of constexpr host functions
// there, even in constant expressions, but not in these initialisers.
template <class C>
inline constexpr std::size_t statistic_count_v = statistic_count<C>();
template <class C>
inline constexpr std::size_t field_count_v = field_count<C>();
template <class C>
constexpr state_field field_of(std::size_t k) {
  if constexpr (has_state<C>::value) return C::state[k];
  else return {"", format_id::f32};
}
template <class C, std::size_t J>
inline constexpr state_field field_of_v = field_of<C>(J);
template <class C>
constexpr statistic statistic_of(std::size_t k) {
  if constexpr (has_statistics<C>::value) return C::statistics[k];
  else return {"", scope::global, reduction::sum, source::input};
}

template <class C>
scalars_of<C> initial_scalars_of(const C& c, const arena_info& arena) {
  if constexpr (has_initial_scalars_for_arena<C>::value) return c.initial_scalars(arena);
  else if constexpr (has_initial_scalars<C>::value) return c.initial_scalars();
  else return {};
}
// Scalars read from a checkpoint, checked and made valid for c (by
// default taken as they are).
template <class C>
scalars_of<C> restored_scalars_of(const C& c, const scalars_of<C>& saved, const scalars_of<C>& initial,
                                  const C& saved_with) {
  if constexpr (has_restored_scalars<C>::value) return c.restored_scalars(saved, initial, saved_with);
  else return saved;
}
template <class C>
bool uses_field(const C& c, std::size_t k) {
  if constexpr (has_uses<C>::value) return c.uses(k);
  else return true;
}
template <class C>
float initial_state_of(const C& c, std::size_t k) {
  if constexpr (has_initial_state<C>::value) return c.initial_state(k);
  else return 0.0f;
}
template <class C>
MIXPREC_HOST_DEVICE float power_of(const C& c, std::size_t k) {
  if constexpr (has_power<C>::value) return c.power(k);
  else return 2.0f;
}

// A visitor that names fields "prefix.name" (a schedule inside a stage).
template <class V>
struct prefixed_visitor {
  V& v;
  const char* prefix;
  template <class T>
  void operator()(const char* name, const T& x) const {
    v((std::string(prefix) + "." + name).c_str(), x);
  }
};
template <class V>
prefixed_visitor<V> prefixed(V& v, const char* prefix) {
  return {v, prefix};
}

// Storage type of a state field format (float, bfloat16, or 8-bit codes).
template <format_id F>
using field_storage_t =
    std::conditional_t<F == format_id::bf16, bfloat16, std::conditional_t<is_coded(F), std::uint8_t, float>>;
// Bytes per entry of a state field of format f.
MIXPREC_HOST_DEVICE constexpr std::size_t entry_bytes(format_id f) {
  return f == format_id::f32 ? 4 : f == format_id::bf16 ? 2 : 1;
}

}  // namespace mixprec::detail
