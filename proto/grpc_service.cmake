# Open Inference Protocol (KServe v2) service: protoc + grpc_cpp_plugin.
# Generated files land in ${CMAKE_BINARY_DIR}/proto so that sources include
# "proto/grpc_service.grpc.pb.h".
set(_flexor_grpc_out ${CMAKE_BINARY_DIR}/proto)
set(_flexor_grpc_srcs
  ${_flexor_grpc_out}/grpc_service.pb.cc
  ${_flexor_grpc_out}/grpc_service.grpc.pb.cc)
set(_flexor_grpc_hdrs
  ${_flexor_grpc_out}/grpc_service.pb.h
  ${_flexor_grpc_out}/grpc_service.grpc.pb.h)
find_program(FLEXOR_GRPC_CPP_PLUGIN grpc_cpp_plugin REQUIRED)
add_custom_command(
  OUTPUT ${_flexor_grpc_srcs} ${_flexor_grpc_hdrs}
  COMMAND ${CMAKE_COMMAND} -E make_directory ${_flexor_grpc_out}
  COMMAND protobuf::protoc
    --proto_path=${CMAKE_CURRENT_SOURCE_DIR}
    --cpp_out=${_flexor_grpc_out}
    --grpc_out=${_flexor_grpc_out}
    --plugin=protoc-gen-grpc=${FLEXOR_GRPC_CPP_PLUGIN}
    ${CMAKE_CURRENT_SOURCE_DIR}/grpc_service.proto
  DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/grpc_service.proto protobuf::protoc
  COMMENT "Generating the KServe v2 gRPC service from grpc_service.proto"
  VERBATIM)
add_library(flexor_grpc_proto STATIC ${_flexor_grpc_srcs})
target_link_libraries(flexor_grpc_proto PUBLIC gRPC::grpc++ protobuf::libprotobuf)
target_include_directories(flexor_grpc_proto PUBLIC ${CMAKE_BINARY_DIR})
