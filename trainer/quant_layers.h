// Quantized layers of the trainer: FleXOR (encrypted bits decrypted through a
// fixed XOR-gate network, DESIGN.md section 2) and, on the same code path, the
// baselines fp32, 1-bit binary (BWN scale mean|w|, straight-through
// estimator), 2-bit least-squares binary codes (Pouransari et al.) and
// threshold ternary weights.
#ifndef FLEXOR_TRAINER_QUANT_LAYERS_H_
#define FLEXOR_TRAINER_QUANT_LAYERS_H_

#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "engine/codec/xor_network.h"
#include "engine/format/model_writer.h"

namespace flexor::trainer {

// kTernaryDst: GXNOR-Net's discrete state transition (Deng et al., 2018):
// the weights themselves live in {-1, 0, +1}; the optimizer's proposed step
// moves a weight by whole states plus one more with probability
// tanh(m * |remainder|) (no float hidden weights kept across steps).
enum class QuantMethod {
  kFloat32,
  kBinary1,
  kBinary2Ls,
  kTernary,
  kFlexor,
  kTernaryDst
};

absl::StatusOr<QuantMethod> ParseQuantMethod(absl::string_view name);
// "fp32", "binary1", "binary2_ls", "ternary", "flexor", "ternary_dst" (model
// metadata names).
std::string QuantMethodName(QuantMethod method);

struct QuantConfig {
  QuantMethod method = QuantMethod::kFloat32;
  // FleXOR network M (N_out x N_in, N_tap ones per row) and planes q.
  int n_in = 16;
  int n_out = 20;
  int n_tap = 2;
  int planes = 1;
  uint64_t xor_seed = 1;
  // Row-aligned slices (BitPlane.slices): S rounded up to a multiple of the
  // layer's K so that every segment starts on a row boundary, which lets
  // the engine's AVX2 int8 LUT decrypt inside its look-up (at most N_out
  // (K - 1) padding bits per stored vector). Dense layers only
  // (FleXORConv2d ignores it).
  bool row_aligned_slices = false;
  // Backward of the sign: the paper's form (other factors are signs) or the
  // exact gradient of a product of tanh (other factors are tanh).
  bool exact_tanh_grad = false;
  double latent_init_std = 1e-3;
  // Ternary: threshold = ratio * mean|w| per output channel (TWN).
  double ternary_threshold_ratio = 0.7;
  // Ternary DST: transition probability tanh(dst_m * |remainder|).
  double dst_m = 30.0;
};

// Builds the network M for `config` (GenerateXorNetwork for FleXOR, the plain
// 1x1 network for the other binary codes).
absl::StatusOr<XorNetwork> MakeXorNetwork(const QuantConfig& config);

// Sign-domain XOR network with the tanh surrogate gradient.
//   latent [n_in, S] -> y [n_out, S], y[j] = prod_{t in taps(j)} sign(x[t]),
//   sign(0) = +1. taps: int64 [n_out * n_tap], row-major.
torch::Tensor XorSign(const torch::Tensor& latent, const torch::Tensor& taps,
                      int64_t n_tap, double s_tanh, bool exact_tanh_grad);

// Least-squares 2-bit binary code of each row of w [O, K]: w ~ v1*b1 + v2*b2.
// Exact: the two magnitude levels a < b are the optimal 2-means of |w| (found
// by a search over the split point of the sorted magnitudes).
struct TwoBitCode {
  torch::Tensor v1;    // [O]
  torch::Tensor v2;    // [O]
  torch::Tensor high;  // bool [O, K]: |w| uses level b = v1 + v2
};
TwoBitCode LeastSquaresTwoBit(const torch::Tensor& w);

// What a layer's weights look like in the model file.
struct ExportedWeights {
  QuantMethod method = QuantMethod::kFloat32;
  int64_t out_features = 0;
  int64_t in_features = 0;
  std::vector<float> float_weights;        // fp32: [O * K]
  std::vector<ModelWriter::Plane> planes;  // binary codes and FleXOR
  std::vector<int8_t> ternary_values;      // ternary: [O * K]
  std::vector<float> ternary_scales;       // ternary: [O]

