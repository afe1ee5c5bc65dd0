#!/usr/bin/python3
"""Drives flexor_server with stubs generated from Triton's own protos.

tritonclient.grpc is a thin layer over stubs generated from Triton's
grpc_service.proto and model_config.proto; this script makes the same calls
tritonclient makes (get_model_config, load_model(config=JSON),
start_stream/async_stream_infer, class_count, unload, statistics, log
settings), with Debian 12's python3-grpcio and python3-protobuf, so that the
wire compatibility is checked against Triton's definitions rather than the
project's copy (docs/clients.md).

Usage:
  git clone --depth 1 https://github.com/triton-inference-server/common
  tools/scripts/triton_proto_client.py common/protobuf localhost:8001 MODEL
"""

import json
import os
import struct
import subprocess
import sys
import tempfile

import grpc
from google.protobuf import json_format


def generate_stubs(proto_dir, out_dir):
    subprocess.run(
        ["protoc", f"--proto_path={proto_dir}", f"--python_out={out_dir}",
         f"--grpc_out={out_dir}",
         "--plugin=protoc-gen-grpc=/usr/bin/grpc_python_plugin",
         os.path.join(proto_dir, "grpc_service.proto"),
         os.path.join(proto_dir, "model_config.proto")],
        check=True)
    sys.path.insert(0, out_dir)


def main():
    proto_dir, target, model = sys.argv[1], sys.argv[2], sys.argv[3]
    out_dir = tempfile.mkdtemp()
    generate_stubs(proto_dir, out_dir)
    import grpc_service_pb2 as pb
    import grpc_service_pb2_grpc as pb_grpc

    stub = pb_grpc.GRPCInferenceServiceStub(grpc.insecure_channel(target))

    md = stub.ServerMetadata(pb.ServerMetadataRequest())
    print("server:", md.name, md.version, list(md.extensions))

    # get_model_config(as_json=True)
    config = stub.ModelConfig(pb.ModelConfigRequest(name=model)).config
    config_json = json_format.MessageToJson(config)
    print("model config:", json.dumps(json.loads(config_json), sort_keys=True))

    # infer with class_count=3 (InferRequestedOutput(class_count=3)), raw.
    meta = stub.ModelMetadata(pb.ModelMetadataRequest(name=model))
    shape = [1] + list(meta.inputs[0].shape[1:])
    n = 1
    for d in shape:
        n *= d
    request = pb.ModelInferRequest(model_name=model, id="classify")
    tensor = request.inputs.add(name=meta.inputs[0].name, datatype="FP32",
                                shape=shape)
    request.raw_input_contents.append(struct.pack(f"<{n}f", *([0.5] * n)))
    out = request.outputs.add(name=meta.outputs[0].name)
    out.parameters["class_count"].int64_param = 3
    out.parameters["binary_data"].bool_param = False
    response = stub.ModelInfer(request)
    print("top-3:", [b.decode() for b in
                     response.outputs[0].contents.bytes_contents])

    # start_stream + async_stream_infer: a good request and a bad one.
    bad = pb.ModelInferRequest()
    bad.CopyFrom(request)
    bad.id = "bad"
    bad.model_version = "42"
    good = pb.ModelInferRequest()
    good.CopyFrom(request)
    good.id = "good"
    for r in stub.ModelStreamInfer(iter([good, bad])):
        print("stream:", r.infer_response.id,
              "error=" + repr(r.error_message) if r.error_message else "ok")

    stats = stub.ModelStatistics(pb.ModelStatisticsRequest(name=model))
    s = stats.model_stats[0].inference_stats
    print("statistics: success", s.success.count, "fail", s.fail.count,
          "queue", s.queue.count, "compute_input", s.compute_input.count,
          "compute_output", s.compute_output.count)

    # load_model(config=JSON): an override for this load only (a reload
    # starts the version's statistics afresh, as in Triton).
    override = json.loads(config_json)
    override["max_batch_size"] = 4
    load = pb.RepositoryModelLoadRequest(model_name=model)
    load.parameters["config"].string_param = json.dumps(override)
    stub.RepositoryModelLoad(load)
    print("after override: max_batch_size =",
          stub.ModelConfig(pb.ModelConfigRequest(name=model))
          .config.max_batch_size)
    stub.RepositoryModelLoad(pb.RepositoryModelLoadRequest(model_name=model))
    print("after plain load: max_batch_size =",
          stub.ModelConfig(pb.ModelConfigRequest(name=model))
          .config.max_batch_size)

    # update_log_settings / get_log_settings
    settings = pb.LogSettingsRequest()
    settings.settings["log_verbose_level"].uint32_param = 1
    answer = stub.LogSettings(settings)
    print("log settings:", {k: json_format.MessageToDict(v)
                            for k, v in sorted(answer.settings.items())})

    # unload_model twice: the second is a no-op that succeeds (Triton).
    unload = pb.RepositoryModelUnloadRequest(model_name=model)
    stub.RepositoryModelUnload(unload)
    stub.RepositoryModelUnload(unload)
    print("unloaded twice: ok")
    stub.RepositoryModelLoad(pb.RepositoryModelLoadRequest(model_name=model))

    try:
        stub.TraceSetting(pb.TraceSettingRequest())
    except grpc.RpcError as e:
        print("trace:", e.code().name, e.details())


if __name__ == "__main__":
    main()
