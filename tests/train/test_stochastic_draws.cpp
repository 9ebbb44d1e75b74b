// The step's stochastic rounding (the writer's model copy and the bfloat16
// state fields) for each generator policy: the bits are those of the
// per-element definition, convert(x, round_stochastic<G>{seed, step},
// index), whatever the thread count, the tile layout (runs of a parameter,
// or whole rows when a component needs positions) and the way through the
// update pass (the host's chunked draws; built into test_passes_in_groups,
// the GPU's groups of 8). And no two state fields of a chain share a seed.
#include <cmath>
#include <cstdint>
#include <string>
#include <tuple>
#include <vector>

#include <doctest/doctest.h>

#include <mixprec/mixprec.hpp>

#if defined(MIXPREC_BACKEND_OMP)
#include <omp.h>
#endif

#include "../support/device.hpp"
#include "../support/generators.hpp"
#include "../support/synthetic.hpp"

using namespace mixprec;

// A named namespace: nvcc warns of unreferenced member templates of
// components in an unnamed one (the protocol check takes their address).
namespace stochastic_draws_test {

// The identity, asking for positions: the step then tiles whole rows.
struct by_rows {
  static constexpr const char* name = "by_rows";
  struct traits : component_traits {
    static constexpr bool needs_position = true;
  };
  template <class Ctx>
  MIXPREC_HOST_DEVICE float update(float u, const Ctx&) const {
    return u;
  }
};

using arena = parameters<bfloat16, bfloat16>;
constexpr std::uint64_t writer_seed = 5;

// Rows of 53 and 7 elements (row tiles start anywhere in a generator call),
// a vector of 1000 and one of 4101 (a tile of 4096 and a tail of 5).
void make(arena& p) {
  p.add("a", {37, 53});
  p.add("b", {1000});
  p.add("c", {3, 5, 7});
  p.add("d", {4101});
  p.finalize();
  for (std::size_t k = 0; k < p.count(); ++k) {
    std::vector<float> w(p[k].size);
    for (std::size_t i = 0; i < w.size(); ++i) w[i] = test::initial_weight(k, i);
    p.from_host(role::master, k, w);
  }
}

struct outcome {
  std::vector<float> master;
  std::vector<bfloat16> model, exp_avg, exp_avg_sq;
};

// `steps` steps of the chain (scale_by_adam is its component K) on the
// same gradients every time.
template <std::size_t K, class Chain>
outcome run_steps(const Chain& step, int steps) {
  arena p;
  make(p);
  auto st = step.init(p);
  for (int t = 1; t <= steps; ++t) {
    std::vector<float> g(p.element_count());
    for (std::size_t i = 0; i < g.size(); ++i)
      g[i] = test::synthetic_gradient(static_cast<std::uint64_t>(t), 1, i, 0.5f);
    p.from_host(role::grad, g);
    step.apply(p, st);
  }
  outcome o;
  o.master = test::to_host(p.master_data(), p.padded_size());
  o.model = test::to_host(p.model_data(), p.padded_size());
  const auto m = st.template field<K, bfloat16>("exp_avg");
  const auto v = st.template field<K, bfloat16>("exp_avg_sq");
  o.exp_avg = test::to_host(m.data(), m.size());
  o.exp_avg_sq = test::to_host(v.data(), v.size());
  return o;
}

template <class T>
std::size_t differences(const std::vector<T>& a, const std::vector<T>& b) {
  if (a.size() != b.size()) return a.size() + b.size();
  std::size_t d = 0;
  for (std::size_t i = 0; i < a.size(); ++i) d += to_bits(a[i]) != to_bits(b[i]) ? 1 : 0;
  return d;
}
std::size_t differences(const outcome& a, const outcome& b) {
  return differences(a.master, b.master) + differences(a.model, b.model) + differences(a.exp_avg, b.exp_avg) +
         differences(a.exp_avg_sq, b.exp_avg_sq);
}

template <class G>
auto adamw_chain() {
  return chain(adamw<bfloat16, G>(adamw_options{}), round_model_stochastic<G>{writer_seed});
}

// Two components whose bfloat16 fields (a, b; c) store the same value:
// exactly halfway between two bfloat16 values, so each rounding is a fair
// coin drawn from the field's own seed.
constexpr float halfway = 1.0f + 1.0f / 256.0f;
struct two_fields {
  static constexpr const char* name = "two_fields";
  static constexpr state_field state[] = {{"a", format_id::bf16}, {"b", format_id::bf16}};
  static constexpr field_id<field_index(state, "a")> a{};
  static constexpr field_id<field_index(state, "b")> b{};
  template <class Ctx>
  MIXPREC_HOST_DEVICE float update(float u, const Ctx& ctx) const {
    ctx.state(a).set(halfway);
    ctx.state(b).set(halfway);
    return u;
  }
};
struct one_field {
  static constexpr const char* name = "one_field";
  static constexpr state_field state[] = {{"c", format_id::bf16}};
  static constexpr field_id<field_index(state, "c")> c{};
  template <class Ctx>
  MIXPREC_HOST_DEVICE float update(float u, const Ctx& ctx) const {
    ctx.state(c).set(halfway);
    return u;
  }
};

// A component drawing from generator G.
template <class C, class G>
struct with_generator : C {
  using generator = G;
};

}  // namespace stochastic_draws_test

using namespace stochastic_draws_test;

