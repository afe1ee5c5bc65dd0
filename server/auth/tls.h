// gRPC transport security from PEM files, on gRPC's own TLS stack: the
// server's credentials (TLS, or mutual TLS with a client CA), reloaded when
// the files change, and the client side used by flexorctl, the trainer and
// the tests (TLS, optional client certificate, optional bearer token).
#ifndef FLEXOR_SERVER_AUTH_TLS_H_
#define FLEXOR_SERVER_AUTH_TLS_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "grpcpp/grpcpp.h"

namespace flexor::server {

struct ServerTlsOptions {
  std::string cert_file;  // server certificate chain (PEM)
  std::string key_file;   // its private key (PEM)
  // Verify client certificates against this CA bundle (mutual TLS).
  std::string client_ca_file;
  // With a client CA: refuse the handshake without a client certificate.
  // Otherwise a client without one still connects (for open inference or a
  // bearer token) and only a certificate it does present must verify.
  bool require_client_cert = false;
  // How often gRPC re-reads the files (rotation without restart).
  int reload_secs = 60;
};

bool TlsEnabled(const ServerTlsOptions& options);

// Checks the files now (readable PEM, key matches certificate, CA parses)
// so that a mistake fails at startup with a clear message instead of at
// every handshake, then builds the credentials on gRPC's
// FileWatcherCertificateProvider. Plaintext when no cert file is set.
absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> MakeServerCredentials(
    const ServerTlsOptions& options);

struct ClientAuthOptions {
  // TLS when set: CA bundle that signed the server's certificate.
  std::string ca_file;
  // Mutual TLS: the client's certificate chain and key.
  std::string cert_file;
  std::string key_file;
  // Override of the name checked against the server certificate (e.g. the
  // certificate says "flexor-server" but the target is an IP address).
  std::string server_name;
  // Bearer token sent as "authorization: Bearer <token>" on every call: the
  // first non-comment line of this file.
  std::string token_file;
};

// A channel to `target` with `options` applied. Sends the token on every
// call (an interceptor, so plaintext test setups work too).
absl::StatusOr<std::shared_ptr<grpc::Channel>> MakeClientChannel(
    const std::string& target, const ClientAuthOptions& options,
    grpc::ChannelArguments arguments = {});

}  // namespace flexor::server

#endif  // FLEXOR_SERVER_AUTH_TLS_H_
