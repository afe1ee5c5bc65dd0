#include "engine/codec/xor_network.h"

#include <algorithm>
#include <random>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"

namespace flexor {

XorNetwork XorNetwork::Identity(int n) {
  XorNetwork net;
  net.n_in = n;
  net.n_out = n;
  net.rows.resize(n);
  for (int j = 0; j < n; ++j) net.rows[j] = uint64_t{1} << j;
  return net;
}

absl::Status ValidateXorNetwork(const XorNetwork& net) {
  if (net.n_in <= 0 || net.n_in > kMaxXorWidth) {
    return absl::InvalidArgumentError(
        absl::StrCat("xor.n_in = ", net.n_in, " must be in [1, 64]"));
  }
  if (net.n_out < net.n_in || net.n_out > kMaxXorWidth) {
    return absl::InvalidArgumentError(absl::StrCat(
        "xor.n_out = ", net.n_out, " must be in [n_in = ", net.n_in, ", 64]"));
  }
  if (static_cast<int>(net.rows.size()) != net.n_out) {
    return absl::InvalidArgumentError(
        absl::StrCat("xor.rows has ", net.rows.size(),
                     " rows, expected n_out = ", net.n_out));
  }
  const uint64_t valid =
      net.n_in == 64 ? ~uint64_t{0} : (uint64_t{1} << net.n_in) - 1;
  absl::flat_hash_set<uint64_t> seen;
  for (int j = 0; j < net.n_out; ++j) {
    const uint64_t row = net.rows[j];
    if (row == 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("xor.rows[", j, "] has no taps"));
    }
    if ((row & ~valid) != 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("xor.rows[", j, "] has a tap at input ",
                       __builtin_ctzll(row & ~valid), " >= n_in = ", net.n_in));
    }
    if (!seen.insert(row).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("xor.rows[", j, "] repeats an earlier row"));
    }
  }
  return absl::OkStatus();
}

int Gf2Rank(const XorNetwork& net) {
  std::vector<uint64_t> rows = net.rows;
  int rank = 0;
  for (int bit = 0; bit < kMaxXorWidth && rank < static_cast<int>(rows.size());
       ++bit) {
    const uint64_t mask = uint64_t{1} << bit;
    auto pivot = std::find_if(rows.begin() + rank, rows.end(),
                              [mask](uint64_t r) { return (r & mask) != 0; });
    if (pivot == rows.end()) continue;
    std::swap(rows[rank], *pivot);
    for (size_t r = 0; r < rows.size(); ++r) {
      if (static_cast<int>(r) != rank && (rows[r] & mask))
        rows[r] ^= rows[rank];
    }
    ++rank;
  }
  return rank;
}

namespace {

// Number of n_tap-subsets of n_in inputs, saturating at `cap`.
uint64_t BinomialCapped(int n, int k, uint64_t cap) {
  long double c = 1;
  for (int i = 1; i <= k; ++i) {
    c = c * (n - k + i) / i;
    if (c > static_cast<long double>(cap)) return cap;
  }
  return static_cast<uint64_t>(c + 0.5L);
}

}  // namespace

absl::StatusOr<XorNetwork> GenerateXorNetwork(int n_in, int n_out, int n_tap,
                                              uint64_t seed) {
  if (n_in <= 0 || n_in > kMaxXorWidth || n_out < n_in ||
      n_out > kMaxXorWidth) {
    return absl::InvalidArgumentError(
        absl::StrCat("need 0 < n_in <= n_out <= 64, got n_in = ", n_in,
                     ", n_out = ", n_out));
  }
  if (n_tap <= 0 || n_tap > n_in) {
    return absl::InvalidArgumentError(
        absl::StrCat("n_tap = ", n_tap, " must be in [1, n_in = ", n_in, "]"));
  }
  if (BinomialCapped(n_in, n_tap, n_out) < static_cast<uint64_t>(n_out)) {
    return absl::InvalidArgumentError(
        absl::StrCat("only C(", n_in, ", ", n_tap, ") distinct rows exist, ",
                     "fewer than n_out = ", n_out));
  }
  if (n_tap == 1 && n_in == n_out) {
    return XorNetwork::Identity(n_in);
  }
  // Even tap counts cannot reach full rank (flipping every input flips an
  // even number of bits per row, i.e. none), see DESIGN.md.
  const int target_rank = std::min(n_out, n_tap % 2 == 0 ? n_in - 1 : n_in);

  // std::mt19937_64 is specified bit-exactly by the standard, so the same
  // seed gives the same M everywhere (trainer and engine). Distributions are
  // not, hence the plain modulo below.
  std::mt19937_64 rng(seed);
  XorNetwork best;
  int best_rank = -1;
  std::vector<int> perm(n_in);
  for (int attempt = 0; attempt < 1000 && best_rank < target_rank; ++attempt) {
    XorNetwork net;
    net.n_in = n_in;
    net.n_out = n_out;
    net.rows.clear();
    absl::flat_hash_set<uint64_t> seen;
    int guard = 0;
    while (static_cast<int>(net.rows.size()) < n_out && guard++ < 100000) {
      for (int i = 0; i < n_in; ++i) perm[i] = i;
      uint64_t row = 0;
      for (int t = 0; t < n_tap; ++t) {
        const int pick = t + static_cast<int>(rng() % (n_in - t));
        std::swap(perm[t], perm[pick]);
        row |= uint64_t{1} << perm[t];
      }
      if (seen.insert(row).second) net.rows.push_back(row);
    }
    if (static_cast<int>(net.rows.size()) < n_out) continue;
    const int rank = Gf2Rank(net);
    if (rank > best_rank) {
      best_rank = rank;
      best = std::move(net);
    }
  }
  if (best_rank < 0) {
    return absl::InternalError("could not generate distinct XOR rows");
  }
  return best;
}

}  // namespace flexor
