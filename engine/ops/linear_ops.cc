// Dense and Conv2d: the layers whose weights are compressed. Both reduce to
// Matmul (convolution through im2col).
#include <algorithm>
#include <array>
#include <atomic>
#include <memory>
#include <vector>

#include "absl/base/call_once.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "engine/kernels/conv_gemm.h"
#include "engine/kernels/int8_conv.h"
#include "engine/kernels/microkernels.h"
#include "engine/kernels/ternary_gxnor.h"
#include "engine/kernels/transposed_taps.h"
#include "engine/ops/operator.h"
#include "engine/ops/weight_loader.h"
#include "tbb/blocked_range.h"
#include "tbb/parallel_for.h"
#include "tbb/task_arena.h"

namespace flexor {

namespace mv1 = model::v1;

namespace {

absl::Status ExpectInputs(const std::vector<Shape>& inputs, size_t n) {
  if (inputs.size() != n) {
    return absl::InvalidArgumentError(
        absl::StrCat("inputs: ", inputs.size(), " inputs given, expected ", n));
  }
  return absl::OkStatus();
}

// The epilogue of a Dense/Conv2d layer in two forms: `post` (applied after
// the kernels added the bias: reference path and Dense) and the combined
// per-channel scale/shift with the bias folded in (conv kernels).
class LayerEpilogue {
 public:
  LayerEpilogue(const LayerWeights& w) : w_(w) { Rebuild(); }
  bool Fuse(absl::Span<const float> scale, absl::Span<const float> shift,
            bool relu) {
    if (!post_.Compose(scale, shift, relu, w_.out_features)) return false;
    Rebuild();
    return true;
  }
  // A following residual Add (Epilogue::residual).
  bool FuseResidual() { return post_.ComposeResidual(); }
  const Epilogue& post() const { return post_; }
  ChannelEpilogue combined() const {
    return {post_.scale.empty() ? nullptr : post_.scale.data(),
            combined_shift_.empty() ? w_.bias : combined_shift_.data(),
            post_.relu};
  }
  std::string Describe() const {
    std::string out;
    if (!post_.scale.empty() || !post_.shift.empty()) {
      absl::StrAppend(&out, ", + per-channel affine");
    }
    if (post_.residual) absl::StrAppend(&out, ", + residual");
    if (post_.relu) absl::StrAppend(&out, ", + ReLU");
    return out;
  }

