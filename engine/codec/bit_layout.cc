#include "engine/codec/bit_layout.h"

namespace flexor {

EncryptedBits MakeEncryptedBits(int64_t num_weights, const XorNetwork& net,
                                int64_t slices) {
  EncryptedBits bits;
  bits.num_weights = num_weights;
  bits.slices = slices > 0 ? slices : SliceCount(num_weights, net.n_out);
  bits.words_per_vector = WordsForBits(bits.slices);
  bits.words.assign(static_cast<size_t>(net.n_in * bits.words_per_vector), 0);
  return bits;
}

std::vector<uint64_t> DecryptReference(const XorNetwork& net,
                                       const uint64_t* stored,
                                       int64_t words_per_vector,
                                       int64_t num_weights, int64_t slices) {
  if (slices <= 0) slices = SliceCount(num_weights, net.n_out);
  std::vector<uint64_t> out(static_cast<size_t>(WordsForBits(num_weights)), 0);
  for (int64_t i = 0; i < num_weights; ++i) {
    const int64_t j = i / slices;
    const int64_t s = i % slices;
    bool bit = false;
    for (int t = 0; t < net.n_in; ++t) {
      if ((net.rows[j] >> t) & 1) {
        bit ^= GetBit(stored + t * words_per_vector, s);
      }
    }
    if (bit) SetBit(out.data(), i, true);
  }
  return out;
}

EncryptedBits EncodePlain(const std::vector<uint8_t>& bits) {
  EncryptedBits enc =
      MakeEncryptedBits(static_cast<int64_t>(bits.size()), XorNetwork::Plain());
  for (size_t i = 0; i < bits.size(); ++i) {
    if (bits[i]) SetBit(enc.words.data(), static_cast<int64_t>(i), true);
  }
  return enc;
}

}  // namespace flexor
