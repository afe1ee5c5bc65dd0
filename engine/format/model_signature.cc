#include "engine/format/model_signature.h"

#include <fcntl.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace flexor {
namespace {

constexpr char kScheme[] = "flexor-ed25519";
constexpr size_t kEd25519SignatureBytes = 64;

struct PkeyDeleter {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyDeleter>;
struct MdCtxDeleter {
  void operator()(EVP_MD_CTX* p) const { EVP_MD_CTX_free(p); }
};
using MdCtxPtr = std::unique_ptr<EVP_MD_CTX, MdCtxDeleter>;
struct BioDeleter {
  void operator()(BIO* p) const { BIO_free(p); }
};
using BioPtr = std::unique_ptr<BIO, BioDeleter>;

// The last OpenSSL error as text (and the queue cleared), for messages.
std::string OpenSslError() {
  std::string out;
  while (unsigned long e = ERR_get_error()) {  // NOLINT(runtime/int)
    char buf[256];
    ERR_error_string_n(e, buf, sizeof(buf));
    if (!out.empty()) out += "; ";
    out += buf;
  }
  return out.empty() ? "unknown OpenSSL error" : out;
}

absl::StatusOr<std::string> KeyIdOf(EVP_PKEY* key) {
  unsigned char raw[64];
  size_t len = sizeof(raw);
  if (EVP_PKEY_get_raw_public_key(key, raw, &len) != 1) {
    return absl::InternalError(
        absl::StrCat("cannot read the raw public key: ", OpenSslError()));
  }
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(raw, len, digest);
  return absl::BytesToHexString(
      absl::string_view(reinterpret_cast<const char*>(digest), 8));
}

absl::Status CheckEd25519(EVP_PKEY* key, absl::string_view what) {
  if (EVP_PKEY_get_id(key) != EVP_PKEY_ED25519) {
    return absl::InvalidArgumentError(
        absl::StrCat(what,
                     " is not an Ed25519 key (make one with `openssl "
                     "genpkey -algorithm ed25519` or `flexorctl keygen`)"));
  }
  return absl::OkStatus();
}

}  // namespace

struct ModelSigner::Key {
  PkeyPtr pkey;
};
struct ModelVerifier::Key {
  PkeyPtr pkey;
  std::string id;
};

absl::StatusOr<std::string> ReadSmallFile(const std::string& path,
                                          size_t max_bytes) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const int err = errno;
    std::string message =
        absl::StrCat("cannot open ", path, ": ", std::strerror(err));
    return err == ENOENT ? absl::NotFoundError(message)
                         : absl::PermissionDeniedError(message);
  }
  // Sized from fstat (model files can be large), but read until EOF: the
  // size is a hint, the bound is max_bytes.
  std::string out;
  struct stat st;
  if (::fstat(fd, &st) == 0 && st.st_size > 0 &&
      static_cast<size_t>(st.st_size) <= max_bytes) {
    out.reserve(static_cast<size_t>(st.st_size));
  }
  std::string buf(size_t{1} << 20, '\0');
  while (true) {
    const ssize_t n = ::read(fd, buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int err = errno;
      ::close(fd);
      return absl::InternalError(
          absl::StrCat("cannot read ", path, ": ", std::strerror(err)));
    }
    if (n == 0) break;
    out.append(buf.data(), static_cast<size_t>(n));
    if (out.size() > max_bytes) {
      ::close(fd);
      return absl::InvalidArgumentError(
          absl::StrCat(path, " is larger than ", max_bytes, " bytes"));
    }
  }
  ::close(fd);
  return out;
}

absl::StatusOr<SigningKeyPair> GenerateSigningKeyPair() {
  PkeyPtr key(EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519"));
  if (key == nullptr) {
    return absl::InternalError(
        absl::StrCat("Ed25519 key generation failed: ", OpenSslError()));
  }
  SigningKeyPair pair;
  for (const bool is_private : {true, false}) {
    BioPtr bio(BIO_new(BIO_s_mem()));
    const int ok = is_private
                       ? PEM_write_bio_PrivateKey(bio.get(), key.get(), nullptr,
                                                  nullptr, 0, nullptr, nullptr)
                       : PEM_write_bio_PUBKEY(bio.get(), key.get());
    if (bio == nullptr || ok != 1) {
      return absl::InternalError(
          absl::StrCat("cannot write the key as PEM: ", OpenSslError()));
    }
    char* data = nullptr;
    const long len = BIO_get_mem_data(bio.get(), &data);  // NOLINT
    (is_private ? pair.private_pem : pair.public_pem).assign(data, len);
  }
  return pair;
}

absl::StatusOr<ModelSigner> ModelSigner::FromPrivatePem(absl::string_view pem) {
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  PkeyPtr key(
      bio ? PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr)
          : nullptr);
  if (key == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("not a PEM private key (unencrypted PKCS#8 expected): ",
                     OpenSslError()));
  }
  if (absl::Status s = CheckEd25519(key.get(), "the signing key"); !s.ok()) {
    return s;
  }
  absl::StatusOr<std::string> id = KeyIdOf(key.get());
  if (!id.ok()) return id.status();
  ModelSigner signer;
  signer.key_ = std::make_shared<Key>();
  signer.key_->pkey = std::move(key);
  signer.key_id_ = *std::move(id);
  return signer;
}