 private:
  // Without a folded affine step the combined shift is the bias itself, read
  // from the model file: no copy (a per-output float per layer is most of a
  // loaded version's fixed memory, e.g. 24 KB of a 1.2 MB MLP).
  void Rebuild() {
    std::vector<float>().swap(combined_shift_);
    if (post_.scale.empty() && post_.shift.empty()) return;
    const int64_t O = w_.out_features;
    combined_shift_.resize(O);
    for (int64_t o = 0; o < O; ++o) {
      const float s = post_.scale.empty() ? 1.0f : post_.scale[o];
      const float t = post_.shift.empty() ? 0.0f : post_.shift[o];
      combined_shift_[o] = (w_.bias ? w_.bias[o] : 0.0f) * s + t;
    }
  }
  const LayerWeights& w_;
  Epilogue post_;
  std::vector<float> combined_shift_;  // empty: w_.bias
};

// From one full pixel tile (PixelLanes: 32 with AVX-512, 16 with AVX2) on,
// a Dense layer runs as a 1x1 convolution over the batch: activations
// transposed into pixel tiles, the layer's bits decrypted once for the whole
// batch, the tiled FMA / look-up-table kernels of conv_gemm.h. Below it,
// Matmul's row-tiled GEMV kernels win (a half-empty tile wastes half the
// work; measured on the MLP, docs/performance.md).
// ... and while the decrypted bits of the whole layer stay small (they are
// cache resident for the batch; larger layers keep Matmul's tiles).
constexpr int64_t kDensePixelMaxWeights = int64_t{1} << 23;
// A batch-1 convolution spreads its pixel tiles over the threads only above
// this much work: waking a sleeping TBB worker costs tens of microseconds
// here, more than splitting a 3 M multiply-add layer saves (LeNet's conv2 at
// 2 threads: 86 us per sample with a 1 M threshold vs 53 us on 1 thread).
constexpr int64_t kMinParallelMacs = int64_t{1} << 24;

// Scratch regions start on 64-byte boundaries.
int64_t Aligned(int64_t floats) { return (floats + 15) / 16 * 16; }

// This thread's scratch slot inside a parallel_for of the run's arena (task
// bodies that use it never wait on other TBB work, so two tasks never share
// a slot at once).
int Slot(const RunContext& ctx) {
  const int i = tbb::this_task_arena::current_thread_index();
  return i >= 0 && i < ctx.threads ? i : 0;
}

class DenseOp : public Operator {
 public:
  DenseOp(LayerWeights w, bool gxnor)
      : w_(std::move(w)),
        gxnor_(gxnor),
        epilogue_(w_),
        isa_(SelectedIsa()),
        lanes_(PixelLanes(isa_)) {}
  void Run(absl::Span<const float* const> inputs, int64_t batch, float* output,
           const RunContext& ctx) const override {
    if (UsePixelPath(batch, ctx)) {
      RunPixels(inputs[0], batch, output, ctx);
      return;
    }
    if (!gxnor_) {
      Matmul(WeightsFor(ctx.matmul), inputs[0], batch, output, ctx.path,
             ctx.matmul);
    } else {
      // Ternary activations x ternary weights: pack the activations into
      // (nonzero, sign) bit rows and count with the gated-XNOR formula.
      const int64_t K = w_.in_features, words = w_.ternary.words_per_row;
      uint64_t* nonzero = reinterpret_cast<uint64_t*>(ctx.scratch);
      uint64_t* sign = nonzero + batch * words;
      std::fill(nonzero, nonzero + 2 * batch * words, uint64_t{0});
      for (int64_t b = 0; b < batch; ++b) {
        const float* x = inputs[0] + b * K;
        for (int64_t k = 0; k < K; ++k) {
          const uint64_t bit = uint64_t{1} << (k & 63);
          if (x[k] != 0.0f) nonzero[b * words + (k >> 6)] |= bit;
          if (x[k] < 0.0f) sign[b * words + (k >> 6)] |= bit;
        }
      }
      TernaryGxnor(w_, nonzero, sign, batch, output, ctx.path);
    }
    epilogue_.post().Apply(output, batch, w_.out_features, 1);
  }
  int64_t ScratchFloats(int64_t batch, int threads) const override {
    if (batch >= lanes_ && PixelPathFits()) {
      return PixelScratchFloats(batch, threads);
    }
    return gxnor_ ? 4 * batch * w_.ternary.words_per_row : 0;
  }
  bool FuseEpilogue(absl::Span<const float> scale,
                    absl::Span<const float> shift, bool relu) override {
    return epilogue_.Fuse(scale, shift, relu);
  }
  const LayerWeights* weights() const override { return &w_; }
  int64_t MacsPerSample() const override {
    return w_.out_features * w_.in_features;
  }
  std::string Describe() const override {
    return absl::StrFormat(
        "Dense %d -> %d, %s%s%s%s", w_.in_features, w_.out_features,
        DescribeWeights(w_), w_.bias ? ", bias" : "",
        gxnor_ ? ", gated-XNOR on ternary input" : "", epilogue_.Describe());
  }
  int64_t DerivedWeightBytes() const override {
    return lut_bytes_.load(std::memory_order_acquire);
  }

 private:
  bool PixelPathFits() const {
    // Fewer than 16 outputs: too few rows to amortise the tile transpose.
    return !gxnor_ && w_.out_features >= 16 &&
           w_.out_features * w_.in_features <= kDensePixelMaxWeights;
  }
  // Also with int8 activations: over a batch of at least one tile the exact
  // pixel path beats the int8 sign kernel on these (small) layers (MLP
  // batch 32: 5.9 against 7.0 us per sample).
  bool UsePixelPath(int64_t batch, const RunContext& ctx) const {
    return ctx.path == KernelPath::kAuto && batch >= lanes_ && PixelPathFits();
  }
  int64_t PixelScratchFloats(int64_t batch, int threads) const {
    const int64_t tiles = (batch + lanes_ - 1) / lanes_;
    return Aligned(PreparedWeightsFloats(w_)) +
           Aligned(tiles * ReadRows(w_) * lanes_) +
           std::max(threads, 1) * Aligned(PixelGemmScratchFloats(w_, isa_));
  }

