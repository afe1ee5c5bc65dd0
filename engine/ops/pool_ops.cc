// MaxPool2d, AvgPool2d (padding counted in the average, as PyTorch's
// default count_include_pad=True) and GlobalAvgPool.
#include <algorithm>
#include <array>
#include <limits>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "engine/kernels/cpu_features.h"
#include "engine/kernels/microkernels.h"
#include "engine/ops/operator.h"

namespace flexor {

namespace mv1 = model::v1;

namespace {

class Pool2dOp : public Operator {
 public:
  // `in` and `out` are [C, H, W] (checked by CompilePool).
  Pool2dOp(const mv1::Pool2dOp& cfg, const Shape& in, const Shape& out)
      : cfg_(cfg), in_{in[0], in[1], in[2]}, out_{out[0], out[1], out[2]} {}

  void Run(absl::Span<const float* const> inputs, int64_t batch, float* output,
           const RunContext&) const override {
    const int64_t C = in_[0], H = in_[1], W = in_[2];
    const int64_t Ho = out_[1], Wo = out_[2];
    const bool is_max = cfg_.kind() == mv1::Pool2dOp::MAX;
    const float area = static_cast<float>(cfg_.kernel_h() * cfg_.kernel_w());
    if (is_max && cfg_.pad_h() == 0 && cfg_.pad_w() == 0 &&
        cfg_.kernel_h() == 2 && cfg_.kernel_w() == 2 && cfg_.stride_h() == 2 &&
        cfg_.stride_w() == 2) {
      // The usual 2x2/2 pooling: a per-ISA kernel (microkernels.h).
      GetPixelKernelTable(SelectedIsa())
          .max_pool_2x2(inputs[0], batch * C, H, W, output);
      return;
    }
    if (is_max && cfg_.pad_h() == 0 && cfg_.pad_w() == 0) {
      // Every window is inside the input: no bounds checks, and the max over
      // one window row is a loop the compiler unrolls.
      const int64_t kh = cfg_.kernel_h(), kw = cfg_.kernel_w();
      const int64_t sh = cfg_.stride_h(), sw = cfg_.stride_w();
      for (int64_t nc = 0; nc < batch * C; ++nc) {
        const float* x = inputs[0] + nc * H * W;
        float* y = output + nc * Ho * Wo;
        for (int64_t oy = 0; oy < Ho; ++oy) {
          float* yr = y + oy * Wo;
          const float* xr = x + oy * sh * W;
          for (int64_t ox = 0; ox < Wo; ++ox) yr[ox] = xr[ox * sw];
          for (int64_t ky = 0; ky < kh; ++ky) {
            const float* row = xr + ky * W;
            for (int64_t kx = ky == 0 ? 1 : 0; kx < kw; ++kx) {
              for (int64_t ox = 0; ox < Wo; ++ox) {
                yr[ox] = std::max(yr[ox], row[ox * sw + kx]);
              }
            }
          }
        }
      }
      return;
    }
    for (int64_t nc = 0; nc < batch * C; ++nc) {
      const float* x = inputs[0] + nc * H * W;
      float* y = output + nc * Ho * Wo;
      for (int64_t oy = 0; oy < Ho; ++oy) {
        for (int64_t ox = 0; ox < Wo; ++ox) {
          float acc = is_max ? -std::numeric_limits<float>::infinity() : 0.0f;
          for (int64_t ky = 0; ky < cfg_.kernel_h(); ++ky) {
            const int64_t iy = oy * cfg_.stride_h() + ky - cfg_.pad_h();
            if (iy < 0 || iy >= H) continue;
            for (int64_t kx = 0; kx < cfg_.kernel_w(); ++kx) {
              const int64_t ix = ox * cfg_.stride_w() + kx - cfg_.pad_w();
              if (ix < 0 || ix >= W) continue;
              const float v = x[iy * W + ix];
              acc = is_max ? std::max(acc, v) : acc + v;
            }
          }
          y[oy * Wo + ox] = is_max ? acc : acc / area;
        }
      }
    }
  }
  std::string Describe() const override {
    return absl::StrFormat(
        "%s %dx%d stride %dx%d pad %dx%d",
        cfg_.kind() == mv1::Pool2dOp::MAX ? "MaxPool2d" : "AvgPool2d",
        cfg_.kernel_h(), cfg_.kernel_w(), cfg_.stride_h(), cfg_.stride_w(),
        cfg_.pad_h(), cfg_.pad_w());
  }

 private:
  mv1::Pool2dOp cfg_;
  // Fixed rank: no heap blocks per op (a loaded model's fixed memory).
  std::array<int64_t, 3> in_, out_;
};

class GlobalAvgPoolOp : public Operator {
 public:
  explicit GlobalAvgPoolOp(const Shape& in) : in_{in[0], in[1], in[2]} {}
  void Run(absl::Span<const float* const> inputs, int64_t batch, float* output,
           const RunContext&) const override {
    const int64_t hw = in_[1] * in_[2];
    for (int64_t nc = 0; nc < batch * in_[0]; ++nc) {
      const float* x = inputs[0] + nc * hw;
      float acc = 0;
      for (int64_t i = 0; i < hw; ++i) acc += x[i];
      output[nc] = acc / static_cast<float>(hw);
    }
  }
  std::string Describe() const override { return "GlobalAvgPool"; }

 private:
  std::array<int64_t, 3> in_;
};

}  // namespace

absl::StatusOr<CompiledOp> CompilePool(const mv1::Node& node, const ModelFile&,
                                       const std::vector<Shape>& inputs) {
  if (inputs.size() != 1 || inputs[0].size() != 3) {
    return absl::InvalidArgumentError("pool: expects one [C, H, W] input");
  }
  const Shape& in = inputs[0];
  if (node.op_case() == mv1::Node::kGlobalAvgPool) {
    return CompiledOp{std::make_unique<GlobalAvgPoolOp>(in), Shape{in[0]}};
  }
  mv1::Pool2dOp cfg = node.pool2d();
  if (cfg.kind() != mv1::Pool2dOp::MAX && cfg.kind() != mv1::Pool2dOp::AVG) {
    return absl::InvalidArgumentError("pool2d.kind: must be MAX or AVG");
  }
  if (cfg.kernel_h() == 0 || cfg.kernel_w() == 0 || cfg.kernel_h() > 64 ||
      cfg.kernel_w() > 64) {
    return absl::InvalidArgumentError("pool2d: kernel must be 1..64");
  }
  if (cfg.stride_h() == 0) cfg.set_stride_h(cfg.kernel_h());
  if (cfg.stride_w() == 0) cfg.set_stride_w(cfg.kernel_w());
  if (cfg.pad_h() * 2 > cfg.kernel_h() || cfg.pad_w() * 2 > cfg.kernel_w()) {
    return absl::InvalidArgumentError(
        "pool2d: padding must be at most half the kernel");
  }
  const int64_t span_h = in[1] + 2 * cfg.pad_h() - cfg.kernel_h();
  const int64_t span_w = in[2] + 2 * cfg.pad_w() - cfg.kernel_w();
  if (span_h < 0 || span_w < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "pool2d: kernel larger than the padded input ", ShapeString(in)));
  }
  const Shape out = {in[0], span_h / cfg.stride_h() + 1,
                     span_w / cfg.stride_w() + 1};
  return CompiledOp{std::make_unique<Pool2dOp>(cfg, in, out), out};
}

}  // namespace flexor