absl::StatusOr<ModelSigner> ModelSigner::FromPrivateKeyFile(
    const std::string& path) {
  absl::StatusOr<std::string> pem = ReadSmallFile(path, 64 << 10);
  if (!pem.ok()) return pem.status();
  absl::StatusOr<ModelSigner> signer = FromPrivatePem(*pem);
  if (!signer.ok()) {
    return absl::Status(signer.status().code(),
                        absl::StrCat(path, ": ", signer.status().message()));
  }
  return signer;
}

absl::StatusOr<std::string> ModelSigner::Sign(absl::string_view bytes) const {
  MdCtxPtr ctx(EVP_MD_CTX_new());
  unsigned char sig[kEd25519SignatureBytes];
  size_t sig_len = sizeof(sig);
  // Ed25519 is "pure": no separate digest, the whole message is signed.
  if (ctx == nullptr ||
      EVP_DigestSignInit(ctx.get(), nullptr, nullptr, nullptr,
                         key_->pkey.get()) != 1 ||
      EVP_DigestSign(ctx.get(), sig, &sig_len,
                     reinterpret_cast<const unsigned char*>(bytes.data()),
                     bytes.size()) != 1) {
    return absl::InternalError(
        absl::StrCat("Ed25519 signing failed: ", OpenSslError()));
  }
  return absl::StrCat(kScheme, " ", key_id_, " ",
                      absl::Base64Escape(absl::string_view(
                          reinterpret_cast<char*>(sig), sig_len)),
                      "\n");
}

absl::StatusOr<ModelVerifier> ModelVerifier::FromPublicPems(
    const std::vector<std::string>& pems) {
  if (pems.empty()) {
    return absl::InvalidArgumentError("no trusted public key given");
  }
  ModelVerifier verifier;
  for (const std::string& pem : pems) {
    BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
    PkeyPtr key(bio ? PEM_read_bio_PUBKEY(bio.get(), nullptr, nullptr, nullptr)
                    : nullptr);
    if (key == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat(
          "not a PEM public key (\"BEGIN PUBLIC KEY\"): ", OpenSslError()));
    }
    if (absl::Status s = CheckEd25519(key.get(), "a trusted key"); !s.ok()) {
      return s;
    }
    absl::StatusOr<std::string> id = KeyIdOf(key.get());
    if (!id.ok()) return id.status();
    auto k = std::make_shared<Key>();
    k->pkey = std::move(key);
    k->id = *std::move(id);
    verifier.keys_.push_back(std::move(k));
  }
  return verifier;
}

absl::StatusOr<ModelVerifier> ModelVerifier::FromPublicKeyFiles(
    const std::vector<std::string>& paths) {
  std::vector<std::string> pems;
  for (const std::string& path : paths) {
    absl::StatusOr<std::string> pem = ReadSmallFile(path, 64 << 10);
    if (!pem.ok()) return pem.status();
    pems.push_back(*std::move(pem));
  }
  absl::StatusOr<ModelVerifier> verifier = FromPublicPems(pems);
  if (!verifier.ok()) {
    return absl::Status(verifier.status().code(),
                        absl::StrCat(absl::StrJoin(paths, ", "), ": ",
                                     verifier.status().message()));
  }
  return verifier;
}

std::vector<std::string> ModelVerifier::key_ids() const {
  std::vector<std::string> ids;
  for (const auto& k : keys_) ids.push_back(k->id);
  return ids;
}

absl::Status ModelVerifier::Verify(absl::string_view bytes,
                                   absl::string_view signature_text) const {
  std::vector<absl::string_view> fields = absl::StrSplit(
      absl::StripAsciiWhitespace(signature_text), ' ', absl::SkipEmpty());
  if (fields.size() != 3 || fields[0] != kScheme) {
    return absl::PermissionDeniedError(
        absl::StrCat("malformed signature: expected one line '", kScheme,
                     " <key id> <base64 signature>'"));
  }
  std::string sig;
  if (!absl::Base64Unescape(fields[2], &sig) ||
      sig.size() != kEd25519SignatureBytes) {
    return absl::PermissionDeniedError(
        "malformed signature: not a base64 Ed25519 signature");
  }
  for (const auto& key : keys_) {
    if (key->id != fields[1]) continue;
    MdCtxPtr ctx(EVP_MD_CTX_new());
    const int ok =
        ctx != nullptr &&
        EVP_DigestVerifyInit(ctx.get(), nullptr, nullptr, nullptr,
                             key->pkey.get()) == 1 &&
        EVP_DigestVerify(
            ctx.get(), reinterpret_cast<const unsigned char*>(sig.data()),
            sig.size(), reinterpret_cast<const unsigned char*>(bytes.data()),
            bytes.size()) == 1;
    ERR_clear_error();
    if (ok) return absl::OkStatus();
    return absl::PermissionDeniedError(absl::StrCat(
        "the signature by key ", key->id,
        " does not match the file (the file was changed after signing, or "
        "the signature belongs to another file)"));
  }
  return absl::PermissionDeniedError(absl::StrCat(
      "signed by key ", absl::CEscape(fields[1].substr(0, 32)),
      ", which is not a trusted key (trusted: ", absl::StrJoin(key_ids(), ", "),
      ")"));
}

}  // namespace flexor