  // Tiles of batch columns x blocks of output rows, spread over the arena.
  void RunPixels(const float* x, int64_t batch, float* y,
                 const RunContext& ctx) const {
    const int64_t O = w_.out_features, K = w_.in_features;
    const int64_t rows = ReadRows(w_), tiles = (batch + lanes_ - 1) / lanes_;
    float* prepared_scratch = ctx.scratch;
    float* cols = prepared_scratch + Aligned(PreparedWeightsFloats(w_));
    float* work = cols + Aligned(tiles * rows * lanes_);
    const int64_t work_floats = Aligned(PixelGemmScratchFloats(w_, isa_));
    const PreparedWeights prepared =
        PrepareWeights(w_, prepared_scratch, isa_, ctx.matmul.decrypt_nanos);
    GetPixelKernelTable(isa_).transpose_to_tiles(x, batch, K, rows, lanes_,
                                                 cols);
    PixelSource source;
    source.base = cols;
    source.row_offsets = nullptr;  // consecutive rows
    source.tile_step = rows * lanes_;
    PixelOutput out;
    out.pixels = batch;
    out.pixel_major = true;
    const ChannelEpilogue epi = epilogue_.combined();
    // Row blocks of 64 when there are fewer batch tiles than threads.
    const int64_t block =
        ctx.threads > 1 && tiles < 2 * ctx.threads && O > 64 ? 64 : O;
    const int64_t blocks = (O + block - 1) / block;
    if (ctx.threads == 1 || tiles * blocks == 1) {
      PixelGemm(w_, prepared, source, out, O, 0, tiles, epi, y, work, isa_);
      return;
    }
    tbb::parallel_for(tbb::blocked_range<int64_t>(0, tiles * blocks, 1),
                      [&](const tbb::blocked_range<int64_t>& r) {
                        const int slot = Slot(ctx);
                        for (int64_t i = r.begin(); i < r.end(); ++i) {
                          const int64_t t = i / blocks,
                                        o0 = (i % blocks) * block;
                          PixelGemm(w_, prepared, source, out, O, t, t + 1, epi,
                                    y, work + slot * work_floats, isa_, o0,
                                    std::min(O, o0 + block));
                        }
                      });
  }

  // With int8 activations on a CPU with the int8 LUT kernel (AVX2), a copy
  // of the weights with the taps kept transposed (transposed_taps.h): the
  // kernel then decrypts inside its look-up. Built on the first int8 run (a
  // warm-up), so FP32-only deployments keep one copy of the bits; the
  // transposed taps cost as many bytes again as the stored bits.
  const LayerWeights& WeightsFor(const MatmulOptions& options) const {
    if (options.activations == ActivationPrecision::kFloat32) return w_;
    absl::call_once(lut_once_, [this] {
      LayerWeights copy = w_;
      if (AttachTransposedTaps(copy, isa_)) {
        int64_t bytes = 0;
        for (const BinaryPlaneView& p : copy.planes) {
          bytes += static_cast<int64_t>(p.transposed->bytes.size());
        }
        lut_weights_ = std::make_unique<LayerWeights>(std::move(copy));
        lut_bytes_.store(bytes, std::memory_order_release);
      }
    });
    return lut_weights_ ? *lut_weights_ : w_;
  }

  LayerWeights w_;
  bool gxnor_;
  LayerEpilogue epilogue_;
  KernelIsa isa_;
  int64_t lanes_;
  mutable absl::once_flag lut_once_;
  mutable std::unique_ptr<const LayerWeights> lut_weights_;
  mutable std::atomic<int64_t> lut_bytes_{0};  // its transposed taps
};

class Conv2dOp : public Operator {
 public:
  Conv2dOp(const mv1::Conv2dOp& cfg, LayerWeights w, const Shape& in,
           const Shape& out)
      : w_(std::move(w)),
        in_{in[0], in[1], in[2]},
        out_{out[0], out[1], out[2]},
        groups_(cfg.groups()),
        epilogue_(w_),
        isa_(SelectedIsa()),
        lanes_(PixelLanes(isa_)) {
    Plan(cfg);
  }

