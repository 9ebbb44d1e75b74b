// Optional record of the passes a step launches, for tests that count the
// reads of the gradient arena. Define MIXPREC_TRACE_PASSES before including
// mixprec to enable it; otherwise it compiles to nothing.
#pragma once

#if defined(MIXPREC_TRACE_PASSES)
#include <string>
#include <vector>
#endif

namespace mixprec::detail {

struct pass_record {
  const char* name;
  bool reads_gradients;
  bool writes_weights;
};

#if defined(MIXPREC_TRACE_PASSES)
inline std::vector<pass_record>& pass_log() {
  static std::vector<pass_record> log;
  return log;
}
inline void trace_pass(const char* name, bool reads_gradients, bool writes_weights) {
  pass_log().push_back({name, reads_gradients, writes_weights});
}
#else
inline void trace_pass(const char*, bool, bool) {}
#endif

}  // namespace mixprec::detail
