// Adam-mini against the authors' own implementation (Adam_mini of PyPI
// adam-mini 1.1.1, run by scripts/reference/adam_mini.py into
// tests/data/adam_mini_reference.txt): the blocks it chooses for each named
// parameter of a LLaMA (Hugging Face names, biases on q/k/v/o, grouped-query
// attention; Meta names) and a GPT-2, the weight decay it gives each, and
// the weights over 200 steps within 1e-6 relative (float32 against float32:
// the block means are reduced in double here, in float there). Then what
// cannot be split is refused with the parameter named, the state is one
// second moment per block, and a checkpoint keeps the partition's options.
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include <mixprec/mixprec.hpp>

#include "../support/errors.hpp"
#include "../support/trajectory.hpp"

using namespace mixprec;

namespace {

shape parse_shape(const std::string& text) {
  std::vector<std::size_t> dims;
  std::size_t at = 0;
  while (at <= text.size()) {
    const std::size_t x = text.find('x', at);
    dims.push_back(std::stoul(text.substr(at, x == std::string::npos ? std::string::npos : x - at)));
    if (x == std::string::npos) break;
    at = x + 1;
  }
  return shape(dims.begin(), dims.end());
}

struct named_case {
  std::vector<std::string> names;
  std::vector<shape> shapes;
  adam_mini_options options;
};

named_case read_case(const test::reference_case& c) {
  named_case n;
  for (const auto* line : c.all("param")) {
    REQUIRE(static_cast<std::size_t>(line->number(0)) == n.names.size());
    n.names.push_back(line->values.at(1));
    n.shapes.push_back(parse_shape(line->values.at(2)));
  }
  adam_mini_options& o = n.options;
  o.lr = static_cast<float>(c.number("lr"));
  o.beta1 = static_cast<float>(c.number("beta1"));
  o.beta2 = static_cast<float>(c.number("beta2"));
  o.eps = static_cast<float>(c.number("eps"));
  o.weight_decay = static_cast<float>(c.number("weight_decay"));
  o.dim = static_cast<std::uint32_t>(c.number("dim"));
  o.n_heads = static_cast<std::uint32_t>(c.number("n_heads"));
  o.n_kv_heads = static_cast<std::uint32_t>(c.number("n_kv_heads"));
  return n;  // the name lists keep the authors' defaults
}

}  // namespace