  void Run(absl::Span<const float* const> inputs, int64_t batch, float* output,
           const RunContext& ctx) const override {
    // A fused residual Add's other operand, laid out as the output.
    const float* residual = epilogue_.post().residual ? inputs[1] : nullptr;
    if (ctx.path == KernelPath::kReference || groups_ != 1) {
      RunIm2colMatmul(inputs[0], batch, output, ctx.path);
      epilogue_.post().Apply(output, batch, out_[0], out_[1] * out_[2],
                             residual);
      return;
    }
    const ActivationPrecision precision = ctx.matmul.activations;
    if (int8_ && (precision == ActivationPrecision::kInt8 ||
                  (precision == ActivationPrecision::kInt16 && two_digits_))) {
      RunInt8(inputs[0], residual, batch, output, ctx,
              precision == ActivationPrecision::kInt16);
      return;
    }
    const int64_t sample_in = in_[0] * in_[1] * in_[2];
    const int64_t P = out_[1] * out_[2], sample_out = out_[0] * P;
    float* slots = SlotsBase(ctx);
    const PreparedWeights prepared =
        PrepareWeights(w_, ctx.scratch, isa_, ctx.matmul.decrypt_nanos);
    const ChannelEpilogue epi = epilogue_.combined();
    const int64_t tiles = output_.tiles(lanes_);
    if (batch == 1) {
      // One sample: its tiles spread over the threads when the layer is big
      // enough to pay for a parallel_for.
      const PixelSource source = Prepare(inputs[0], slots);
      if (BatchOneThreads(ctx.threads) == 1) {
        PixelGemm(w_, prepared, source, output_, P, 0, tiles, epi, output,
                  BatchOneWork(slots, 0), isa_, 0, -1, residual);
        return;
      }
      tbb::parallel_for(tbb::blocked_range<int64_t>(0, tiles, 1),
                        [&](const tbb::blocked_range<int64_t>& r) {
                          PixelGemm(w_, prepared, source, output_, P, r.begin(),
                                    r.end(), epi, output,
                                    BatchOneWork(slots, Slot(ctx)), isa_, 0, -1,
                                    residual);
                        });
      return;
    }
    // Several samples: one task per sample, each with its thread's slot.
    tbb::parallel_for(
        tbb::blocked_range<int64_t>(0, batch, 1),
        [&](const tbb::blocked_range<int64_t>& r) {
          float* slot = slots + Slot(ctx) * SlotFloats();
          for (int64_t n = r.begin(); n < r.end(); ++n) {
            const PixelSource source = Prepare(inputs[0] + n * sample_in, slot);
            PixelGemm(w_, prepared, source, output_, P, 0, tiles, epi,
                      output + n * sample_out, SlotWork(slot), isa_, 0, -1,
                      residual ? residual + n * sample_out : nullptr);
          }
        });
  }

  int64_t ScratchFloats(int64_t batch, int threads) const override {
    if (groups_ != 1) return 0;  // grouped: reference-style path
    const int64_t slots =
        batch == 1 ? InputFloats() + BatchOneThreads(threads) * WorkFloats()
                   : std::max(threads, 1) * SlotFloats();
    return Aligned(PreparedWeightsFloats(w_)) + Aligned(int8_weights_floats_) +
           slots;
  }
  bool FuseEpilogue(absl::Span<const float> scale,
                    absl::Span<const float> shift, bool relu) override {
    return epilogue_.Fuse(scale, shift, relu);
  }
  bool FuseResidualAdd() override { return epilogue_.FuseResidual(); }
  const LayerWeights* weights() const override { return &w_; }
  int64_t MacsPerSample() const override {
    return w_.out_features * w_.in_features * out_[1] * out_[2];
  }
  std::string Describe() const override {
    return absl::StrFormat(
        "Conv2d %d -> %d, %dx%d stride %dx%d pad %dx%d groups %d, %s%s%s%s",
        in_[0], out_[0], plan_.kernel_h, plan_.kernel_w, plan_.stride_h,
        plan_.stride_w, plan_.pad_h, plan_.pad_w, groups_, DescribeWeights(w_),
        w_.bias ? ", bias" : "", epilogue_.Describe(),
        implicit_ ? ", implicit GEMM" : "");
  }

 private:
  // A slot: the GEMM's input (FP32: padded input or im2col columns,
  // input_floats_; int8: the quantised input, int8_input_floats_), then a
  // work area (tables and accumulators). Several samples: one slot per
  // thread. One sample: one input that the threads share, then a work area
  // per thread that takes part (on LeNet's conv2 the im2col columns are
  // 205 KB, one copy instead of one per thread).
  int64_t SlotFloats() const { return InputFloats() + WorkFloats(); }
  float* SlotWork(float* slot) const { return slot + InputFloats(); }
  int64_t InputFloats() const {
    return int8_ ? std::max(input_floats_, int8_input_floats_) : input_floats_;
  }
  int64_t WorkFloats() const {
    const int64_t fp32 = Aligned(PixelGemmScratchFloats(w_, isa_));
    if (!int8_) return fp32;
    return std::max(fp32,
                    Aligned(Int8PixelGemmScratchFloats(w_.out_features, isa_)));
  }
  // Threads that share one sample's tiles: all of them only when the layer
  // is big enough to pay for a parallel_for.
  int BatchOneThreads(int threads) const {
    if (threads <= 1 || output_.tiles(lanes_) == 1 ||
        MacsPerSample() < kMinParallelMacs) {
      return 1;
    }
    return threads;
  }
  float* BatchOneWork(float* slots, int thread) const {
    return SlotWork(slots) + thread * WorkFloats();
  }
  // After the decrypted weights and their int8 expansion.
  float* SlotsBase(const RunContext& ctx) const {
    return ctx.scratch + Aligned(PreparedWeightsFloats(w_)) +
           Aligned(int8_weights_floats_);
  }

