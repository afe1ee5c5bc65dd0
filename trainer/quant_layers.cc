#include "trainer/quant_layers.h"

#include <cmath>
#include <cstring>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "engine/codec/bit_layout.h"

namespace flexor::trainer {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::tensor_list;

torch::Tensor SignOf(const torch::Tensor& x) {
  // sign(0) = +1, matching the export rule bit = (x < 0).
  return 1.0 - 2.0 * x.lt(0).to(x.scalar_type());
}

// Product over the tap axis (dim 1) of [n_out, n_tap, S] leaving out tap k.
torch::Tensor ProductOfOthers(const torch::Tensor& gathered, int64_t k) {
  const int64_t n_tap = gathered.size(1);
  torch::Tensor product;
  for (int64_t u = 0; u < n_tap; ++u) {
    if (u == k) continue;
    torch::Tensor factor = gathered.select(1, u);
    product = product.defined() ? product * factor : factor.clone();
  }
  if (!product.defined()) {
    product = torch::ones_like(gathered.select(1, 0));
  }
  return product;
}

class XorSignFunction : public torch::autograd::Function<XorSignFunction> {
 public:
  static torch::Tensor forward(AutogradContext* ctx, torch::Tensor latent,
                               torch::Tensor taps, int64_t n_tap, double s_tanh,
                               bool exact_tanh_grad) {
    const int64_t n_out = taps.size(0) / n_tap;
    const int64_t slices = latent.size(1);
    torch::Tensor signs = SignOf(latent);
    torch::Tensor y = signs.index_select(0, taps)
                          .view({n_out, n_tap, slices})
                          .prod(/*dim=*/1);
    ctx->save_for_backward({latent, taps});
    ctx->saved_data["n_tap"] = n_tap;
    ctx->saved_data["s_tanh"] = s_tanh;
    ctx->saved_data["exact"] = exact_tanh_grad;
    return y;
  }

  static tensor_list backward(AutogradContext* ctx, tensor_list grad_outputs) {
    const auto saved = ctx->get_saved_variables();
    const torch::Tensor& latent = saved[0];
    const torch::Tensor& taps = saved[1];
    const int64_t n_tap = ctx->saved_data["n_tap"].toInt();
    const double s_tanh = ctx->saved_data["s_tanh"].toDouble();
    const bool exact = ctx->saved_data["exact"].toBool();
    const int64_t n_out = taps.size(0) / n_tap;
    const int64_t slices = latent.size(1);
    const torch::Tensor grad_y = grad_outputs[0].contiguous();

    torch::Tensor tanh_latent = torch::tanh(s_tanh * latent);
    torch::Tensor tanh_derivative = s_tanh * (1.0 - tanh_latent * tanh_latent);
    // The other factors of each product: their signs (paper) or their tanh
    // (exact derivative of prod tanh).
    torch::Tensor others_source = exact ? tanh_latent : SignOf(latent);
    torch::Tensor gathered =
        others_source.index_select(0, taps).view({n_out, n_tap, slices});
    std::vector<torch::Tensor> per_tap;
    per_tap.reserve(n_tap);
    for (int64_t k = 0; k < n_tap; ++k) {
      per_tap.push_back(grad_y * ProductOfOthers(gathered, k));
    }
    torch::Tensor contributions =
        torch::stack(per_tap, /*dim=*/1).view({n_out * n_tap, slices});
    torch::Tensor grad_latent =
        torch::zeros_like(latent).index_add_(0, taps, contributions);
    grad_latent.mul_(tanh_derivative);
    return {grad_latent, torch::Tensor(), torch::Tensor(), torch::Tensor(),
            torch::Tensor()};
  }
};

std::vector<float> ToFloatVector(const torch::Tensor& t) {
  torch::Tensor c = t.detach().to(torch::kCPU, torch::kFloat32).contiguous();
  return std::vector<float>(c.data_ptr<float>(),
                            c.data_ptr<float>() + c.numel());
}

// Bits of a row-major sign tensor for plain coding (N_in = N_out = 1).
EncryptedBits PlainBits(const torch::Tensor& negative /*bool [O,K]*/) {
  torch::Tensor flat =
      negative.detach().to(torch::kCPU).reshape({-1}).contiguous();
  const int64_t n = flat.numel();
  EncryptedBits bits;
  bits.num_weights = n;
  bits.slices = n;
  bits.words_per_vector = WordsForBits(n);
  bits.words.assign(bits.words_per_vector, 0);
  const bool* values = flat.data_ptr<bool>();
  for (int64_t i = 0; i < n; ++i) {
    if (values[i]) SetBit(bits.words.data(), i, true);
  }
  return bits;
}

}  // namespace

