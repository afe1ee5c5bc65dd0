#include "engine/testing/random_model.h"

#include <cmath>
#include <random>

#include "absl/strings/str_cat.h"
#include "engine/codec/bit_layout.h"
#include "engine/codec/xor_network.h"
#include "engine/format/model_writer.h"

namespace flexor {

namespace mv1 = model::v1;

namespace {

// Fashion-MNIST pixel statistics: the graph normalises raw 0..255 pixels.
constexpr float kPixelMean = 0.2860f;
constexpr float kPixelStd = 0.3530f;

class Builder {
 public:
  Builder(const RandomModelSpec& spec)
      : spec_(spec), w_(spec.name), rng_(spec.seed) {}

  absl::Status SetWeights(mv1::WeightCodec* codec, const std::string& prefix,
                          int64_t O, int64_t K) {
    const float scale = std::sqrt(2.0f / static_cast<float>(K));
    std::normal_distribution<float> normal(0.0f, scale);
    std::uniform_real_distribution<float> uniform(0.5f * scale, 1.5f * scale);
    const std::string& m = spec_.method;
    if (m == "fp32") {
      std::vector<float> w(O * K);
      for (float& v : w) v = normal(rng_);
      w_.SetFloat32Weights(codec, prefix, O, K, w);
      return absl::OkStatus();
    }
    if (m == "ternary") {
      std::vector<int8_t> t(O * K);
      for (int8_t& v : t)
        v = static_cast<int8_t>(static_cast<int>(rng_() % 3) - 1);
      std::vector<float> scales(O);
      for (float& s : scales) s = uniform(rng_);
      w_.SetTernaryWeights(codec, prefix, O, K, t, scales);
      return absl::OkStatus();
    }
    XorNetwork net;
    int planes = spec_.planes;
    if (m == "binary1" || m == "binary2") {
      planes = m == "binary1" ? 1 : 2;
    } else if (m == "flexor") {
      absl::StatusOr<XorNetwork> g = GenerateXorNetwork(
          spec_.n_in, spec_.n_out, spec_.n_tap, spec_.seed + ++layer_);
      if (!g.ok()) return g.status();
      net = *std::move(g);
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat("unknown method '", m, "'"));
    }
    std::vector<ModelWriter::Plane> out;
    for (int p = 0; p < planes; ++p) {
      ModelWriter::Plane plane;
      plane.net = net;
      plane.bits = MakeEncryptedBits(O * K, net);
      for (uint64_t& word : plane.bits.words) word = rng_();
      // Keep padding bits zero, as the layout requires.
      const int64_t tail = plane.bits.slices % 64;
      if (tail != 0) {
        for (int t = 0; t < net.n_in; ++t) {
          plane.bits.words[(t + 1) * plane.bits.words_per_vector - 1] &=
              (uint64_t{1} << tail) - 1;
        }
      }
      plane.scales.resize(O);
      for (float& s : plane.scales)
        s = uniform(rng_) / static_cast<float>(p + 1);
      out.push_back(std::move(plane));
    }
    w_.SetBinaryWeights(codec, prefix, out);
    return absl::OkStatus();
  }

  std::string Bias(const std::string& prefix, int64_t O) {
    std::normal_distribution<float> normal(0.0f, 0.1f);
    std::vector<float> b(O);
    for (float& v : b) v = normal(rng_);
    return w_.AddFloat(prefix + ".bias", {O}, b);
  }

  // Appends a node reading `in`; returns its output name.
  std::string Dense(const std::string& name, const std::string& in, int64_t K,
                    int64_t O, absl::Status* status) {
    mv1::Node* node = w_.AddNode(name, {in}, name);
    mv1::DenseOp* d = node->mutable_dense();
    d->set_in_features(K);
    d->set_out_features(O);
    d->set_bias(Bias(name, O));
    Update(status, SetWeights(d->mutable_weights(), name, O, K));
    return name;
  }

  std::string Conv(const std::string& name, const std::string& in, int64_t C,
                   int64_t O, int k, int stride, int pad,
                   absl::Status* status) {
    mv1::Node* node = w_.AddNode(name, {in}, name);
    mv1::Conv2dOp* c = node->mutable_conv2d();
    c->set_in_channels(C);
    c->set_out_channels(O);
    c->set_kernel_h(k);
    c->set_kernel_w(k);
    c->set_stride_h(stride);
    c->set_stride_w(stride);
    c->set_pad_h(pad);
    c->set_pad_w(pad);
    c->set_groups(1);
    Update(status, SetWeights(c->mutable_weights(), name, O, C * k * k));
    return name;
  }

  std::string BatchNorm(const std::string& name, const std::string& in,
                        int64_t C) {
    std::uniform_real_distribution<float> scale(0.5f, 1.5f);
    std::normal_distribution<float> shift(0.0f, 0.1f);
    std::vector<float> a(C), b(C);
    for (int64_t c = 0; c < C; ++c) {
      a[c] = scale(rng_);
      b[c] = shift(rng_);
    }
    mv1::Node* node = w_.AddNode(name, {in}, name);
    node->mutable_batch_norm()->set_scale(w_.AddFloat(name + ".scale", {C}, a));
    node->mutable_batch_norm()->set_shift(w_.AddFloat(name + ".shift", {C}, b));
    return name;
  }