  // Int8 activations: each sample quantised into the C4 layout (int8_conv.h),
  // then the int8 pixel GEMM; a sample holding Inf/NaN runs the FP32 path.
  // `two_digits` (kInt16): a second C4 input of low digits right after the
  // first, and a second integer pass over it.
  void RunInt8(const float* input, const float* residual, int64_t batch,
               float* output, const RunContext& ctx, bool two_digits) const {
    const int64_t sample_in = in_[0] * in_[1] * in_[2];
    const int64_t P = out_[1] * out_[2], sample_out = out_[0] * P;
    const PreparedWeights prepared = PrepareWeights(
        w_, ctx.scratch, isa_, ctx.matmul.decrypt_nanos, /*dense_copy=*/false);
    const Int8Weights weights = PrepareInt8Weights(
        w_, prepared, in_[0], plan_.kernel_h * plan_.kernel_w,
        ctx.scratch + Aligned(PreparedWeightsFloats(w_)), isa_,
        ctx.matmul.decrypt_nanos);
    const ChannelEpilogue epi = epilogue_.combined();
    const int64_t tiles = output_.tiles(lanes_);
    float* slots = SlotsBase(ctx);
    // Explicit GEMM: the same im2col plan, with channel groups for rows.
    Im2colPlan int8_plan = plan_;
    int8_plan.k_rows = int8_groups_;
    // Quantises sample x into `slot`; on Inf/NaN runs it in FP32 instead.
    auto prepare = [&](const float* x, const float* res, float* y, float* slot,
                       Int8Source* src, Int8Activations* q) {
      uint32_t* padded = reinterpret_cast<uint32_t*>(slot);
      uint32_t* low = two_digits ? padded + int8_digit_words_ : nullptr;
      if (!QuantizeToC4(plan_, x, padded, int8_tail_words_, q, isa_, low)) {
        const PixelSource source = Prepare(x, slot);
        PixelGemm(w_, prepared, source, output_, P, 0, tiles, epi, y,
                  SlotWork(slot), isa_, 0, -1, res);
        return false;
      }
      src->row_offsets = int8_offsets_.empty() ? nullptr : int8_offsets_.data();
      if (implicit_) {
        src->base = padded;
        src->low_base = low;
        src->tile_step = lanes_;
      } else {
        const PixelKernelTable& pt = GetPixelKernelTable(isa_);
        uint32_t* cols = padded + int8_padded_words_;
        pt.int8_im2col(int8_plan, padded, cols);
        src->base = cols;
        if (low != nullptr) {
          uint32_t* low_cols = low + int8_padded_words_;
          pt.int8_im2col(int8_plan, low, low_cols);
          src->low_base = low_cols;
        }
        src->tile_step = int8_plan.k_rows * lanes_;
      }
      return true;
    };
    if (batch == 1) {
      Int8Source src;
      Int8Activations q;
      if (!prepare(input, residual, output, slots, &src, &q)) return;
      if (BatchOneThreads(ctx.threads) == 1) {
        Int8PixelGemm(weights, w_.out_features, q, src, output_, P, 0, tiles,
                      epi, output, BatchOneWork(slots, 0), isa_, residual);
        return;
      }
      tbb::parallel_for(tbb::blocked_range<int64_t>(0, tiles, 1),
                        [&](const tbb::blocked_range<int64_t>& r) {
                          Int8PixelGemm(weights, w_.out_features, q, src,
                                        output_, P, r.begin(), r.end(), epi,
                                        output, BatchOneWork(slots, Slot(ctx)),
                                        isa_, residual);
                        });
      return;
    }
    tbb::parallel_for(
        tbb::blocked_range<int64_t>(0, batch, 1),
        [&](const tbb::blocked_range<int64_t>& r) {
          float* slot = slots + Slot(ctx) * SlotFloats();
          for (int64_t n = r.begin(); n < r.end(); ++n) {
            Int8Source src;
            Int8Activations q;
            float* y = output + n * sample_out;
            const float* res = residual ? residual + n * sample_out : nullptr;
            if (!prepare(input + n * sample_in, res, y, slot, &src, &q)) {
              continue;
            }
            Int8PixelGemm(weights, w_.out_features, q, src, output_, P, 0,
                          tiles, epi, y, SlotWork(slot), isa_, res);
          }
        });
  }

