// The fixed XOR-gate network M of FleXOR (DESIGN.md section 2): N_out output
// bits, each the XOR of the stored input bits selected by its row.
#ifndef FLEXOR_ENGINE_CODEC_XOR_NETWORK_H_
#define FLEXOR_ENGINE_CODEC_XOR_NETWORK_H_

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "engine/codec/xor_width.h"

namespace flexor {

struct XorNetwork {
  int n_in = 1;
  int n_out = 1;
  // rows[j] bit t set <=> M[j][t] = 1. Size n_out.
  std::vector<uint64_t> rows = {1};

  // N_in = N_out = 1, rows = {1}: plain (unencrypted) binary coding.
  static XorNetwork Plain() { return XorNetwork{}; }
  // N_in = N_out = n with M = identity.
  static XorNetwork Identity(int n);

  double bits_per_weight() const {
    return static_cast<double>(n_in) / static_cast<double>(n_out);
  }
};

// Checks 0 < n_in <= n_out <= 64, rows.size() == n_out, every row non-zero,
// taps inside [0, n_in), rows pairwise distinct. The message names the field.
absl::Status ValidateXorNetwork(const XorNetwork& net);

// Rank of M over GF(2).
int Gf2Rank(const XorNetwork& net);

// Deterministically generates M from `seed`: n_out distinct rows of exactly
// n_tap ones each, every input used when possible, with the largest rank the
// tap count allows (n_in - 1 for even n_tap, n_in for odd; DESIGN.md).
absl::StatusOr<XorNetwork> GenerateXorNetwork(int n_in, int n_out, int n_tap,
                                              uint64_t seed);

}  // namespace flexor

#endif  // FLEXOR_ENGINE_CODEC_XOR_NETWORK_H_