TEST_SUITE("optim") {
  TEST_CASE("adam-mini splits named parameters into the blocks of the authors' implementation") {
    const auto cases = test::read_reference("adam_mini_reference.txt");
    REQUIRE(cases.size() == 4);
    for (const auto& c : cases) {
      const named_case n = read_case(c);
      parameters<float> p;
      for (std::size_t k = 0; k < n.names.size(); ++k) p.add(n.names[k], n.shapes[k]);
      p.finalize();
      auto state = adam_mini(n.options).init(p);
      const std::vector<float> rows = state.field<1>("block_rows").to_host();
      const std::vector<float> decays = state.field<0>("decays").to_host();
      const auto branches = c.all("branch");
      REQUIRE(branches.size() == n.names.size());
      for (std::size_t k = 0; k < n.names.size(); ++k) {
        const std::string b = branches[k]->values.at(1);
        INFO(c.name << ": " << n.names[k] << " is " << b << " there");
        const std::size_t colon = b.find(':');
        const std::string kind = b.substr(0, colon);
        const double blocks = colon == std::string::npos ? 0 : std::stod(b.substr(colon + 1));
        const double matrix_rows = n.shapes[k].rank() == 2 ? static_cast<double>(n.shapes[k][0]) : 0;
        if (kind == "element") CHECK(rows[k] == -1.0f);
        else if (kind == "tensor") CHECK(rows[k] == 0.0f);
        else if (kind == "row") CHECK((rows[k] == 1.0f && blocks == matrix_rows));
        else if (kind == "head") CHECK(static_cast<double>(rows[k]) * blocks == matrix_rows);
        else FAIL("unknown branch " << b);
        // The group's weight decay there: 0 for norms and biases, the option's elsewhere.
        const double wd = branches[k]->number(2);
        CHECK(static_cast<double>(decays[k]) * n.options.weight_decay == doctest::Approx(wd));
      }
    }
  }

  TEST_CASE("adam-mini matches the authors' Adam_mini over 200 steps on named transformer parameters") {
    const auto cases = test::read_reference("adam_mini_reference.txt");
    REQUIRE(cases.size() == 4);
    double worst = 0;
    for (const auto& c : cases) {
      const named_case n = read_case(c);
      const float grad_scale = static_cast<float>(c.number("grad_scale"));
      std::size_t elements = 0;
      for (const shape& s : n.shapes) elements += s.size();
      const auto r = test::run_trajectory(
          c, n.names, n.shapes, std::vector<std::string>(n.names.size(), "default"), adam_mini(n.options),
          [&](std::uint64_t t, std::size_t k, std::size_t i) { return test::synthetic_gradient(t, k, i, grad_scale); });
      MESSAGE("adam-mini " << c.name << ": worst relative error " << r.worst_relative << " over " << r.checked
                           << " values");
      CHECK(r.checked == 6 * elements);
      CHECK(r.worst_relative <= 1e-6);
      worst = std::max(worst, r.worst_relative);
    }
    MESSAGE("adam-mini against adam-mini 1.1.1: worst relative error " << worst);
  }

  TEST_CASE("adam-mini refuses parameters it cannot split as their names ask") {
    const auto message = [](const std::string& name, const shape& s, adam_mini_options o = {}) {
      parameters<float> p;
      p.add(name, s);
      p.finalize();
      return test::error_message([&] { (void)adam_mini(o).init(p); });
    };
    adam_mini_options small;
    small.dim = 8;
    small.n_heads = 4;  // heads of 16 elements
    CHECK(test::contains(message("attn.relative_attention_bias.weight", {32, 4}),
                         "parameter \"attn.relative_attention_bias.weight\" matches element_names"));
    CHECK(test::contains(message("layers.0.q_proj.weight", {8, 8}),
                         "not a whole number of heads of dim * dim / "
                         "n_heads = 131072"));
    CHECK(message("layers.0.q_proj.weight", {8, 8}, small) == "<no exception>");
    CHECK(test::contains(message("layers.0.q_proj.weight", {4, 10}, small), "not a whole number of heads"));
    CHECK(test::contains(message("layers.0.q_proj.weight", {16, 3}, small), "is not a whole number of rows of 3"));
    CHECK(test::contains(message("layers.0.Q_PROJ.weight", {32}, small), "as a vector it can be one head of 16"));
    CHECK(test::contains(message("patch_embed.proj.weight", {4, 3, 2, 2}),
                         "matches row_names (one second moment per "
                         "row) but has rank 4"));
    CHECK(message("bert.attention.output.LayerNorm.weight", {8}) == "<no exception>");  // a vector: one block
    adam_mini_options o;
    o.row_names = "embed,,mlp";
    CHECK(test::contains(message("w", {4, 4}, o), "row_names \"embed,,mlp\" has an empty item"));
    o.row_names = "Embed";
    CHECK(test::contains(message("w", {4, 4}, o), "item \"Embed\" has capital letters"));
    o = {};
    o.no_decay_names = "norm,";
    CHECK(test::contains(message("w", {4, 4}, o), "no_decay_names \"norm,\" has an empty item"));
    o = {};
    o.n_kv_heads = 5;
    CHECK(test::contains(message("w", {4, 4}, o), "n_kv_heads (5) must divide n_heads (32)"));
    o = {};
    o.n_heads = 0;
    CHECK(test::contains(message("w", {4, 4}, o), "dim and n_heads must be positive"));
  }

  TEST_CASE("adam-mini keeps one second moment per block") {
    parameters<float> p;
    p.add("embed_tokens.weight", {100, 16});  // per row: 100
    p.add("q_proj.weight", {16, 16});         // 4 heads of 4 rows: a value per row, 16
    p.add("q_proj.bias", {16});               // per element: 16
    p.add("norm.weight", {16});               // one
    p.finalize();
    adam_mini_options o;
    o.dim = 16;
    o.n_heads = 4;
    auto state = adam_mini(o).init(p);
    // m per element (padded arena), v per row of the matrices, per element of
    // the vectors and per parameter; the partition and the decay flags per parameter.
    CHECK(state.state_bytes() == p.padded_size() * 4 + (100 + 16) * 4 + (16 + 16) * 4 + 4 * 4 + 4 * 4 + 4 * 4);
    // A bfloat16 first moment halves the per-element part only.
    CHECK(adam_mini<bfloat16>(o).init(p).state_bytes() == state.state_bytes() - p.padded_size() * 2);
    const std::vector<float> rows = state.field<1>("block_rows").to_host();
    CHECK(rows == std::vector<float>{1.0f, 4.0f, -1.0f, 0.0f});
    const std::vector<float> decays = state.field<0>("decays").to_host();
    CHECK(decays == std::vector<float>{1.0f, 1.0f, 0.0f, 0.0f});
    // The lists are options: nothing per element, every q/k matrix one block per row.
    o.element_names = "";
    o.head_names = "";
    o.row_names = "q_proj,embed";
    CHECK(adam_mini(o).init(p).field<1>("block_rows").to_host() == std::vector<float>{1.0f, 1.0f, 0.0f, 0.0f});
  }

  TEST_CASE("an adam-mini checkpoint keeps its state and refuses other name lists") {
    parameters<float> p;
    p.add("embed.weight", {6, 4});
    p.add("wq.weight", {4, 4});
    p.add("wq.bias", {4});
    p.add("ln.weight", {4});
    p.finalize();
    p.initialize_all(init::normal{0.0, 0.5}, 7);
    adam_mini_options o;
    o.dim = 4;
    o.n_heads = 2;
    o.weight_decay = 0.1f;
    const auto step = adam_mini(o);
    auto state = step.init(p);
    for (int t = 1; t <= 3; ++t) {
      std::vector<float> g(p.element_count());
      for (std::size_t i = 0; i < g.size(); ++i) g[i] = test::unit_value(t * 977ull + i);
      p.from_host(role::grad, g);
      step.apply(p, state);
    }
    const std::string path = "/tmp/mixprec_test_adam_mini.ckpt";
    save_checkpoint(path, step, p, state);
    parameters<float> q;
    q.add("embed.weight", {6, 4});
    q.add("wq.weight", {4, 4});
    q.add("wq.bias", {4});
    q.add("ln.weight", {4});
    q.finalize();
    auto loaded = step.init(q);
    load_checkpoint(path, step, q, loaded);
    CHECK(loaded.field<1>("row_exp_avg_sq").to_host() == state.field<1>("row_exp_avg_sq").to_host());
    CHECK(loaded.field<1>("exp_avg_sq").to_host() == state.field<1>("exp_avg_sq").to_host());
    CHECK(loaded.field<1>("block_rows").to_host() == state.field<1>("block_rows").to_host());
    adam_mini_options other = o;
    other.row_names = "embed";
    const auto other_step = adam_mini(other);
    auto other_state = other_step.init(q);
    CHECK(
        test::contains(test::error_message([&] { load_checkpoint(path, other_step, q, other_state); }), "name_lists"));
    std::remove(path.c_str());
  }
}
