// A minimal stand-in for the part of doctest's API that mixprec's tests use,
// written for this project. It is used only where doctest is not installed
// (e.g. a GPU machine without network access, see scripts/gpu-check.sh):
// CMake then builds the same test sources against it and registers one CTest
// test per executable instead of one per case.
//
// Supported: TEST_SUITE, TEST_CASE, TEST_CASE_TEMPLATE, TYPE_TO_STRING,
// SUBCASE (one level), CHECK, CHECK_FALSE, REQUIRE, CHECK_THROWS_WITH_AS,
// INFO, CAPTURE, MESSAGE, FAIL, doctest::Approx, doctest::Contains, and the
// command-line options --test-case=<name or prefix*>, --list-test-cases.
#pragma once

#include <cmath>
#include <cstdio>
#include <cstring>
#include <exception>
#include <functional>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

namespace mt {

struct test_case {
  std::string name, suite, file;
  int line;
  std::function<void()> run;
};

inline std::vector<test_case>& registry() {
  static std::vector<test_case> r;
  return r;
}

struct state_type {
  int subcase_target = 0, subcase_seen = 0;
  std::vector<std::string> info;  // active INFO/CAPTURE messages and subcase names
  long checks = 0, failures = 0;
  bool case_failed = false;
};
inline state_type& state() {
  static state_type s;
  return s;
}

struct abort_case {};

inline void report(const char* file, int line, const std::string& what) {
  state_type& s = state();
  ++s.failures;
  s.case_failed = true;
  std::cout << file << ":" << line << ": ERROR: " << what << "\n";
  for (const std::string& m : s.info) std::cout << "  logged: " << m << "\n";
}

inline void check(bool ok, const char* file, int line, const char* macro, const char* expr, bool fatal) {
  ++state().checks;
  if (ok) return;
  report(file, line, std::string(macro) + "( " + expr + " ) is NOT correct!");
  if (fatal) throw abort_case{};
}

struct info_scope {
  explicit info_scope(std::string m) { state().info.push_back(std::move(m)); }
  ~info_scope() { state().info.pop_back(); }
  info_scope(const info_scope&) = delete;
  info_scope& operator=(const info_scope&) = delete;
};

struct subcase_guard {
  bool active;
  explicit subcase_guard(const char* name) : active(state().subcase_seen++ == state().subcase_target) {
    if (active) state().info.push_back(std::string("subcase: ") + name);
  }
  ~subcase_guard() {
    if (active) state().info.pop_back();
  }
  explicit operator bool() const { return active; }
};

template <class T>
struct type_name {
  static const char* get() { return "?"; }
};
template <>
struct type_name<float> {
  static const char* get() { return "float"; }
};
template <>
struct type_name<double> {
  static const char* get() { return "double"; }
};

struct registrar {
  registrar(const char* name, const char* suite, const char* file, int line, std::function<void()> f) {
    registry().push_back({name, suite, file, line, std::move(f)});
  }
};

template <class T>
struct tag {
  using type = T;
};

template <class... Types>
struct template_registrar {
  template <class F>
  template_registrar(const char* name, const char* suite, const char* file, int line, F f) {
    (registry().push_back({std::string(name) + "<" + type_name<Types>::get() + ">", suite, file, line,
                           [f] { f(tag<Types>{}); }}),
     ...);
  }
};

inline bool matches(const std::string& name, const std::string& filter) {
  if (filter.empty()) return true;
  if (filter.back() == '*') return name.compare(0, filter.size() - 1, filter, 0, filter.size() - 1) == 0;
  return name == filter;
}

inline int run(int argc, char** argv) {
  std::string filter;
  bool list = false;
  for (int a = 1; a < argc; ++a) {
    const std::string arg = argv[a];
    if (arg.rfind("--test-case=", 0) == 0) filter = arg.substr(12);
    else if (arg.rfind("-tc=", 0) == 0) filter = arg.substr(4);
    else if (arg == "--list-test-cases" || arg == "-ltc") list = true;
  }
  int passed = 0, failed = 0;
  for (const test_case& tc : registry()) {
    if (!matches(tc.name, filter)) continue;
    if (list) {
      std::cout << tc.name << "\n";
      continue;
    }
    state_type& s = state();
    s.case_failed = false;
    for (int target = 0;; ++target) {
      s.subcase_target = target;
      s.subcase_seen = 0;
      s.info.clear();
      try {
        tc.run();
      } catch (const abort_case&) {
      } catch (const std::exception& e) {
        report(tc.file.c_str(), tc.line, std::string("test case threw: ") + e.what());
      } catch (...) {
        report(tc.file.c_str(), tc.line, "test case threw an unknown exception");
      }
      if (s.subcase_seen <= target + 1) break;
    }
    if (s.case_failed) {
      ++failed;
      std::cout << "FAILED: " << tc.name << "\n";
    } else {
      ++passed;
    }
  }
  if (!list)
    std::cout << "[minitest] test cases: " << passed + failed << " | " << passed << " passed | " << failed
              << " failed | checks: " << state().checks << ", failures: " << state().failures << "\n";
  return failed == 0 ? 0 : 1;
}

}  // namespace mt