absl::StatusOr<QuantMethod> ParseQuantMethod(absl::string_view name) {
  if (name == "fp32") return QuantMethod::kFloat32;
  if (name == "binary1") return QuantMethod::kBinary1;
  if (name == "binary2_ls") return QuantMethod::kBinary2Ls;
  if (name == "ternary") return QuantMethod::kTernary;
  if (name == "flexor") return QuantMethod::kFlexor;
  if (name == "ternary_dst") return QuantMethod::kTernaryDst;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown method '", name,
                   "'; expected fp32, binary1, binary2_ls, ternary, flexor or "
                   "ternary_dst"));
}

std::string QuantMethodName(QuantMethod method) {
  switch (method) {
    case QuantMethod::kFloat32:
      return "fp32";
    case QuantMethod::kBinary1:
      return "binary1";
    case QuantMethod::kBinary2Ls:
      return "binary2_ls";
    case QuantMethod::kTernary:
      return "ternary";
    case QuantMethod::kFlexor:
      return "flexor";
    case QuantMethod::kTernaryDst:
      return "ternary_dst";
  }
  return "unknown";
}

absl::StatusOr<XorNetwork> MakeXorNetwork(const QuantConfig& config) {
  if (config.method != QuantMethod::kFlexor) return XorNetwork::Plain();
  if (config.planes < 1 || config.planes > 2) {
    return absl::InvalidArgumentError(
        absl::StrCat("--planes must be 1 or 2, got ", config.planes));
  }
  absl::StatusOr<XorNetwork> net = GenerateXorNetwork(
      config.n_in, config.n_out, config.n_tap, config.xor_seed);
  if (!net.ok()) return net.status();
  for (uint64_t row : net->rows) {
    if (__builtin_popcountll(row) != config.n_tap) {
      return absl::InternalError(
          "GenerateXorNetwork returned a row without exactly n_tap taps");
    }
  }
  return net;
}

torch::Tensor XorSign(const torch::Tensor& latent, const torch::Tensor& taps,
                      int64_t n_tap, double s_tanh, bool exact_tanh_grad) {
  return XorSignFunction::apply(latent, taps, n_tap, s_tanh, exact_tanh_grad);
}

TwoBitCode LeastSquaresTwoBit(const torch::Tensor& w) {
  torch::NoGradGuard no_grad;
  torch::Tensor magnitude = w.abs();
  const int64_t k = w.size(1);
  if (k < 2) {
    // One weight per row: b1 alone represents it exactly.
    torch::Tensor v = magnitude.select(1, 0) / 2;
    return {v, v, torch::ones_like(magnitude, torch::kBool)};
  }
  torch::Tensor sorted = std::get<0>(magnitude.sort(/*dim=*/1));
  torch::Tensor prefix = sorted.cumsum(1);
  torch::Tensor total = prefix.select(1, k - 1).unsqueeze(1);
  // Low group = the m smallest magnitudes, m = 1..K-1.
  torch::Tensor low_sum = prefix.narrow(1, 0, k - 1);
  torch::Tensor low_count =
      torch::arange(1, k, w.options()).unsqueeze(0).expand_as(low_sum);
  torch::Tensor high_sum = total - low_sum;
  torch::Tensor high_count = static_cast<double>(k) - low_count;
  torch::Tensor gain =
      low_sum * low_sum / low_count + high_sum * high_sum / high_count;
  torch::Tensor best = gain.argmax(1, /*keepdim=*/true);
  torch::Tensor a = (low_sum.gather(1, best) / low_count.gather(1, best));
  torch::Tensor b = (high_sum.gather(1, best) / high_count.gather(1, best));
  torch::Tensor high = magnitude > (a + b) / 2;
  return {((a + b) / 2).squeeze(1), ((b - a) / 2).squeeze(1), high};
}

void ExportedWeights::ScaleOutputChannels(
    const std::vector<float>& channel_scale) {
  const int64_t k = in_features;
  if (!float_weights.empty()) {
    for (int64_t o = 0; o < out_features; ++o) {
      for (int64_t i = 0; i < k; ++i)
        float_weights[o * k + i] *= channel_scale[o];
    }
  }
  for (ModelWriter::Plane& plane : planes) {
    for (int64_t o = 0; o < out_features; ++o)
      plane.scales[o] *= channel_scale[o];
  }
  for (int64_t o = 0; o < static_cast<int64_t>(ternary_scales.size()); ++o) {
    ternary_scales[o] *= channel_scale[o];
  }
}

