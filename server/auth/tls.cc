#include "server/auth/tls.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "engine/format/model_signature.h"
#include "grpcpp/security/tls_certificate_provider.h"
#include "grpcpp/security/tls_credentials_options.h"
#include "grpcpp/support/client_interceptor.h"

namespace flexor::server {
namespace {

constexpr size_t kMaxPemBytes = 1 << 20;

absl::StatusOr<std::string> ReadPem(const std::string& path, const char* flag) {
  absl::StatusOr<std::string> text = ReadSmallFile(path, kMaxPemBytes);
  if (!text.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(flag, ": ", text.status().message()));
  }
  return text;
}

// Parses the first certificate / the key of PEM text.
X509* ParseCert(const std::string& pem) {
  BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  X509* cert =
      bio ? PEM_read_bio_X509(bio, nullptr, nullptr, nullptr) : nullptr;
  BIO_free(bio);
  return cert;
}
EVP_PKEY* ParseKey(const std::string& pem) {
  BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  EVP_PKEY* key =
      bio ? PEM_read_bio_PrivateKey(bio, nullptr, nullptr, nullptr) : nullptr;
  BIO_free(bio);
  return key;
}

absl::Status CheckPair(const std::string& cert_file,
                       const std::string& key_file, const char* cert_flag,
                       const char* key_flag) {
  absl::StatusOr<std::string> cert_pem = ReadPem(cert_file, cert_flag);
  if (!cert_pem.ok()) return cert_pem.status();
  absl::StatusOr<std::string> key_pem = ReadPem(key_file, key_flag);
  if (!key_pem.ok()) return key_pem.status();
  X509* cert = ParseCert(*cert_pem);
  EVP_PKEY* key = ParseKey(*key_pem);
  absl::Status status;
  if (cert == nullptr) {
    status = absl::InvalidArgumentError(
        absl::StrCat(cert_flag, ": ", cert_file, " holds no PEM certificate"));
  } else if (key == nullptr) {
    status = absl::InvalidArgumentError(absl::StrCat(
        key_flag, ": ", key_file, " holds no (unencrypted) PEM private key"));
  } else if (X509_check_private_key(cert, key) != 1) {
    status = absl::InvalidArgumentError(absl::StrCat(
        key_file, " is not the key of the certificate in ", cert_file));
  }
  X509_free(cert);
  EVP_PKEY_free(key);
  ERR_clear_error();
  return status;
}

absl::Status CheckCa(const std::string& ca_file, const char* flag) {
  absl::StatusOr<std::string> pem = ReadPem(ca_file, flag);
  if (!pem.ok()) return pem.status();
  X509* cert = ParseCert(*pem);
  ERR_clear_error();
  if (cert == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat(flag, ": ", ca_file, " holds no PEM certificate"));
  }
  X509_free(cert);
  return absl::OkStatus();
}

// Adds the bearer token to every call's initial metadata.
class TokenInterceptor : public grpc::experimental::Interceptor {
 public:
  explicit TokenInterceptor(const std::string* header) : header_(header) {}
  void Intercept(
      grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(
            grpc::experimental::InterceptionHookPoints::
                PRE_SEND_INITIAL_METADATA)) {
      methods->GetSendInitialMetadata()->insert({"authorization", *header_});
    }
    methods->Proceed();
  }

 private:
  const std::string* header_;
};

class TokenInterceptorFactory
    : public grpc::experimental::ClientInterceptorFactoryInterface {
 public:
  explicit TokenInterceptorFactory(std::string token)
      : header_("Bearer " + std::move(token)) {}
  grpc::experimental::Interceptor* CreateClientInterceptor(
      grpc::experimental::ClientRpcInfo*) override {
    return new TokenInterceptor(&header_);
  }

 private:
  const std::string header_;
};

}  // namespace