  // Multiplies output channel o by channel_scale[o] (BatchNorm folding).
  void ScaleOutputChannels(const std::vector<float>& channel_scale);
  // Adds the weights to `codec` through the writer.
  void Write(ModelWriter& writer, model::v1::WeightCodec* codec,
             const std::string& prefix) const;
};

// The weight matrix [O, K] of one layer under a quantization method.
class QuantizedWeightImpl : public torch::nn::Module {
 public:
  // `init_weight` [O, K]: the float initialisation (FleXOR and binary scales
  // are initialised from it).
  QuantizedWeightImpl(const torch::Tensor& init_weight,
                      const QuantConfig& config, const XorNetwork& net);

  // The effective float weight [O, K] used by the forward pass.
  torch::Tensor Forward();

  ExportedWeights Export();

  // Rebuilds M and the taps from the stored rows (after loading a
  // checkpoint).
  absl::Status SyncNetworkFromBuffers();

  const QuantConfig& config() const { return config_; }
  bool is_quantized() const { return config_.method != QuantMethod::kFloat32; }
  int64_t num_weights() const { return out_features_ * in_features_; }
  // Stored bits per weight (FleXOR q*N_in/N_out, binary q, ternary 2 as
  // stored in the file (mask + sign), fp32 32).
  double stored_bits_per_weight() const;
  void set_s_tanh(double s_tanh) { s_tanh_ = s_tanh; }
  // FleXOR: clamps latent bits to |x| <= clip / s_tanh.
  void ClipLatent(double clip);
  // Ternary DST: call after every optimizer step; turns the optimizer's
  // proposed continuous update into a stochastic discrete transition.
  void ApplyDiscreteTransition();

 private:
  torch::Tensor BinarySigns(const torch::Tensor& w) const;
  // Straight-through: forward value q, gradient of clamp(w, -1, 1).
  torch::Tensor StraightThrough(const torch::Tensor& q) const;

  QuantConfig config_;
  XorNetwork net_;
  int64_t out_features_ = 0;
  int64_t in_features_ = 0;
  int64_t slices_ = 0;
  double s_tanh_ = 10.0;
  // Float latent weights (fp32, binary, ternary); the discrete weights
  // themselves for ternary DST, with their state before the last step.
  torch::Tensor weight_;
  torch::Tensor discrete_state_;
  // FleXOR: latent bits per plane [n_in, S], scales [planes, O].
  std::vector<torch::Tensor> latent_bits_;
  torch::Tensor scales_;
  // M's rows as int64 bitmasks [n_out] (saved with the checkpoint) and the
  // taps derived from them [n_out * n_tap].
  torch::Tensor xor_rows_;
  torch::Tensor taps_;
};
TORCH_MODULE(QuantizedWeight);

// Linear layer y = x W^T + b with a quantized W [out, in].
class FleXORLinearImpl : public torch::nn::Module {
 public:
  FleXORLinearImpl(int64_t in_features, int64_t out_features, bool with_bias,
                   const QuantConfig& config, const XorNetwork& net);
  torch::Tensor forward(const torch::Tensor& x);

  int64_t in_features() const { return in_features_; }
  int64_t out_features() const { return out_features_; }
  QuantizedWeight& weight() { return weight_; }
  const torch::Tensor& bias() const { return bias_; }  // undefined if none

 private:
  int64_t in_features_;
  int64_t out_features_;
  QuantizedWeight weight_{nullptr};
  torch::Tensor bias_;
};
TORCH_MODULE(FleXORLinear);

struct Conv2dShape {
  int64_t in_channels = 1;
  int64_t out_channels = 1;
  int64_t kernel = 3;
  int64_t stride = 1;
  int64_t padding = 0;
};

// 2-D convolution (NCHW, groups = 1) with a quantized weight flattened to
// [O, C*kh*kw].
class FleXORConv2dImpl : public torch::nn::Module {
 public:
  FleXORConv2dImpl(const Conv2dShape& shape, bool with_bias,
                   const QuantConfig& config, const XorNetwork& net);
  torch::Tensor forward(const torch::Tensor& x);

  const Conv2dShape& shape() const { return shape_; }
  QuantizedWeight& weight() { return weight_; }
  const torch::Tensor& bias() const { return bias_; }

 private:
  Conv2dShape shape_;
  QuantizedWeight weight_{nullptr};
  torch::Tensor bias_;
};
TORCH_MODULE(FleXORConv2d);

}  // namespace flexor::trainer

#endif  // FLEXOR_TRAINER_QUANT_LAYERS_H_
