// Test support: the message of the mixprec::error a call throws.
#pragma once

#include <string>

#include <mixprec/core/error.hpp>

namespace test {

// The what() of the mixprec::error that f() throws; a marker string when it
// throws something else or nothing.
template <class F>
std::string error_message(F&& f) {
  try {
    f();
  } catch (const mixprec::error& e) {
    return e.what();
  } catch (...) {
    return "<an exception other than mixprec::error>";
  }
  return "<no exception>";
}

inline bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

}  // namespace test
