// The canonical strided bit layout shared by the trainer and the engine
// (DESIGN.md "Canonical layout"). For n weights and a network with N_out
// outputs there are S = ceil(n / N_out) slices; weight i is output bit
// j = i / S of slice s = i % S. Stored vector E_t holds bit s of every slice
// for input t, packed 64 per uint64 word, least significant bit first, each
// vector padded to a whole number of words (padding bits are zero).
#ifndef FLEXOR_ENGINE_CODEC_BIT_LAYOUT_H_
#define FLEXOR_ENGINE_CODEC_BIT_LAYOUT_H_

#include <cstdint>
#include <vector>

#include "engine/codec/xor_network.h"

namespace flexor {

inline int64_t SliceCount(int64_t num_weights, int n_out) {
  return (num_weights + n_out - 1) / n_out;
}
// Row-aligned slices (a model-format option, BitPlane.slices): S rounded up
// to a multiple of the row length K, so that every segment D_j starts on a
// row boundary and holds whole rows. The weights past num_weights are
// padding the engine never reads (at most N_out (K - 1) of them).
inline int64_t RowAlignedSliceCount(int64_t num_weights, int n_out,
                                    int64_t row_length) {
  const int64_t s = SliceCount(num_weights, n_out);
  return (s + row_length - 1) / row_length * row_length;
}
inline int64_t WordsForBits(int64_t bits) { return (bits + 63) / 64; }

inline bool GetBit(const uint64_t* words, int64_t i) {
  return (words[i >> 6] >> (i & 63)) & 1u;
}
inline void SetBit(uint64_t* words, int64_t i, bool v) {
  const uint64_t m = uint64_t{1} << (i & 63);
  words[i >> 6] = v ? (words[i >> 6] | m) : (words[i >> 6] & ~m);
}

// Stored bits of one plane: n_in vectors of words_per_vector words each.
struct EncryptedBits {
  int64_t num_weights = 0;
  int64_t slices = 0;
  int64_t words_per_vector = 0;
  std::vector<uint64_t> words;  // [n_in][words_per_vector]
};

// Allocates zeroed stored bits for `num_weights` weights under `net`, with
// `slices` slices (0: the canonical SliceCount).
EncryptedBits MakeEncryptedBits(int64_t num_weights, const XorNetwork& net,
                                int64_t slices = 0);

// Reference decryption: returns the num_weights weight bits (0 = +1, 1 = -1)
// packed row-major (bit i = weight i), computed bit by bit from M, for
// `slices` slices (0: the canonical SliceCount).
std::vector<uint64_t> DecryptReference(const XorNetwork& net,
                                       const uint64_t* stored,
                                       int64_t words_per_vector,
                                       int64_t num_weights, int64_t slices = 0);

// Packs row-major weight bits for plain coding (N_in = N_out = 1): the
// stored vector is the row-major bit vector itself.
EncryptedBits EncodePlain(const std::vector<uint8_t>& bits);

}  // namespace flexor

#endif  // FLEXOR_ENGINE_CODEC_BIT_LAYOUT_H_
