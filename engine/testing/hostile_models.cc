#include "engine/testing/hostile_models.h"

#include <vector>

#include "engine/format/model_writer.h"

namespace flexor {

namespace mv1 = model::v1;

std::string OverflowingInputShapeModel() {
  ModelWriter w("overflow");
  w.AddInput("x", {int64_t{1} << 22, int64_t{1} << 21, int64_t{1} << 21},
             false);
  w.AddNode("gap", {"x"}, "y")->mutable_global_avg_pool();
  w.AddOutput("y", {int64_t{1} << 22});
  return *w.Serialize();
}

std::string ActivationBombModel() {
  constexpr int64_t kChannels = 4032;
  ModelWriter w("bomb");
  w.AddInput("x", {1, 1, 1}, false);
  mv1::Conv2dOp* c = w.AddNode("conv", {"x"}, "c")->mutable_conv2d();
  c->set_in_channels(1);
  c->set_out_channels(kChannels);
  c->set_kernel_h(1);
  c->set_kernel_w(1);
  c->set_pad_h(64);
  c->set_pad_w(64);
  w.SetFloat32Weights(c->mutable_weights(), "conv", kChannels, 1,
                      std::vector<float>(kChannels, 1.0f));
  w.AddNode("gap", {"c"}, "y")->mutable_global_avg_pool();
  w.AddOutput("y", {kChannels});
  return *w.Serialize();
}

}  // namespace flexor
