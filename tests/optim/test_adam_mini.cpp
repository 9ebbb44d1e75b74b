// Adam-mini against a float64 transcription of the authors' algorithm
// (scripts/reference/adam_mini.py, tests/data/adam_mini_reference.txt): one
// second moment per parameter, and per row for the parameter partitioned as
// an embedding matrix; 200 steps with and without weight decay and with
// gradients scaled by 1e-3. float32 against float64: each step rounds a
// handful of operations at unit roundoff 2^-24, so after 200 steps the
// weights (of size ~0.5) agree to a few hundred roundoffs: 2e-5 absolute.
#include <cmath>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include <mixprec/mixprec.hpp>

#include "../support/errors.hpp"
#include "../support/trajectory.hpp"

using namespace mixprec;

TEST_SUITE("optim") {

TEST_CASE("adam-mini matches a float64 transcription of the paper over 200 steps") {
  const auto cases = test::read_reference("adam_mini_reference.txt");
  REQUIRE(cases.size() >= 3);
  const std::vector<shape> shapes = {{4, 5}, {7}, {2, 3, 2}, {6, 3}};
  for (const auto& c : cases) {
    const auto partition = c.get("partition");
    REQUIRE(partition.values.at(1) == "rows");
    for (std::size_t k = 1; k < 4; ++k) REQUIRE(partition.values.at(1 + k) == "tensor");
    adam_mini_options o;
    o.lr = static_cast<float>(c.number("lr"));
    o.beta1 = static_cast<float>(c.number("beta1"));
    o.beta2 = static_cast<float>(c.number("beta2"));
    o.eps = static_cast<float>(c.number("eps"));
    o.weight_decay = static_cast<float>(c.number("weight_decay"));
    o.row_groups = "embedding";
    const float grad_scale = static_cast<float>(c.number("grad_scale"));
    const auto r = test::run_trajectory(c, shapes, {"embedding", "default", "default", "default"}, adam_mini(o),
                                        [&](std::uint64_t t, std::size_t k, std::size_t i) {
                                          return test::synthetic_gradient(t, k, i, grad_scale);
                                        });
    MESSAGE("adam-mini " << c.name << ": worst absolute error " << r.worst_absolute << ", relative "
                         << r.worst_relative);
    CHECK(r.checked == 10 * (20 + 7 + 12 + 18));
    CHECK(r.worst_absolute <= 2e-5);
  }
}

TEST_CASE("adam-mini keeps one second moment per block") {
  parameters<float> p;
  p.add("embed", {100, 16}, "embedding");
  p.add("w", {16, 16});
  p.add("b", {16});
  p.finalize();
  adam_mini_options o;
  o.row_groups = "embedding";
  auto state = adam_mini(o).init(p);
  // m per element (4 bytes), v per parameter (3 floats), v per row of matrices (116 floats).
  CHECK(state.state_bytes() == p.padded_size() * 4 + 3 * 4 + (100 + 16) * 4);
  o.row_groups = "nothing";
  CHECK(test::contains(test::error_message([&] { (void)adam_mini(o).init(p); }), "the arena has no group \"nothing\""));
  parameters<float> q;
  q.add("v", {8}, "embedding");
  q.finalize();
  o.row_groups = "embedding";
  CHECK(test::contains(test::error_message([&] { (void)adam_mini(o).init(q); }), "rows need rank >= 2"));
}

}
