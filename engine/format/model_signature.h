// Detached Ed25519 signatures of model files (OpenSSL). The signature covers
// every byte of the file, so the graph, the weights and the provenance in the
// header are all covered: a file whose bytes changed (even with its CRCs
// recomputed) no longer verifies.
//
// Keys are ordinary PEM files, so OpenSSL's own tools make and read them:
//   openssl genpkey -algorithm ed25519 -out signing-key.pem
//   openssl pkey -in signing-key.pem -pubout -out signing-key.pub.pem
// (or `flexorctl keygen`). The signature lives next to the model as
// "<file>.sig", one text line:
//   flexor-ed25519 <key id> <base64 signature>
// where the key id (16 hex digits of SHA-256 of the raw public key) says
// which trusted key to check it with and names the signer in errors.
#ifndef FLEXOR_ENGINE_FORMAT_MODEL_SIGNATURE_H_
#define FLEXOR_ENGINE_FORMAT_MODEL_SIGNATURE_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace flexor {

// Suffix of a detached signature: model.flexor -> model.flexor.sig.
inline constexpr char kSignatureSuffix[] = ".sig";
// Signature files are one short line; anything larger is refused unread.
inline constexpr size_t kMaxSignatureFileBytes = 1024;

struct SigningKeyPair {
  std::string private_pem;  // PKCS#8
  std::string public_pem;   // SubjectPublicKeyInfo
};

// A fresh Ed25519 key pair.
absl::StatusOr<SigningKeyPair> GenerateSigningKeyPair();

class ModelSigner {
 public:
  // From an Ed25519 private key in PEM (the file's contents).
  static absl::StatusOr<ModelSigner> FromPrivatePem(absl::string_view pem);
  static absl::StatusOr<ModelSigner> FromPrivateKeyFile(
      const std::string& path);

  // The signature file's text (one line, newline-terminated) for `bytes`.
  absl::StatusOr<std::string> Sign(absl::string_view bytes) const;
  const std::string& key_id() const { return key_id_; }

 private:
  struct Key;
  ModelSigner() = default;
  std::shared_ptr<Key> key_;
  std::string key_id_;
};

class ModelVerifier {
 public:
  // From Ed25519 public keys in PEM (file contents); at least one.
  static absl::StatusOr<ModelVerifier> FromPublicPems(
      const std::vector<std::string>& pems);
  // From files; each may hold one key.
  static absl::StatusOr<ModelVerifier> FromPublicKeyFiles(
      const std::vector<std::string>& paths);

  // OK if `signature_text` (a .sig file's contents) is a valid signature of
  // `bytes` by one of the trusted keys. Otherwise PERMISSION_DENIED with the
  // reason (malformed, unknown key id, signature does not match).
  absl::Status Verify(absl::string_view bytes,
                      absl::string_view signature_text) const;
  // Key ids of the trusted keys, for logs.
  std::vector<std::string> key_ids() const;

 private:
  struct Key;
  ModelVerifier() = default;
  std::vector<std::shared_ptr<Key>> keys_;
};

// Reads a whole small file (keys, tokens, signatures), refusing one larger
// than `max_bytes`.
absl::StatusOr<std::string> ReadSmallFile(const std::string& path,
                                          size_t max_bytes);

}  // namespace flexor

#endif  // FLEXOR_ENGINE_FORMAT_MODEL_SIGNATURE_H_
