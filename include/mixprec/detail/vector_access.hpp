// Moving a group of consecutive elements between memory and registers in
// pieces of up to 16 bytes: 128-bit loads and stores on the GPU, so a warp
// moves 512 contiguous bytes per instruction. The memory address must be
// aligned to the piece (piece_aligned), the register side to 16 bytes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

#include <mixprec/core/config.hpp>

#if defined(MIXPREC_BACKEND_CUDA)
#include <vector_types.h>
#endif

namespace mixprec::detail {

template <std::size_t Bytes>
MIXPREC_HOST_DEVICE constexpr std::size_t piece_bytes() {
  return Bytes % 16 == 0 ? 16 : Bytes % 8 == 0 ? 8 : Bytes % 4 == 0 ? 4 : Bytes % 2 == 0 ? 2 : 1;
}

template <std::size_t Bytes>
MIXPREC_HOST_DEVICE bool piece_aligned(const void* p) {
  return reinterpret_cast<std::uintptr_t>(p) % piece_bytes<Bytes>() == 0;
}

#if defined(__CUDA_ARCH__)
template <std::size_t P>
struct piece_of;
template <>
struct piece_of<16> {
  using type = uint4;
};
template <>
struct piece_of<8> {
  using type = uint2;
};
template <>
struct piece_of<4> {
  using type = unsigned;
};
template <>
struct piece_of<2> {
  using type = unsigned short;
};
template <>
struct piece_of<1> {
  using type = unsigned char;
};
#endif

// Copies Bytes bytes between memory and registers, either way: the memory
// side piece-aligned, the register side 16-byte aligned.
template <std::size_t Bytes>
MIXPREC_HOST_DEVICE void copy_pieces(const void* from, void* to) {
#if defined(__CUDA_ARCH__)
  using piece = typename piece_of<piece_bytes<Bytes>()>::type;
  constexpr std::size_t n = Bytes / sizeof(piece);
#pragma unroll
  for (std::size_t k = 0; k < n; ++k) static_cast<piece*>(to)[k] = static_cast<const piece*>(from)[k];
#else
  std::memcpy(to, from, Bytes);
#endif
}

}  // namespace mixprec::detail