bool TlsEnabled(const ServerTlsOptions& options) {
  return !options.cert_file.empty();
}

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> MakeServerCredentials(
    const ServerTlsOptions& options) {
  if (!TlsEnabled(options)) {
    if (!options.key_file.empty() || !options.client_ca_file.empty() ||
        options.require_client_cert) {
      return absl::InvalidArgumentError(
          "--tls-key-file, --tls-client-ca-file and "
          "--tls-require-client-cert need --tls-cert-file");
    }
    return grpc::InsecureServerCredentials();
  }
  if (options.key_file.empty()) {
    return absl::InvalidArgumentError("--tls-cert-file needs --tls-key-file");
  }
  if (options.require_client_cert && options.client_ca_file.empty()) {
    return absl::InvalidArgumentError(
        "--tls-require-client-cert needs --tls-client-ca-file");
  }
  if (options.reload_secs < 1) {
    return absl::InvalidArgumentError("--tls-reload-secs must be >= 1");
  }
  if (absl::Status s = CheckPair(options.cert_file, options.key_file,
                                 "--tls-cert-file", "--tls-key-file");
      !s.ok()) {
    return s;
  }
  if (!options.client_ca_file.empty()) {
    if (absl::Status s =
            CheckCa(options.client_ca_file, "--tls-client-ca-file");
        !s.ok()) {
      return s;
    }
  }
  auto provider =
      options.client_ca_file.empty()
          ? std::make_shared<
                grpc::experimental::FileWatcherCertificateProvider>(
                options.key_file, options.cert_file, options.reload_secs)
          : std::make_shared<
                grpc::experimental::FileWatcherCertificateProvider>(
                options.key_file, options.cert_file, options.client_ca_file,
                options.reload_secs);
  grpc::experimental::TlsServerCredentialsOptions tls(provider);
  tls.watch_identity_key_cert_pairs();
  if (options.client_ca_file.empty()) {
    tls.set_cert_request_type(GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
  } else {
    tls.watch_root_certs();
    tls.set_cert_request_type(
        options.require_client_cert
            ? GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY
            : GRPC_SSL_REQUEST_CLIENT_CERTIFICATE_AND_VERIFY);
  }
  return grpc::experimental::TlsServerCredentials(tls);
}

absl::StatusOr<std::shared_ptr<grpc::Channel>> MakeClientChannel(
    const std::string& target, const ClientAuthOptions& options,
    grpc::ChannelArguments arguments) {
  std::shared_ptr<grpc::ChannelCredentials> credentials;
  if (options.ca_file.empty()) {
    if (!options.cert_file.empty() || !options.key_file.empty()) {
      return absl::InvalidArgumentError(
          "a client certificate (--tls-cert-file/--tls-key-file) needs TLS: "
          "set --tls-ca-file");
    }
    credentials = grpc::InsecureChannelCredentials();
  } else {
    grpc::SslCredentialsOptions ssl;
    absl::StatusOr<std::string> ca = ReadPem(options.ca_file, "--tls-ca-file");
    if (!ca.ok()) return ca.status();
    ssl.pem_root_certs = *std::move(ca);
    if (options.cert_file.empty() != options.key_file.empty()) {
      return absl::InvalidArgumentError(
          "--tls-cert-file and --tls-key-file go together");
    }
    if (!options.cert_file.empty()) {
      if (absl::Status s = CheckPair(options.cert_file, options.key_file,
                                     "--tls-cert-file", "--tls-key-file");
          !s.ok()) {
        return s;
      }
      ssl.pem_cert_chain = *ReadPem(options.cert_file, "--tls-cert-file");
      ssl.pem_private_key = *ReadPem(options.key_file, "--tls-key-file");
    }
    credentials = grpc::SslCredentials(ssl);
    if (!options.server_name.empty()) {
      arguments.SetSslTargetNameOverride(options.server_name);
    }
  }
  std::vector<
      std::unique_ptr<grpc::experimental::ClientInterceptorFactoryInterface>>
      interceptors;
  if (!options.token_file.empty()) {
    absl::StatusOr<std::string> text =
        ReadSmallFile(options.token_file, 64 << 10);
    if (!text.ok()) return text.status();
    std::string token;
    for (absl::string_view line : absl::StrSplit(*text, '\n')) {
      line = absl::StripAsciiWhitespace(line);
      if (!line.empty() && line[0] != '#') {
        token = std::string(line);
        break;
      }
    }
    if (token.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat(options.token_file, " holds no token"));
    }
    interceptors.push_back(
        std::make_unique<TokenInterceptorFactory>(std::move(token)));
  }
  return grpc::experimental::CreateCustomChannelWithInterceptors(
      target, credentials, arguments, std::move(interceptors));
}

}  // namespace flexor::server