  std::string Relu(const std::string& name, const std::string& in) {
    w_.AddNode(name, {in}, name)->mutable_relu();
    return name;
  }

  std::string MaxPool(const std::string& name, const std::string& in) {
    mv1::Pool2dOp* p = w_.AddNode(name, {in}, name)->mutable_pool2d();
    p->set_kind(mv1::Pool2dOp::MAX);
    p->set_kernel_h(2);
    p->set_kernel_w(2);
    p->set_stride_h(2);
    p->set_stride_w(2);
    return name;
  }

  absl::StatusOr<std::string> Build() {
    absl::Status status;
    w_.metadata().set_method(spec_.method);
    w_.metadata().set_description("random weights (tests, demos, benchmarks)");
    (*w_.metadata().mutable_provenance())["generator"] = "BuildRandomModel";
    (*w_.metadata().mutable_provenance())["seed"] = absl::StrCat(spec_.seed);
    for (const std::string& label : spec_.labels) {
      w_.metadata().add_labels(label);
    }
    w_.AddInput("image", {1, 28, 28}, /*accepts_uint8=*/true);
    mv1::InputScaleOp* scale =
        w_.AddNode("normalize", {"image"}, "normalize")->mutable_input_scale();
    scale->add_scale(1.0f / (255.0f * kPixelStd));
    scale->add_shift(-kPixelMean / kPixelStd);
    std::string x = "normalize";
    const int w = spec_.width;
    switch (spec_.arch) {
      case RandomArch::kMlp:
        w_.AddNode("flatten", {x}, "flatten")->mutable_flatten();
        x = Relu("relu1", Dense("fc1", "flatten", 784, 256 * w, &status));
        x = Relu("relu2", Dense("fc2", x, 256 * w, 128 * w, &status));
        x = Dense("fc3", x, 128 * w, 10, &status);
        break;
      case RandomArch::kLeNet:
        x = Conv("conv1", x, 1, 6 * w, 5, 1, 2, &status);
        x = MaxPool("pool1", Relu("relu1", BatchNorm("bn1", x, 6 * w)));
        x = Conv("conv2", x, 6 * w, 16 * w, 5, 1, 0, &status);
        x = MaxPool("pool2", Relu("relu2", BatchNorm("bn2", x, 16 * w)));
        w_.AddNode("flatten", {x}, "flatten")->mutable_flatten();
        x = Relu("relu3", Dense("fc1", "flatten", 16 * w * 25, 120, &status));
        x = Relu("relu4", Dense("fc2", x, 120, 84, &status));
        x = Dense("fc3", x, 84, 10, &status);
        break;
      case RandomArch::kResNet: {
        const int c = 8 * w;
        x = Relu(
            "stem_relu",
            BatchNorm("stem_bn", Conv("stem", x, 1, c, 3, 1, 1, &status), c));
        // Basic block with identity shortcut.
        std::string y =
            Relu("b1_relu1",
                 BatchNorm("b1_bn1",
                           Conv("b1_conv1", x, c, c, 3, 1, 1, &status), c));
        y = BatchNorm("b1_bn2", Conv("b1_conv2", y, c, c, 3, 1, 1, &status), c);
        w_.AddNode("b1_add", {x, y}, "b1_add")->mutable_add();
        x = Relu("b1_relu2", "b1_add");
        // Downsampling block with a strided 1x1 projection shortcut.
        y = Relu(
            "b2_relu1",
            BatchNorm("b2_bn1", Conv("b2_conv1", x, c, 2 * c, 3, 2, 1, &status),
                      2 * c));
        y = BatchNorm("b2_bn2",
                      Conv("b2_conv2", y, 2 * c, 2 * c, 3, 1, 1, &status),
                      2 * c);
        const std::string proj = Conv("b2_proj", x, c, 2 * c, 1, 2, 0, &status);
        w_.AddNode("b2_add", {proj, y}, "b2_add")->mutable_add();
        x = Relu("b2_relu2", "b2_add");
        w_.AddNode("gap", {x}, "gap")->mutable_global_avg_pool();
        x = Dense("fc", "gap", 2 * c, 10, &status);
        break;
      }
    }
    w_.AddNode("softmax", {x}, "probabilities")->mutable_softmax();
    w_.AddOutput("probabilities", {10});
    if (!status.ok()) return status;
    return w_.Serialize();
  }

 private:
  static void Update(absl::Status* status, absl::Status s) {
    if (status->ok()) *status = std::move(s);
  }

  RandomModelSpec spec_;
  ModelWriter w_;
  std::mt19937_64 rng_;
  int layer_ = 0;
};

}  // namespace

absl::StatusOr<std::string> BuildRandomModel(const RandomModelSpec& spec) {
  return Builder(spec).Build();
}

}  // namespace flexor
