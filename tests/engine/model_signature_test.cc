// Ed25519 model signatures (engine/format/model_signature.h): a signature
// covers every byte, so tampered weights or provenance with recomputed
// checksums (files that still load) no longer verify; keys made by the
// openssl CLI work; wrong keys and malformed signatures are refused.
#include "engine/format/model_signature.h"

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "absl/strings/match.h"
#include "engine/format/model_file.h"
#include "engine/testing/hostile_models.h"
#include "engine/testing/random_model.h"
#include "gtest/gtest.h"

namespace flexor {
namespace {

std::string SomeModel() {
  RandomModelSpec spec;
  spec.seed = 7;
  return *BuildRandomModel(spec);
}

TEST(ModelSignatureTest, SignedFileVerifiesAndTamperedCopiesDoNot) {
  absl::StatusOr<SigningKeyPair> pair = GenerateSigningKeyPair();
  ASSERT_TRUE(pair.ok()) << pair.status();
  absl::StatusOr<ModelSigner> signer =
      ModelSigner::FromPrivatePem(pair->private_pem);
  ASSERT_TRUE(signer.ok()) << signer.status();
  absl::StatusOr<ModelVerifier> verifier =
      ModelVerifier::FromPublicPems({pair->public_pem});
  ASSERT_TRUE(verifier.ok()) << verifier.status();

  const std::string model = SomeModel();
  absl::StatusOr<std::string> sig = signer->Sign(model);
  ASSERT_TRUE(sig.ok()) << sig.status();
  EXPECT_TRUE(absl::StartsWith(*sig, "flexor-ed25519 " + signer->key_id()));
  EXPECT_TRUE(verifier->Verify(model, *sig).ok());

  // Tampered copies still pass every file-level check (that is the attack)
  // but not the signature.
  for (const std::string& tampered :
       {TamperWeights(model), TamperProvenance(model)}) {
    ASSERT_NE(tampered, model);
    EXPECT_TRUE(ModelFile::FromBytes(tampered, "tampered").ok());
    absl::Status s = verifier->Verify(tampered, *sig);
    EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied);
    EXPECT_TRUE(absl::StrContains(s.message(), "does not match")) << s;
  }
  // One more byte at the end is a different file too.
  EXPECT_FALSE(verifier->Verify(model + "x", *sig).ok());
}

TEST(ModelSignatureTest, WrongKeyAndMalformedSignaturesAreRefused) {
  absl::StatusOr<SigningKeyPair> trusted = GenerateSigningKeyPair();
  absl::StatusOr<SigningKeyPair> other = GenerateSigningKeyPair();
  ASSERT_TRUE(trusted.ok() && other.ok());
  absl::StatusOr<ModelVerifier> verifier =
      ModelVerifier::FromPublicPems({trusted->public_pem});
  ASSERT_TRUE(verifier.ok());
  const std::string model = SomeModel();
  absl::StatusOr<std::string> by_other =
      ModelSigner::FromPrivatePem(other->private_pem)->Sign(model);
  ASSERT_TRUE(by_other.ok());
  absl::Status s = verifier->Verify(model, *by_other);
  EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_TRUE(absl::StrContains(s.message(), "not a trusted key")) << s;

  // The other key's signature relabelled with the trusted key's id.
  absl::StatusOr<ModelSigner> trusted_signer =
      ModelSigner::FromPrivatePem(trusted->private_pem);
  std::string relabelled = *by_other;
  relabelled.replace(relabelled.find(' ') + 1, 16, trusted_signer->key_id());
  s = verifier->Verify(model, relabelled);
  EXPECT_TRUE(absl::StrContains(s.message(), "does not match")) << s;

  for (const char* bad : {"", "garbage", "flexor-ed25519 x y",
                          "flexor-ed25519 0011223344556677 AAAA"}) {
    s = verifier->Verify(model, bad);
    EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied) << bad;
    EXPECT_TRUE(absl::StrContains(s.message(), "malformed")) << s;
  }
  // A public key is not a private key and vice versa; RSA keys are refused.
  EXPECT_FALSE(ModelSigner::FromPrivatePem(trusted->public_pem).ok());
  EXPECT_FALSE(ModelVerifier::FromPublicPems({trusted->private_pem}).ok());
  EXPECT_FALSE(ModelVerifier::FromPublicPems({}).ok());
}

TEST(ModelSignatureTest, KeysMadeByTheOpensslCliWork) {
  const std::string dir = ::testing::TempDir() + "/sigkeys";
  std::filesystem::create_directories(dir);
  const std::string cmd =
      "openssl genpkey -algorithm ed25519 -out " + dir +
      "/k.pem 2>&1 && openssl pkey -in " + dir + "/k.pem -pubout -out " + dir +
      "/k.pub.pem 2>&1 && openssl genpkey -algorithm rsa -pkeyopt "
      "rsa_keygen_bits:1024 -out " +
      dir + "/rsa.pem 2>&1";
  ASSERT_EQ(std::system(cmd.c_str()), 0);
  absl::StatusOr<ModelSigner> signer =
      ModelSigner::FromPrivateKeyFile(dir + "/k.pem");
  ASSERT_TRUE(signer.ok()) << signer.status();
  absl::StatusOr<ModelVerifier> verifier =
      ModelVerifier::FromPublicKeyFiles({dir + "/k.pub.pem"});
  ASSERT_TRUE(verifier.ok()) << verifier.status();
  const std::string model = SomeModel();
  EXPECT_TRUE(verifier->Verify(model, *signer->Sign(model)).ok());
  absl::StatusOr<ModelSigner> rsa =
      ModelSigner::FromPrivateKeyFile(dir + "/rsa.pem");
  EXPECT_FALSE(rsa.ok());
  EXPECT_TRUE(absl::StrContains(rsa.status().message(), "not an Ed25519"))
      << rsa.status();
}

}  // namespace
}  // namespace flexor
