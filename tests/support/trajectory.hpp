// Test support: runs a chain for 200 steps on the reference files'
// synthetic parameters (tests/data/README.md) and compares the fp32 master
// weights at every checked step with the reference, relative to
// max(|reference|, largest |reference| of its tensor) (per-element relative
// error alone is undefined where a weight crosses zero).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <mixprec/mixprec.hpp>

#include "reference_file.hpp"
#include "synthetic.hpp"

namespace test {

struct trajectory_result {
  double worst_relative = 0, worst_absolute = 0;
  std::size_t checked = 0;
};

// gradient(t, k, i): parameter k's gradient at element i, step t; the
// parameters are named `names` (Adam-mini partitions by name).
template <class Step>
trajectory_result run_trajectory(const reference_case& c, const std::vector<std::string>& names,
                                 const std::vector<mixprec::shape>& shapes, const std::vector<std::string>& groups,
                                 const Step& step,
                                 const std::function<float(std::uint64_t, std::size_t, std::size_t)>& gradient) {
  using namespace mixprec;
  parameters<float> p;
  for (std::size_t k = 0; k < shapes.size(); ++k) p.add(names.at(k), shapes[k], groups.at(k));
  p.finalize();
  for (std::size_t k = 0; k < shapes.size(); ++k) {
    std::vector<float> w(p[k].size);
    for (std::size_t i = 0; i < w.size(); ++i) w[i] = initial_weight(k, i);
    p.from_host(role::master, k, w);
  }
  auto state = step.init(p);
  const auto checks = c.all("check");
  std::size_t next = 0;
  trajectory_result r;
  for (std::uint64_t t = 1; t <= 200; ++t) {
    for (std::size_t k = 0; k < shapes.size(); ++k) {
      std::vector<float> g(p[k].size);
      for (std::size_t i = 0; i < g.size(); ++i) g[i] = gradient(t, k, i);
      p.from_host(role::grad, k, g);
    }
    step.apply(p, state);
    while (next < checks.size() && static_cast<std::uint64_t>(checks[next]->number(0)) == t) {
      const auto& line = *checks[next];
      const std::size_t k = static_cast<std::size_t>(line.number(1)), n = static_cast<std::size_t>(line.number(2));
      const std::vector<float> master = p.to_host(role::master, k);
      if (n != master.size()) throw std::runtime_error("reference size mismatch");
      double scale = 0;
      for (std::size_t i = 0; i < n; ++i) scale = std::max(scale, std::fabs(line.number(3 + i)));
      for (std::size_t i = 0; i < n; ++i) {
        const double want = line.number(3 + i), got = master[i];
        r.worst_relative = std::max(r.worst_relative, std::fabs(got - want) / std::max(std::fabs(want), scale));
        r.worst_absolute = std::max(r.worst_absolute, std::fabs(got - want));
        ++r.checked;
      }
      ++next;
    }
  }
  if (next != checks.size()) throw std::runtime_error("not every check was reached");
  return r;
}

// The same with parameters named p0, p1, ...
template <class Step>
trajectory_result run_trajectory(const reference_case& c, const std::vector<mixprec::shape>& shapes,
                                 const std::vector<std::string>& groups, const Step& step,
                                 const std::function<float(std::uint64_t, std::size_t, std::size_t)>& gradient) {
  std::vector<std::string> names;
  for (std::size_t k = 0; k < shapes.size(); ++k) names.push_back("p" + std::to_string(k));
  return run_trajectory(c, names, shapes, groups, step, gradient);
}

}  // namespace test