namespace doctest {

class Approx {
 public:
  explicit Approx(double v) : value_(v) {}
  Approx& epsilon(double e) {
    epsilon_ = e;
    return *this;
  }
  Approx& scale(double s) {
    scale_ = s;
    return *this;
  }
  friend bool operator==(double a, const Approx& b) {
    return std::fabs(a - b.value_) < b.epsilon_ * (b.scale_ + std::fmax(std::fabs(a), std::fabs(b.value_)));
  }
  friend bool operator==(const Approx& b, double a) { return a == b; }
  friend bool operator!=(double a, const Approx& b) { return !(a == b); }
  friend bool operator!=(const Approx& b, double a) { return !(a == b); }

 private:
  double value_, epsilon_ = 1.1920928955078125e-05, scale_ = 1.0;
};

class Contains {
 public:
  explicit Contains(std::string s) : s_(std::move(s)) {}
  bool check(const std::string& text) const { return text.find(s_) != std::string::npos; }
  const std::string& text() const { return s_; }

 private:
  std::string s_;
};

}  // namespace doctest

inline const char* mt_current_suite() { return ""; }

#define MT_CAT2(a, b) a##b
#define MT_CAT(a, b) MT_CAT2(a, b)
#define MT_UNIQUE(name) MT_CAT(name, __COUNTER__)

#define TEST_SUITE(name)                                                 \
  namespace MT_CAT(mt_suite_, __LINE__) {                                \
  inline const char* mt_current_suite() { return name; }                 \
  }                                                                      \
  namespace MT_CAT(mt_suite_, __LINE__)

#define MT_TEST_CASE(fn, name)                                                               \
  static void fn();                                                                          \
  static const ::mt::registrar MT_CAT(fn, _reg)(name, mt_current_suite(), __FILE__, __LINE__, fn); \
  static void fn()
#define TEST_CASE(name) MT_TEST_CASE(MT_UNIQUE(mt_test_), name)

#define MT_TEST_CASE_TEMPLATE(fn, name, T, ...)                                                         \
  template <class T>                                                                                    \
  static void fn();                                                                                     \
  static const ::mt::template_registrar<__VA_ARGS__> MT_CAT(fn, _reg)(                                  \
      name, mt_current_suite(), __FILE__, __LINE__, [](auto t) { fn<typename decltype(t)::type>(); }); \
  template <class T>                                                                                    \
  static void fn()
#define TEST_CASE_TEMPLATE(name, T, ...) MT_TEST_CASE_TEMPLATE(MT_UNIQUE(mt_test_), name, T, __VA_ARGS__)

#define TYPE_TO_STRING(...)                              \
  namespace mt {                                         \
  template <>                                            \
  struct type_name<__VA_ARGS__> {                        \
    static const char* get() { return #__VA_ARGS__; }    \
  };                                                     \
  }

#define SUBCASE(name) if (const ::mt::subcase_guard MT_UNIQUE(mt_subcase_){name})

#define CHECK(...) ::mt::check(static_cast<bool>(__VA_ARGS__), __FILE__, __LINE__, "CHECK", #__VA_ARGS__, false)
#define CHECK_FALSE(...) ::mt::check(!static_cast<bool>(__VA_ARGS__), __FILE__, __LINE__, "CHECK_FALSE", #__VA_ARGS__, false)
#define REQUIRE(...) ::mt::check(static_cast<bool>(__VA_ARGS__), __FILE__, __LINE__, "REQUIRE", #__VA_ARGS__, true)
#define REQUIRE_FALSE(...) ::mt::check(!static_cast<bool>(__VA_ARGS__), __FILE__, __LINE__, "REQUIRE_FALSE", #__VA_ARGS__, true)

#define CHECK_THROWS_WITH_AS(expr, matcher, type)                                                    \
  do {                                                                                               \
    bool mt_ok = false;                                                                              \
    try {                                                                                            \
      expr;                                                                                          \
    } catch (const type& mt_e) {                                                                     \
      mt_ok = (matcher).check(mt_e.what());                                                          \
    } catch (...) {                                                                                  \
    }                                                                                                \
    ::mt::check(mt_ok, __FILE__, __LINE__, "CHECK_THROWS_WITH_AS", #expr ", " #matcher ", " #type, false); \
  } while (false)

#define INFO(...)                                                                   \
  const ::mt::info_scope MT_UNIQUE(mt_info_)(static_cast<const std::ostringstream&>( \
      std::ostringstream() << __VA_ARGS__).str())
#define CAPTURE(x) INFO(#x " := " << (x))
#define MESSAGE(...)                                                                                 \
  do {                                                                                               \
    std::ostringstream mt_os;                                                                        \
    mt_os << __VA_ARGS__;                                                                            \
    std::cout << __FILE__ << ":" << __LINE__ << ": MESSAGE: " << mt_os.str() << "\n";               \
  } while (false)
#define FAIL(...)                                                              \
  do {                                                                         \
    std::ostringstream mt_os;                                                  \
    mt_os << __VA_ARGS__;                                                      \
    ::mt::report(__FILE__, __LINE__, "FAIL: " + mt_os.str());                  \
    throw ::mt::abort_case{};                                                  \
  } while (false)

#if defined(DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN)
int main(int argc, char** argv) { return ::mt::run(argc, argv); }
#endif
