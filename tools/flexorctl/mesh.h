// flexorctl mesh: a client of KServe ModelMesh's model-runtime SPI
// (mmesh.ModelRuntime, proto/model_runtime.proto), the calls ModelMesh's
// sidecar makes to flexor_server --modelmesh (docs/modelmesh.md).
#ifndef FLEXOR_TOOLS_FLEXORCTL_MESH_H_
#define FLEXOR_TOOLS_FLEXORCTL_MESH_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "tools/flexorctl/commands.h"

namespace flexor::tools {

// args: "mesh" then status | load ID PATH | unload ID | size ID |
// predict-size ID PATH.
absl::Status MeshCommand(const CommandContext& ctx,
                         const std::vector<std::string>& args);

}  // namespace flexor::tools

#endif  // FLEXOR_TOOLS_FLEXORCTL_MESH_H_