  // The int8 layout of the same plan: the C4 input, its row offsets (implicit
  // GEMM) or its im2col tiles (explicit).
  void PlanInt8() {
    int8_ = groups_ == 1 && Int8ConvSupported(w_);
    if (!int8_) return;
    const int64_t kh = plan_.kernel_h, kw = plan_.kernel_w;
    const int64_t hp = in_[1] + 2 * plan_.pad_h, wp = in_[2] + 2 * plan_.pad_w;
    const int64_t c4n = (in_[0] + 3) / 4, groups = Int8Groups(in_[0], kh * kw);
    const int64_t tiles = output_.tiles(lanes_);
    int8_weights_floats_ = Int8WeightsFloats(w_, in_[0], kh * kw);
    int8_padded_words_ = c4n * hp * wp;
    int64_t words = int8_padded_words_;
    if (implicit_) {
      int8_offsets_.resize(groups);
      for (int64_t g = 0; g < groups; ++g) {
        const int64_t c4 = g / (kh * kw), ky = (g / kw) % kh, kx = g % kw;
        int8_offsets_[g] = c4 * hp * wp + ky * wp + kx;
      }
      // The last tile reads `lanes` words from its last row's offset.
      int8_tail_words_ = std::max<int64_t>(
          0, int8_offsets_.back() + tiles * lanes_ - int8_padded_words_);
      words += int8_tail_words_;
    } else {
      int8_groups_ = groups;
      words += tiles * groups * lanes_;
    }
    // Room for two digits (kInt16) whichever precision runs.
    int8_digit_words_ = Aligned(words);
    int8_input_floats_ = 2 * int8_digit_words_;
    two_digits_ = Int8TwoDigitsFit(4 * groups);
  }

  // Chooses implicit GEMM (stride 1, at most a quarter of the wide pixels
  // dropped) or explicit im2col, and precomputes the row offsets and the
  // output runs; Run only reads them.
  void Plan(const mv1::Conv2dOp& cfg) {
    const int64_t C = in_[0], H = in_[1], W = in_[2];
    const int64_t Ho = out_[1], Wo = out_[2];
    const int64_t kh = cfg.kernel_h(), kw = cfg.kernel_w();
    const int64_t hp = H + 2 * cfg.pad_h(), wp = W + 2 * cfg.pad_w();
    const int64_t K = w_.in_features, read = ReadRows(w_);
    plan_.channels = C;
    plan_.height = H;
    plan_.width = W;
    plan_.kernel_h = kh;
    plan_.kernel_w = kw;
    plan_.stride_h = cfg.stride_h();
    plan_.stride_w = cfg.stride_w();
    plan_.pad_h = cfg.pad_h();
    plan_.pad_w = cfg.pad_w();
    plan_.k = K;
    plan_.lanes = lanes_;
    implicit_ = groups_ == 1 && cfg.stride_h() == 1 && cfg.stride_w() == 1 &&
                4 * (wp - Wo) <= wp;
    if (implicit_) {
      row_offsets_.resize(read);
      output_ = WideOutputRuns(Ho, Wo, wp, lanes_);
      const int64_t padded = C * hp * wp;
      for (int64_t k = 0; k < K; ++k) {
        const int64_t c = k / (kh * kw), ky = (k / kw) % kh, kx = k % kw;
        row_offsets_[k] = c * hp * wp + ky * wp + kx;
      }
      // Tiles read up to lanes floats past a row's last wide pixel: zeros
      // after the padded input, then (bit-coded weights) a zero region that
      // the padding rows k >= K read for every tile.
      const int64_t tiles = output_.tiles(lanes_);
      pad_slack_ =
          std::max<int64_t>(0, row_offsets_[K - 1] + tiles * lanes_ - padded);
      for (int64_t k = K; k < read; ++k) row_offsets_[k] = padded + pad_slack_;
      input_floats_ =
          Aligned(padded + pad_slack_ + (read > K ? tiles * lanes_ : 0));
      PlanInt8();
      return;
    }
    output_ = DenseOutputRuns(Ho * Wo, lanes_);
    pieces_ = PlanIm2colPieces(Ho, Wo, lanes_);
    plan_.k_rows = ColsRows(w_);
    plan_.tiles = output_.tiles(lanes_);
    plan_.pieces = pieces_.data();
    plan_.num_pieces = static_cast<int64_t>(pieces_.size());
    cols_floats_ =
        Aligned(plan_.tiles * plan_.k_rows * lanes_ + kPixelColsSlack);
    input_floats_ = cols_floats_ + Aligned(Im2colWorkFloats(plan_));
    PlanInt8();
  }

