// The widest XOR-gate network row (taps per output) the codec and the
// decryption kernels support. A header of its own so that the per-ISA
// kernel sources, which must not include headers with non-trivial inline
// code (they are built with other -m flags), can size buffers by it.
#ifndef FLEXOR_ENGINE_CODEC_XOR_WIDTH_H_
#define FLEXOR_ENGINE_CODEC_XOR_WIDTH_H_

namespace flexor {

inline constexpr int kMaxXorWidth = 64;

}  // namespace flexor

#endif  // FLEXOR_ENGINE_CODEC_XOR_WIDTH_H_
