// Parameter names matched against lists of substrings, as the authors'
// Adam-mini picks its blocks and its parameters without weight decay: a
// name matches a list when any item is a substring of the name in lower
// case ("layers.0.self_attn.q_proj.weight" matches "q_proj"). A list is
// written as comma-separated items ("norm,ln,bias"); an empty list matches
// nothing. Items must be non-empty (Python's `"" in name` is always true)
// and in lower case (one with a capital letter could never match).
#pragma once

#include <cctype>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

#include <mixprec/core/error.hpp>

namespace mixprec::detail {

inline std::string lower_case(std::string s) {
  for (char& ch : s) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  return s;
}

// The items of `list`; `who` and `option` name it in errors.
inline std::vector<std::string> name_patterns(const char* list, const char* who, const char* option) {
  std::vector<std::string> out;
  const std::string text = list ? list : "";
  if (text.empty()) return out;
  std::size_t at = 0;
  while (true) {
    const std::size_t comma = text.find(',', at);
    std::string item = text.substr(at, comma == std::string::npos ? std::string::npos : comma - at);
    require(!item.empty(), who, ": ", option, " \"", text, "\" has an empty item (it would match every name)");
    require(item == lower_case(item), who, ": ", option, " item \"", item,
            "\" has capital letters; names are matched in lower case, so it could never match");
    out.push_back(std::move(item));
    if (comma == std::string::npos) break;
    at = comma + 1;
  }
  return out;
}

inline bool matches_any(const std::string& lower_name, const std::vector<std::string>& patterns) {
  for (const std::string& p : patterns)
    if (lower_name.find(p) != std::string::npos) return true;
  return false;
}

// A 64-bit FNV-1a fingerprint of lists, for checkpoints and rank checks
// (hyperparameters are numbers): other lists give another value.
inline std::uint64_t name_pattern_fingerprint(std::initializer_list<const char*> lists) {
  std::uint64_t h = 0xcbf29ce484222325ull;
  for (const char* list : lists) {
    for (const char* c = list ? list : ""; *c != '\0'; ++c) h = (h ^ static_cast<unsigned char>(*c)) * 0x100000001b3ull;
    h = (h ^ 0x1fu) * 0x100000001b3ull;  // a separator no list holds
  }
  return h;
}

}  // namespace mixprec::detail