TEST_SUITE("train") {
  TEST_CASE_TEMPLATE("the step's stochastic rounding is the per-element definition on any thread count and tiling", G,
                     splitmix_generator, philox_generator) {
    constexpr int steps = 3;
    const outcome base = run_steps<2>(adamw_chain<G>(), steps);
    // The model copy: the master weights rounded with the writer's key.
    arena p;
    make(p);
    std::size_t wrong = 0, checked = 0;
    for (std::size_t k = 0; k < p.count(); ++k) {
      for (std::size_t i = p[k].offset; i < p[k].offset + p[k].size; ++i, ++checked)
        wrong += to_bits(base.model[i]) !=
                 to_bits(convert<bfloat16>(base.master[i], round_stochastic<G>{writer_seed, steps}, i));
    }
    CHECK(checked == p.element_count());
    CHECK_MESSAGE(wrong == 0, std::string(G::name), ": model copy against convert");
    // Whole rows per tile.
    CHECK_MESSAGE(differences(base, run_steps<3>(chain(by_rows{}, adamw<bfloat16, G>(adamw_options{}),
                                                       round_model_stochastic<G>{writer_seed}),
                                                 steps)) == 0,
                  std::string(G::name), ": row tiles");
#if defined(MIXPREC_BACKEND_OMP)
    const int threads = omp_get_max_threads();
    for (const int k : {1, 2, 3}) {
      omp_set_num_threads(k);
      CHECK_MESSAGE(differences(base, run_steps<2>(adamw_chain<G>(), steps)) == 0, std::string(G::name), ": ", k,
                    " threads");
    }
    omp_set_num_threads(threads);
#endif
  }

  TEST_CASE_TEMPLATE("bfloat16 moments are the fp32 moments rounded with their field's key", G, splitmix_generator,
                     philox_generator) {
    // After one step from zero, Adam's moments are (1 - b1) g and (1 - b2) g^2
    // in float whatever their format; stored in bfloat16 they must be those
    // values rounded by convert with the field's seed (detail::field_seed of
    // its index in the chain) at step 1, element by element.
    arena p;
    make(p);
    const auto fp32 = chain(adamw<float>(adamw_options{}), round_model_stochastic<G>{writer_seed});
    auto st = fp32.init(p);
    std::vector<float> g(p.element_count());
    for (std::size_t i = 0; i < g.size(); ++i) g[i] = test::synthetic_gradient(1, 1, i, 0.5f);
    p.from_host(role::grad, g);
    fp32.apply(p, st);
    const auto m32 = st.template field<2, float>("exp_avg"), v32 = st.template field<2, float>("exp_avg_sq");
    const std::vector<float> m = test::to_host(m32.data(), m32.size()), v = test::to_host(v32.data(), v32.size());
    const outcome bf = run_steps<2>(adamw_chain<G>(), 1);
    // Fields in chain order: scale_by_constant and decoupled_weight_decay
    // have none, so exp_avg is field 0 and exp_avg_sq field 1.
    using flat = std::tuple<scale_by_constant, decoupled_weight_decay<constant_schedule>>;
    constexpr std::size_t first =
        detail::field_count<std::tuple_element_t<0, flat>>() + detail::field_count<std::tuple_element_t<1, flat>>();
    std::size_t wrong_m = 0, wrong_v = 0, checked = 0;
    for (std::size_t k = 0; k < p.count(); ++k)
      for (std::size_t i = p[k].offset; i < p[k].offset + p[k].size; ++i, ++checked) {
        wrong_m += to_bits(bf.exp_avg[i]) !=
                   to_bits(convert<bfloat16>(m[i], round_stochastic<G>{detail::field_seed(first), 1}, i));
        wrong_v += to_bits(bf.exp_avg_sq[i]) !=
                   to_bits(convert<bfloat16>(v[i], round_stochastic<G>{detail::field_seed(first + 1), 1}, i));
      }
    CHECK(checked == p.element_count());
    CHECK_MESSAGE(wrong_m == 0, std::string(G::name), ": exp_avg");
    CHECK_MESSAGE(wrong_v == 0, std::string(G::name), ": exp_avg_sq");
  }

  TEST_CASE_TEMPLATE("no two state fields of a chain share their stochastic-rounding draws", G, splitmix_generator,
                     philox_generator) {
    // Fields a and b of one component, c of the next: each stores the same
    // halfway value, so two fields agree on an element with probability 1/2
    // if their draws are independent, always if they share them. (Seeds
    // used to be the component's index plus the field's, so b and c shared.)
    arena p;
    make(p);
    const auto step = chain(with_generator<two_fields, G>{}, with_generator<one_field, G>{}, sgd(sgd_options{}));
    auto st = step.init(p);
    std::vector<float> g(p.element_count(), 0.0f);
    p.from_host(role::grad, g);
    step.apply(p, st);
    const auto fa = st.template field<0, bfloat16>("a"), fb = st.template field<0, bfloat16>("b");
    const auto fc = st.template field<1, bfloat16>("c");
    const std::vector<bfloat16> a = test::to_host(fa.data(), fa.size()), b = test::to_host(fb.data(), fb.size()),
                                c = test::to_host(fc.data(), fc.size());
    const std::vector<bfloat16>* fields[] = {&a, &b, &c};
    const char* names[] = {"a", "b", "c"};
    const double n = static_cast<double>(p.element_count());
    const double bound = 4.0 * std::sqrt(0.25 / n);
    for (int x = 0; x < 3; ++x)
      for (int y = x + 1; y < 3; ++y) {
        std::size_t agree = 0;
        for (std::size_t k = 0; k < p.count(); ++k)
          for (std::size_t i = p[k].offset; i < p[k].offset + p[k].size; ++i)
            agree += to_bits((*fields[x])[i]) == to_bits((*fields[y])[i]) ? 1 : 0;
        const double share = static_cast<double>(agree) / n;
        CHECK_MESSAGE(std::fabs(share - 0.5) < bound, std::string(G::name), ": fields ", std::string(names[x]), " and ",
                      std::string(names[y]), " agree on ", share, " of the elements (independent: 0.5 +- ", bound, ")");
      }
  }

}  // TEST_SUITE