  // Writes what the GEMM reads for one sample into `slot` (the padded input,
  // or the im2col columns) and says where it is.
  PixelSource Prepare(const float* x, float* slot) const {
    const PixelKernelTable& pt = GetPixelKernelTable(isa_);
    PixelSource source;
    source.base = slot;
    source.row_offsets = row_offsets_.empty() ? nullptr : row_offsets_.data();
    if (implicit_) {
      pt.pad_input(plan_, x, slot);
      const int64_t padded = row_offsets_.empty()
                                 ? 0
                                 : in_[0] * (in_[1] + 2 * plan_.pad_h) *
                                       (in_[2] + 2 * plan_.pad_w);
      std::fill(slot + padded, slot + input_floats_, 0.0f);
      source.tile_step = lanes_;
      return source;
    }
    pt.im2col(plan_, x, slot, slot + cols_floats_);
    source.tile_step = plan_.k_rows * lanes_;
    return source;
  }

  // The plain path (reference kernels, grouped convolutions): im2col to
  // [P, K] one sample at a time, Matmul, transpose into [O, P].
  void RunIm2colMatmul(const float* input, int64_t batch, float* output,
                       KernelPath path) const {
    const int64_t C = in_[0], H = in_[1], W = in_[2];
    const int64_t O = out_[0], Ho = out_[1], Wo = out_[2];
    const int64_t groups = groups_;
    const int64_t cg = C / groups, og = O / groups;
    const int64_t kh = plan_.kernel_h, kw = plan_.kernel_w;
    const int64_t K = cg * kh * kw, P = Ho * Wo;
    std::vector<float> cols(static_cast<size_t>(P * K));
    std::vector<float> result(static_cast<size_t>(P * O));
    for (int64_t n = 0; n < batch; ++n) {
      const float* x = input + n * C * H * W;
      float* y = output + n * O * P;
      for (int64_t g = 0; g < groups; ++g) {
        float* row = cols.data();
        for (int64_t oy = 0; oy < Ho; ++oy) {
          for (int64_t ox = 0; ox < Wo; ++ox) {
            for (int64_t c = 0; c < cg; ++c) {
              const float* plane = x + (g * cg + c) * H * W;
              for (int64_t ky = 0; ky < kh; ++ky) {
                const int64_t iy = oy * plan_.stride_h + ky - plan_.pad_h;
                for (int64_t kx = 0; kx < kw; ++kx) {
                  const int64_t ix = ox * plan_.stride_w + kx - plan_.pad_w;
                  const bool inside = iy >= 0 && iy < H && ix >= 0 && ix < W;
                  *row++ = inside ? plane[iy * W + ix] : 0.0f;
                }
              }
            }
          }
        }
        // With groups > 1 every output channel is computed from this group's
        // columns and only the group's own channels are kept; grouped
        // convolutions are rare in the served models, so the weights stay in
        // one shared layout rather than being split per group.
        Matmul(w_, cols.data(), P, result.data(), path);
        for (int64_t o = g * og; o < (g + 1) * og; ++o) {
          for (int64_t p = 0; p < P; ++p) y[o * P + p] = result[p * O + o];
        }
      }
    }
  }

