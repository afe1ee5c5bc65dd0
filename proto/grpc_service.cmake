# gRPC services: protoc + grpc_cpp_plugin. Generated files land in
# ${CMAKE_BINARY_DIR}/proto so that sources include "proto/<name>.grpc.pb.h".
find_program(FLEXOR_GRPC_CPP_PLUGIN grpc_cpp_plugin REQUIRED)

# flexor_grpc_library(target name [imported_proto...]): the service in
# <name>.proto plus the message-only protos it imports (same directory).
function(flexor_grpc_library target name)
  set(out ${CMAKE_BINARY_DIR}/proto)
  set(srcs ${out}/${name}.pb.cc ${out}/${name}.grpc.pb.cc)
  set(hdrs ${out}/${name}.pb.h ${out}/${name}.grpc.pb.h)
  set(protos ${CMAKE_CURRENT_SOURCE_DIR}/${name}.proto)
  foreach(dep ${ARGN})
    list(APPEND srcs ${out}/${dep}.pb.cc)
    list(APPEND hdrs ${out}/${dep}.pb.h)
    list(APPEND protos ${CMAKE_CURRENT_SOURCE_DIR}/${dep}.proto)
  endforeach()
  add_custom_command(
    OUTPUT ${srcs} ${hdrs}
    COMMAND ${CMAKE_COMMAND} -E make_directory ${out}
    COMMAND protobuf::protoc
      --proto_path=${CMAKE_CURRENT_SOURCE_DIR}
      --cpp_out=${out}
      --grpc_out=${out}
      --plugin=protoc-gen-grpc=${FLEXOR_GRPC_CPP_PLUGIN}
      ${protos}
    DEPENDS ${protos} protobuf::protoc
    COMMENT "Generating gRPC service code from ${name}.proto"
    VERBATIM)
  add_library(${target} STATIC ${srcs})
  target_link_libraries(${target} PUBLIC gRPC::grpc++ protobuf::libprotobuf)
  target_include_directories(${target} PUBLIC ${CMAKE_BINARY_DIR})
endfunction()

# Open Inference Protocol (KServe v2).
flexor_grpc_library(flexor_grpc_proto grpc_service model_config)
# Client side of grpc.health.v1 (the server uses gRPC's built-in service).
flexor_grpc_library(flexor_health_proto health)
# grpc.reflection.v1 (gRPC 1.51 serves only v1alpha).
flexor_grpc_library(flexor_reflection_v1_proto reflection_v1)
# KServe ModelMesh's model-runtime SPI (mmesh.ModelRuntime).
flexor_grpc_library(flexor_model_runtime_proto model_runtime)