void ExportedWeights::Write(ModelWriter& writer, model::v1::WeightCodec* codec,
                            const std::string& prefix) const {
  switch (method) {
    case QuantMethod::kFloat32:
      writer.SetFloat32Weights(codec, prefix, out_features, in_features,
                               float_weights);
      break;
    case QuantMethod::kTernary:
    case QuantMethod::kTernaryDst:
      writer.SetTernaryWeights(codec, prefix, out_features, in_features,
                               ternary_values, ternary_scales);
      break;
    case QuantMethod::kBinary1:
    case QuantMethod::kBinary2Ls:
    case QuantMethod::kFlexor:
      writer.SetBinaryWeights(codec, prefix, planes);
      break;
  }
}

QuantizedWeightImpl::QuantizedWeightImpl(const torch::Tensor& init_weight,
                                         const QuantConfig& config,
                                         const XorNetwork& net)
    : config_(config),
      net_(net),
      out_features_(init_weight.size(0)),
      in_features_(init_weight.size(1)) {
  torch::NoGradGuard no_grad;
  if (config_.method == QuantMethod::kTernaryDst) {
    // Start from the threshold ternarization of the float initialisation.
    torch::Tensor magnitude = init_weight.abs();
    torch::Tensor nonzero =
        magnitude > config_.ternary_threshold_ratio * magnitude.mean(1, true);
    torch::Tensor ternary = SignOf(init_weight) * nonzero.to(torch::kFloat32);
    weight_ = register_parameter("weight", ternary.clone());
    discrete_state_ = register_buffer("discrete_state", ternary.clone());
    return;
  }
  if (config_.method != QuantMethod::kFlexor) {
    weight_ = register_parameter("weight", init_weight.clone());
    return;
  }
  const int64_t n = num_weights();
  slices_ = config_.row_aligned_slices
                ? RowAlignedSliceCount(n, net_.n_out, in_features_)
                : SliceCount(n, net_.n_out);
  std::vector<int64_t> rows(net_.rows.begin(), net_.rows.end());
  xor_rows_ = register_buffer("xor_rows", torch::tensor(rows, torch::kInt64));
  taps_ = register_buffer(
      "taps", torch::zeros({net_.n_out * config_.n_tap}, torch::kInt64));
  absl::Status synced = SyncNetworkFromBuffers();
  TORCH_CHECK(synced.ok(), synced.ToString());
  // Scales from the float initialisation: mean|w| (q = 1) or the 2-bit
  // least-squares scales (q = 2), per output channel.
  torch::Tensor initial_scales;
  if (config_.planes == 1) {
    initial_scales = init_weight.abs().mean(1).unsqueeze(0);
  } else {
    TwoBitCode code = LeastSquaresTwoBit(init_weight);
    initial_scales = torch::stack({code.v1, code.v2});
  }
  scales_ = register_parameter("scales", initial_scales.contiguous());
  for (int p = 0; p < config_.planes; ++p) {
    latent_bits_.push_back(register_parameter(
        absl::StrCat("latent_bits_", p),
        torch::randn({net_.n_in, slices_}, init_weight.options()) *
            config_.latent_init_std));
  }
}

absl::Status QuantizedWeightImpl::SyncNetworkFromBuffers() {
  if (config_.method != QuantMethod::kFlexor) return absl::OkStatus();
  torch::Tensor rows = xor_rows_.to(torch::kCPU).contiguous();
  if (rows.numel() != net_.n_out) {
    return absl::InvalidArgumentError("stored XOR network has the wrong size");
  }
  std::vector<int64_t> taps;
  for (int64_t j = 0; j < rows.numel(); ++j) {
    const uint64_t row = static_cast<uint64_t>(rows.data_ptr<int64_t>()[j]);
    net_.rows[j] = row;
    for (int t = 0; t < net_.n_in; ++t) {
      if ((row >> t) & 1u) taps.push_back(t);
    }
    if (static_cast<int64_t>(taps.size()) != (j + 1) * config_.n_tap) {
      return absl::InvalidArgumentError(absl::StrCat(
          "XOR network row ", j, " does not have ", config_.n_tap, " taps"));
    }
  }
  taps_.copy_(torch::tensor(taps, torch::kInt64));
  return absl::OkStatus();
}

double QuantizedWeightImpl::stored_bits_per_weight() const {
  switch (config_.method) {
    case QuantMethod::kFloat32:
      return 32;
    case QuantMethod::kBinary1:
      return 1;
    case QuantMethod::kBinary2Ls:
      return 2;
    case QuantMethod::kTernary:
    case QuantMethod::kTernaryDst:
      return 2;
    case QuantMethod::kFlexor:
      return config_.planes * net_.bits_per_weight();
  }
  return 32;
}