  LayerWeights w_;
  // [C, H, W] of the input and of the output. The rest of the node's
  // geometry (kernel, stride, padding) lives in plan_: a compiled layer
  // keeps no protobuf, ~0.3 KB less per layer for the life of the model.
  std::array<int64_t, 3> in_, out_;
  int64_t groups_;
  LayerEpilogue epilogue_;
  KernelIsa isa_;
  int64_t lanes_;
  bool implicit_ = false;
  Im2colPlan plan_;
  std::vector<Im2colPiece> pieces_;  // explicit im2col
  std::vector<int64_t> row_offsets_;
  PixelOutput output_;
  int64_t cols_floats_ = 0;   // explicit: the columns
  int64_t pad_slack_ = 0;     // implicit: zeros after the padded input
  int64_t input_floats_ = 0;  // the GEMM's input in a slot
  // Int8 activations (int8_conv.h), when the weights allow them.
  bool int8_ = false;
  int64_t int8_groups_ = 0;            // explicit: im2col rows
  std::vector<int64_t> int8_offsets_;  // implicit: per channel group, words
  int64_t int8_weights_floats_ = 0;
  int64_t int8_padded_words_ = 0;  // the C4 input
  int64_t int8_tail_words_ = 0;    // implicit: zero-point words after it
  int64_t int8_digit_words_ = 0;   // one digit's C4 input (+ tiles)
  int64_t int8_input_floats_ = 0;  // the int8 GEMM's input in a slot
  bool two_digits_ = false;        // kInt16 fits in int32 (else FP32)
};

}  // namespace

absl::StatusOr<CompiledOp> CompileDense(const mv1::Node& node,
                                        const ModelFile& file,
                                        const std::vector<Shape>& inputs,
                                        bool input_is_ternary) {
  if (absl::Status s = ExpectInputs(inputs, 1); !s.ok()) return s;
  const mv1::DenseOp& cfg = node.dense();
  const int64_t K = cfg.in_features(), O = cfg.out_features();
  if (K <= 0 || O <= 0 || O > kMaxActivationElements) {
    return absl::InvalidArgumentError(
        absl::StrCat("dense: in_features and out_features must be in [1, ",
                     kMaxActivationElements, "]"));
  }
  if (inputs[0] != Shape{K}) {
    return absl::InvalidArgumentError(
        absl::StrCat("dense.in_features = ", K, " but the input has shape ",
                     ShapeString(inputs[0]), " (Flatten first?)"));
  }
  absl::StatusOr<LayerWeights> w =
      LoadLayerWeights(cfg.weights(), cfg.bias(), O, K, file);
  if (!w.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("dense.", w.status().message()));
  }
  const bool gxnor = input_is_ternary && w->kind == WeightCodecKind::kTernary;
  return CompiledOp{std::make_unique<DenseOp>(*std::move(w), gxnor), Shape{O}};
}

absl::StatusOr<CompiledOp> CompileConv2d(const mv1::Node& node,
                                         const ModelFile& file,
                                         const std::vector<Shape>& inputs) {
  if (absl::Status s = ExpectInputs(inputs, 1); !s.ok()) return s;
  mv1::Conv2dOp cfg = node.conv2d();
  if (cfg.groups() == 0) cfg.set_groups(1);
  if (cfg.stride_h() == 0) cfg.set_stride_h(1);
  if (cfg.stride_w() == 0) cfg.set_stride_w(1);
  const Shape& in = inputs[0];
  if (in.size() != 3) {
    return absl::InvalidArgumentError(
        absl::StrCat("conv2d: input must be [C, H, W], got ", ShapeString(in)));
  }
  const int64_t C = cfg.in_channels(), O = cfg.out_channels();
  if (C != in[0]) {
    return absl::InvalidArgumentError(absl::StrCat(
        "conv2d.in_channels = ", C, " but the input has ", in[0], " channels"));
  }
  if (O <= 0 || O > kMaxActivationElements || C % cfg.groups() != 0 ||
      O % cfg.groups() != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "conv2d: groups = ", cfg.groups(), " must divide in_channels = ", C,
        " and out_channels = ", O));
  }
  if (cfg.kernel_h() == 0 || cfg.kernel_w() == 0 || cfg.kernel_h() > 64 ||
      cfg.kernel_w() > 64 || cfg.pad_h() > 64 || cfg.pad_w() > 64) {
    return absl::InvalidArgumentError(
        "conv2d: kernel must be 1..64 and padding 0..64");
  }
  const int64_t span_h = in[1] + 2 * cfg.pad_h() - cfg.kernel_h();
  const int64_t span_w = in[2] + 2 * cfg.pad_w() - cfg.kernel_w();
  if (span_h < 0 || span_w < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("conv2d: kernel ", cfg.kernel_h(), "x", cfg.kernel_w(),
                     " larger than the padded input ", ShapeString(in)));
  }
  const Shape out = {O, span_h / cfg.stride_h() + 1,
                     span_w / cfg.stride_w() + 1};
  const int64_t K = C / cfg.groups() * cfg.kernel_h() * cfg.kernel_w();
  absl::StatusOr<LayerWeights> w =
      LoadLayerWeights(cfg.weights(), cfg.bias(), O, K, file);
  if (!w.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("conv2d.", w.status().message()));
  }
  return CompiledOp{std::make_unique<Conv2dOp>(cfg, *std::move(w), in, out),
                    out};
}

}  // namespace flexor
