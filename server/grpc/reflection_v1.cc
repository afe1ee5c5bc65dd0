#include "server/grpc/reflection_v1.h"

#include <string>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/descriptor.pb.h"

namespace flexor::server {
namespace {

using google::protobuf::DescriptorPool;
using google::protobuf::FileDescriptor;
using grpc::reflection::v1::ServerReflectionRequest;
using grpc::reflection::v1::ServerReflectionResponse;

// `file` and everything it imports, each once (the client may already know
// some; it ignores repeats, but there is no need to send them).
void AddFileWithDeps(const FileDescriptor* file,
                     absl::flat_hash_set<const FileDescriptor*>* seen,
                     ServerReflectionResponse* response) {
  if (!seen->insert(file).second) return;
  google::protobuf::FileDescriptorProto proto;
  file->CopyTo(&proto);
  response->mutable_file_descriptor_response()->add_file_descriptor_proto(
      proto.SerializeAsString());
  for (int i = 0; i < file->dependency_count(); ++i) {
    AddFileWithDeps(file->dependency(i), seen, response);
  }
}

void NotFound(const std::string& what, ServerReflectionResponse* response) {
  auto* error = response->mutable_error_response();
  error->set_error_code(static_cast<int>(grpc::StatusCode::NOT_FOUND));
  error->set_error_message(what);
}

}  // namespace

grpc::Status ReflectionV1Service::ServerReflectionInfo(
    grpc::ServerContext*,
    grpc::ServerReaderWriter<ServerReflectionResponse, ServerReflectionRequest>*
        stream) {
  const DescriptorPool* pool = DescriptorPool::generated_pool();
  ServerReflectionRequest request;
  while (stream->Read(&request)) {
    ServerReflectionResponse response;
    response.set_valid_host(request.host());
    *response.mutable_original_request() = request;
    absl::flat_hash_set<const FileDescriptor*> seen;
    switch (request.message_request_case()) {
      case ServerReflectionRequest::kListServices:
        for (const std::string& name : services_) {
          response.mutable_list_services_response()->add_service()->set_name(
              name);
        }
        break;
      case ServerReflectionRequest::kFileByFilename: {
        const FileDescriptor* file =
            pool->FindFileByName(request.file_by_filename());
        if (file == nullptr) {
          NotFound(
              absl::StrCat("file '", request.file_by_filename(), "' not found"),
              &response);
        } else {
          AddFileWithDeps(file, &seen, &response);
        }
        break;
      }
      case ServerReflectionRequest::kFileContainingSymbol: {
        const FileDescriptor* file =
            pool->FindFileContainingSymbol(request.file_containing_symbol());
        if (file == nullptr) {
          NotFound(absl::StrCat("symbol '", request.file_containing_symbol(),
                                "' not found"),
                   &response);
        } else {
          AddFileWithDeps(file, &seen, &response);
        }
        break;
      }
      case ServerReflectionRequest::kFileContainingExtension: {
        const auto& ext = request.file_containing_extension();
        const google::protobuf::Descriptor* type =
            pool->FindMessageTypeByName(ext.containing_type());
        const google::protobuf::FieldDescriptor* field =
            type == nullptr
                ? nullptr
                : pool->FindExtensionByNumber(type, ext.extension_number());
        if (field == nullptr) {
          NotFound(absl::StrCat("extension ", ext.extension_number(), " of '",
                                ext.containing_type(), "' not found"),
                   &response);
        } else {
          AddFileWithDeps(field->file(), &seen, &response);
        }
        break;
      }
      case ServerReflectionRequest::kAllExtensionNumbersOfType: {
        const google::protobuf::Descriptor* type = pool->FindMessageTypeByName(
            request.all_extension_numbers_of_type());
        if (type == nullptr) {
          NotFound(
              absl::StrCat("type '", request.all_extension_numbers_of_type(),
                           "' not found"),
              &response);
          break;
        }
        std::vector<const google::protobuf::FieldDescriptor*> extensions;
        pool->FindAllExtensions(type, &extensions);
        auto* out = response.mutable_all_extension_numbers_response();
        out->set_base_type_name(type->full_name());
        for (const auto* f : extensions) out->add_extension_number(f->number());
        break;
      }
      case ServerReflectionRequest::MESSAGE_REQUEST_NOT_SET: {
        auto* error = response.mutable_error_response();
        error->set_error_code(
            static_cast<int>(grpc::StatusCode::INVALID_ARGUMENT));
        error->set_error_message("the request names no reflection query");
        break;
      }
    }
    if (!stream->Write(response)) break;
  }
  return grpc::Status::OK;
}

}  // namespace flexor::server