torch::Tensor QuantizedWeightImpl::BinarySigns(const torch::Tensor& w) const {
  return SignOf(w);
}

torch::Tensor QuantizedWeightImpl::StraightThrough(
    const torch::Tensor& q) const {
  torch::Tensor clamped = weight_.clamp(-1.0, 1.0);
  return q.detach() + clamped - clamped.detach();
}

torch::Tensor QuantizedWeightImpl::Forward() {
  switch (config_.method) {
    case QuantMethod::kFloat32:
    case QuantMethod::kTernaryDst:
      return weight_;
    case QuantMethod::kBinary1: {
      torch::Tensor scale = weight_.detach().abs().mean(1, /*keepdim=*/true);
      return StraightThrough(BinarySigns(weight_.detach()) * scale);
    }
    case QuantMethod::kBinary2Ls: {
      torch::Tensor w = weight_.detach();
      TwoBitCode code = LeastSquaresTwoBit(w);
      torch::Tensor level =
          torch::where(code.high, (code.v1 + code.v2).unsqueeze(1),
                       (code.v1 - code.v2).unsqueeze(1));
      return StraightThrough(BinarySigns(w) * level);
    }
    case QuantMethod::kTernary: {
      torch::Tensor w = weight_.detach();
      torch::Tensor magnitude = w.abs();
      torch::Tensor threshold =
          config_.ternary_threshold_ratio * magnitude.mean(1, /*keepdim=*/true);
      torch::Tensor nonzero = (magnitude > threshold).to(w.scalar_type());
      torch::Tensor scale = (magnitude * nonzero).sum(1, true) /
                            nonzero.sum(1, true).clamp_min(1.0);
      return StraightThrough(BinarySigns(w) * nonzero * scale);
    }
    case QuantMethod::kFlexor: {
      const int64_t n = num_weights();
      torch::Tensor weight;
      for (int p = 0; p < config_.planes; ++p) {
        torch::Tensor decrypted = XorSign(latent_bits_[p], taps_, config_.n_tap,
                                          s_tanh_, config_.exact_tanh_grad);
        torch::Tensor plane = decrypted.reshape({-1}).narrow(0, 0, n).view(
                                  {out_features_, in_features_}) *
                              scales_[p].unsqueeze(1);
        weight = weight.defined() ? weight + plane : plane;
      }
      return weight;
    }
  }
  return weight_;
}

void QuantizedWeightImpl::ClipLatent(double clip) {
  if (config_.method != QuantMethod::kFlexor || clip <= 0) return;
  torch::NoGradGuard no_grad;
  const double limit = clip / s_tanh_;
  for (torch::Tensor& latent : latent_bits_) latent.clamp_(-limit, limit);
}

void QuantizedWeightImpl::ApplyDiscreteTransition() {
  if (config_.method != QuantMethod::kTernaryDst) return;
  torch::NoGradGuard no_grad;
  // The optimizer moved weight_ from the discrete state by `proposed`.
  torch::Tensor proposed = weight_ - discrete_state_;
  torch::Tensor whole_states = proposed.trunc();
  torch::Tensor remainder = proposed - whole_states;
  torch::Tensor extra_state =
      torch::bernoulli(torch::tanh(config_.dst_m * remainder.abs())) *
      torch::sign(remainder);
  torch::Tensor next =
      (discrete_state_ + whole_states + extra_state).clamp(-1.0, 1.0);
  discrete_state_.copy_(next);
  weight_.copy_(next);
}

