// Test support: reader of the reference-vector files in tests/data (written
// by scripts/reference/*.py): cases of "<key> <values...>" lines between
// "case <name>" and "end".
#pragma once

#include <cmath>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace test {

struct reference_line {
  std::string key;
  std::vector<std::string> values;
  double number(std::size_t k = 0) const { return parse(values.at(k)); }
  static double parse(const std::string& v) {
    if (v == "inf") return INFINITY;
    if (v == "-inf") return -INFINITY;
    if (v == "nan") return NAN;
    return std::strtod(v.c_str(), nullptr);
  }
};

struct reference_case {
  std::string name;
  std::vector<reference_line> lines;

  const reference_line& get(const std::string& key) const {
    for (const auto& l : lines)
      if (l.key == key) return l;
    throw std::runtime_error("reference case " + name + " has no key " + key);
  }
  bool has(const std::string& key) const {
    for (const auto& l : lines)
      if (l.key == key) return true;
    return false;
  }
  double number(const std::string& key) const { return get(key).number(); }
  std::string text(const std::string& key) const { return get(key).values.at(0); }
  std::vector<const reference_line*> all(const std::string& key) const {
    std::vector<const reference_line*> out;
    for (const auto& l : lines)
      if (l.key == key) out.push_back(&l);
    return out;
  }
};

inline std::vector<reference_case> read_reference(const std::string& file) {
  const std::string path = std::string(MIXPREC_TEST_DATA_DIR) + "/" + file;
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot open " + path);
  std::vector<reference_case> cases;
  std::string text;
  reference_case* current = nullptr;
  while (std::getline(in, text)) {
    if (text.empty() || text[0] == '#') continue;
    std::istringstream is(text);
    reference_line line;
    is >> line.key;
    std::string v;
    while (is >> v) line.values.push_back(v);
    if (line.key == "case") {
      cases.push_back({line.values.at(0), {}});
      current = &cases.back();
    } else if (line.key == "end") {
      current = nullptr;
    } else if (current) {
      current->lines.push_back(std::move(line));
    }
  }
  return cases;
}

}  // namespace test
