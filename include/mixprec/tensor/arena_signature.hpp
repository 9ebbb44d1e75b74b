// What identifies a parameter arena's layout: its formats and, per
// parameter, name, shape and group. A chain state remembers the signature
// of the arena it was made for and compares a 64-bit hash of it on every
// apply (cheap); on a mismatch it names the first difference.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include <mixprec/core/error.hpp>
#include <mixprec/tensor/shape.hpp>

namespace mixprec::detail {

struct arena_signature {
  struct entry {
    std::string name;
    mixprec::shape shape;
    std::string group;
  };
  std::string formats;  // "model/grad/master", e.g. "bfloat16/half/float"
  std::vector<entry> entries;
  std::uint64_t hash = 0;

  void add(const std::string& name, const mixprec::shape& s, const std::string& group) {
    entries.push_back({name, s, group});
  }
  // Seals the signature: computes its hash (FNV-1a over every field).
  void seal() {
    std::uint64_t h = 0xcbf29ce484222325ull;
    auto mix = [&h](const void* p, std::size_t n) {
      const auto* b = static_cast<const unsigned char*>(p);
      for (std::size_t i = 0; i < n; ++i) h = (h ^ b[i]) * 0x100000001b3ull;
    };
    auto text = [&](const std::string& t) {
      const std::uint64_t n = t.size();
      mix(&n, sizeof n);
      mix(t.data(), t.size());
    };
    text(formats);
    for (const entry& e : entries) {
      text(e.name);
      const std::uint64_t r = e.shape.rank();
      mix(&r, sizeof r);
      for (std::size_t x : e.shape) {
        const std::uint64_t v = x;
        mix(&v, sizeof v);
      }
      text(e.group);
    }
    hash = h;
  }

  // "" when equal; else the first difference, in words.
  std::string difference(const arena_signature& other) const {
    if (formats != other.formats) return concat("formats are ", formats, " but ", other.formats);
    if (entries.size() != other.entries.size()) return concat(entries.size(), " parameters but ", other.entries.size());
    for (std::size_t k = 0; k < entries.size(); ++k) {
      const entry& a = entries[k];
      const entry& b = other.entries[k];
      if (a.name != b.name) return concat("parameter ", k, " is \"", a.name, "\" but \"", b.name, "\"");
      if (a.shape != b.shape)
        return concat("parameter \"", a.name, "\" has shape ", a.shape.to_string(), " but ", b.shape.to_string());
      if (a.group != b.group)
        return concat("parameter \"", a.name, "\" is in group \"", a.group, "\" but \"", b.group, "\"");
    }
    return hash == other.hash ? std::string() : std::string("the arenas differ");
  }
};

}  // namespace mixprec::detail
