// Library version, checked by the CMake package's version file too.
#pragma once

#define MIXPREC_VERSION_MAJOR 0
#define MIXPREC_VERSION_MINOR 1
#define MIXPREC_VERSION_PATCH 0
#define MIXPREC_VERSION (MIXPREC_VERSION_MAJOR * 10000 + MIXPREC_VERSION_MINOR * 100 + MIXPREC_VERSION_PATCH)

namespace mixprec {
inline constexpr int version_major = MIXPREC_VERSION_MAJOR;
inline constexpr int version_minor = MIXPREC_VERSION_MINOR;
inline constexpr int version_patch = MIXPREC_VERSION_PATCH;
}  // namespace mixprec
