#include "tools/flexorctl/mesh.h"

#include <algorithm>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "base/grpc_status.h"
#include "grpcpp/grpcpp.h"
#include "proto/model_runtime.grpc.pb.h"
#include "tools/flexorctl/client.h"

namespace flexor::tools {
namespace {

constexpr char kMeshUsage[] =
    "mesh status | mesh load ID PATH | mesh unload ID | mesh size ID | "
    "mesh predict-size ID PATH";

template <typename Req, typename Resp>
absl::StatusOr<Resp> MeshCall(const CommandContext& ctx,
                              mmesh::ModelRuntime::Stub& stub,
                              grpc::Status (mmesh::ModelRuntime::Stub::*method)(
                                  grpc::ClientContext*, const Req&, Resp*),
                              const Req& request) {
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + ctx.timeout));
  Resp response;
  grpc::Status status = (stub.*method)(&context, request, &response);
  if (!status.ok()) {
    return ToAbslStatus(status, absl::StrCat("server ", ctx.server));
  }
  return response;
}

}  // namespace

absl::Status MeshCommand(const CommandContext& ctx,
                         const std::vector<std::string>& args) {
  if (args.size() < 2) return absl::InvalidArgumentError(kMeshUsage);
  const std::string& verb = args[1];
  auto need = [&](size_t n) {
    return args.size() == n ? absl::OkStatus()
                            : absl::InvalidArgumentError(
                                  absl::StrCat("usage: ", kMeshUsage));
  };
  Client client(ctx.server, ctx.timeout, ctx.auth);
  std::unique_ptr<mmesh::ModelRuntime::Stub> stub =
      mmesh::ModelRuntime::NewStub(client.channel());
  using Stub = mmesh::ModelRuntime::Stub;
  if (verb == "status") {
    if (absl::Status s = need(2); !s.ok()) return s;
    absl::StatusOr<mmesh::RuntimeStatusResponse> r = MeshCall(
        ctx, *stub, &Stub::runtimeStatus, mmesh::RuntimeStatusRequest());
    if (!r.ok()) return r.status();
    std::vector<std::string> methods;
    for (const auto& [name, info] : r->methodinfos()) {
      methods.push_back(absl::StrCat(
          name, "[", absl::StrJoin(info.idinjectionpath(), "."), "]"));
    }
    std::sort(methods.begin(), methods.end());
    std::cout << "status "
              << mmesh::RuntimeStatusResponse::Status_Name(r->status())
              << " capacity_bytes " << r->capacityinbytes()
              << " max_loading_concurrency " << r->maxloadingconcurrency()
              << " load_timeout_ms " << r->modelloadingtimeoutms()
              << " default_model_size_bytes " << r->defaultmodelsizeinbytes()
              << " runtime_version " << r->runtimeversion() << " methods "
              << absl::StrJoin(methods, ",") << "\n";
    return absl::OkStatus();
  }
  if (verb == "load") {
    if (absl::Status s = need(4); !s.ok()) return s;
    mmesh::LoadModelRequest request;
    request.set_modelid(args[2]);
    request.set_modelpath(args[3]);
    request.set_modeltype("flexor");
    absl::StatusOr<mmesh::LoadModelResponse> r =
        MeshCall(ctx, *stub, &Stub::loadModel, request);
    if (!r.ok()) return r.status();
    std::cout << "loaded " << args[2] << " size_bytes " << r->sizeinbytes()
              << "\n";
    return absl::OkStatus();
  }
  if (verb == "unload") {
    if (absl::Status s = need(3); !s.ok()) return s;
    mmesh::UnloadModelRequest request;
    request.set_modelid(args[2]);
    absl::StatusOr<mmesh::UnloadModelResponse> r =
        MeshCall(ctx, *stub, &Stub::unloadModel, request);
    if (!r.ok()) return r.status();
    std::cout << "unloaded " << args[2] << "\n";
    return absl::OkStatus();
  }
  if (verb == "size") {
    if (absl::Status s = need(3); !s.ok()) return s;
    mmesh::ModelSizeRequest request;
    request.set_modelid(args[2]);
    absl::StatusOr<mmesh::ModelSizeResponse> r =
        MeshCall(ctx, *stub, &Stub::modelSize, request);
    if (!r.ok()) return r.status();
    std::cout << "size " << args[2] << " " << r->sizeinbytes() << "\n";
    return absl::OkStatus();
  }
  if (verb == "predict-size") {
    if (absl::Status s = need(4); !s.ok()) return s;
    mmesh::PredictModelSizeRequest request;
    request.set_modelid(args[2]);
    request.set_modelpath(args[3]);
    absl::StatusOr<mmesh::PredictModelSizeResponse> r =
        MeshCall(ctx, *stub, &Stub::predictModelSize, request);
    if (!r.ok()) return r.status();
    std::cout << "predicted " << args[2] << " " << r->sizeinbytes() << "\n";
    return absl::OkStatus();
  }
  return absl::InvalidArgumentError(absl::StrCat("usage: ", kMeshUsage));
}

}  // namespace flexor::tools