ExportedWeights QuantizedWeightImpl::Export() {
  torch::NoGradGuard no_grad;
  ExportedWeights out;
  out.method = config_.method;
  out.out_features = out_features_;
  out.in_features = in_features_;
  switch (config_.method) {
    case QuantMethod::kFloat32:
      out.float_weights = ToFloatVector(weight_);
      break;
    case QuantMethod::kBinary1: {
      torch::Tensor w = weight_.detach();
      out.planes.push_back({ToFloatVector(w.abs().mean(1)), XorNetwork::Plain(),
                            PlainBits(w.lt(0))});
      break;
    }
    case QuantMethod::kBinary2Ls: {
      torch::Tensor w = weight_.detach();
      TwoBitCode code = LeastSquaresTwoBit(w);
      torch::Tensor first_negative = w.lt(0);
      // b2 = b1 on the high level, -b1 on the low one.
      torch::Tensor second_negative =
          first_negative.logical_xor(code.high.logical_not());
      out.planes.push_back({ToFloatVector(code.v1), XorNetwork::Plain(),
                            PlainBits(first_negative)});
      out.planes.push_back({ToFloatVector(code.v2), XorNetwork::Plain(),
                            PlainBits(second_negative)});
      break;
    }
    case QuantMethod::kTernaryDst: {
      torch::Tensor values = weight_.detach()
                                 .round()
                                 .to(torch::kInt8)
                                 .cpu()
                                 .reshape({-1})
                                 .contiguous();
      out.ternary_values.assign(values.data_ptr<int8_t>(),
                                values.data_ptr<int8_t>() + values.numel());
      out.ternary_scales.assign(out_features_, 1.0f);
      break;
    }
    case QuantMethod::kTernary: {
      torch::Tensor w = weight_.detach();
      torch::Tensor magnitude = w.abs();
      torch::Tensor threshold =
          config_.ternary_threshold_ratio * magnitude.mean(1, /*keepdim=*/true);
      torch::Tensor nonzero = (magnitude > threshold).to(w.scalar_type());
      torch::Tensor scale =
          (magnitude * nonzero).sum(1) / nonzero.sum(1).clamp_min(1.0);
      torch::Tensor values = (SignOf(w) * nonzero)
                                 .to(torch::kInt8)
                                 .cpu()
                                 .reshape({-1})
                                 .contiguous();
      out.ternary_values.assign(values.data_ptr<int8_t>(),
                                values.data_ptr<int8_t>() + values.numel());
      out.ternary_scales = ToFloatVector(scale);
      break;
    }
    case QuantMethod::kFlexor: {
      for (int p = 0; p < config_.planes; ++p) {
        torch::Tensor negative =
            latent_bits_[p].detach().lt(0).to(torch::kCPU).contiguous();
        EncryptedBits bits;
        bits.num_weights = num_weights();
        bits.slices = slices_;
        bits.words_per_vector = WordsForBits(slices_);
        bits.words.assign(net_.n_in * bits.words_per_vector, 0);
        const bool* values = negative.data_ptr<bool>();
        for (int t = 0; t < net_.n_in; ++t) {
          uint64_t* vector = bits.words.data() + t * bits.words_per_vector;
          for (int64_t s = 0; s < slices_; ++s) {
            if (values[t * slices_ + s]) SetBit(vector, s, true);
          }
        }
        out.planes.push_back(
            {ToFloatVector(scales_[p]), net_, std::move(bits)});
      }
      break;
    }
  }
  return out;
}

FleXORLinearImpl::FleXORLinearImpl(int64_t in_features, int64_t out_features,
                                   bool with_bias, const QuantConfig& config,
                                   const XorNetwork& net)
    : in_features_(in_features), out_features_(out_features) {
  torch::Tensor init = torch::empty({out_features, in_features});
  torch::nn::init::kaiming_uniform_(init, std::sqrt(5.0));
  weight_ = register_module("weight", QuantizedWeight(init, config, net));
  if (with_bias) {
    const double bound = 1.0 / std::sqrt(static_cast<double>(in_features));
    bias_ = register_parameter(
        "bias", torch::empty({out_features}).uniform_(-bound, bound));
  }
}

torch::Tensor FleXORLinearImpl::forward(const torch::Tensor& x) {
  return torch::linear(x, weight_->Forward(), bias_);
}

FleXORConv2dImpl::FleXORConv2dImpl(const Conv2dShape& shape, bool with_bias,
                                   const QuantConfig& config,
                                   const XorNetwork& net)
    : shape_(shape) {
  const int64_t fan_in = shape.in_channels * shape.kernel * shape.kernel;
  torch::Tensor init = torch::empty({shape.out_channels, fan_in});
  torch::nn::init::kaiming_uniform_(init, std::sqrt(5.0));
  // Row-aligned slices serve the engine's Dense int8 look-up only;
  // convolutions run its pixel kernels, and on few rows the padding is large
  // (25% on a 64 x 800 layer).
  QuantConfig conv_config = config;
  conv_config.row_aligned_slices = false;
  weight_ = register_module("weight", QuantizedWeight(init, conv_config, net));
  if (with_bias) {
    const double bound = 1.0 / std::sqrt(static_cast<double>(fan_in));
    bias_ = register_parameter(
        "bias", torch::empty({shape.out_channels}).uniform_(-bound, bound));
  }
}

torch::Tensor FleXORConv2dImpl::forward(const torch::Tensor& x) {
  torch::Tensor w = weight_->Forward().view(
      {shape_.out_channels, shape_.in_channels, shape_.kernel, shape_.kernel});
  return torch::conv2d(x, w, bias_, shape_.stride, shape_.padding);
}

}  // namespace flexor::trainer
