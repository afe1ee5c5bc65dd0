// FleXOR kernels vs FP32 OpenBLAS on the same shapes and thread counts, in
// one run, plus decryption alone vs memcpy. Every FleXOR case runs with FP32
// activations (auto) and with int8 activations allowed (auto_int8), and is
// bracketed by OpenBLAS runs before and after it so that drift shows as
// their spread. Prints the load average, Google Benchmark's table and then
// a ratio table with GFLOP/s-equivalent (docs/performance.md "Kernels").
//
//   build-k/bench/kernels_bench            default set (~1.5 minutes)
//   build-k/bench/kernels_bench --full     whole grid of the issue
//   --methods   also run every kernel forced (sign_fma, lut, lut_rows,
//               int8_sign), not only auto
//   --batches=1,2,4   batch sizes instead of the default 1,8,32,128
//   --row_aligned  layers with row-aligned slices (flexor_train
//               --row_aligned_slices): every shape's segments start on rows
//   --shapes=4000x4096,4096x4096   O x K shapes instead of the default
//               (O a multiple of 20 = N_out puts the segments on row
//               boundaries: the int8 LUT then reads taps kept transposed)
// Any Google Benchmark flag works too (--benchmark_filter=..., ...);
// FLEXOR_KERNEL_ISA=avx2|scalar measures a lower ISA.
#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "benchmark/benchmark.h"
#include "engine/codec/bit_layout.h"
#include "engine/codec/xor_network.h"
#include "engine/kernels/cpu_features.h"
#include "engine/kernels/decrypt.h"
#include "engine/kernels/fused_gemm.h"
#include "engine/kernels/layer_weights.h"
#include "engine/kernels/microkernels.h"
#include "engine/kernels/transposed_taps.h"
#include "tbb/task_arena.h"

namespace flexor {
namespace {

constexpr int kNOut = 20;  // bits per weight = q * n_in / 20
constexpr int kNTap = 2;

struct Shape {
  int64_t O = 0, K = 0;
};

// ------------------------------------------------------------ test data

struct OwnedLayer {
  std::vector<std::vector<uint64_t>> stored;
  std::vector<std::vector<float>> scales;
  LayerWeights w;
};

// --row_aligned: layers with row-aligned slices (BitPlane.slices), as
// flexor_train --row_aligned_slices writes them.
bool g_row_aligned_slices = false;

std::unique_ptr<OwnedLayer> MakeLayer(Shape s, int q, int n_in, uint64_t seed) {
  auto l = std::make_unique<OwnedLayer>();
  std::mt19937_64 rng(seed);
  l->w.kind = WeightCodecKind::kBinary;
  l->w.out_features = s.O;
  l->w.in_features = s.K;
  l->stored.resize(q);
  l->scales.resize(q);
  for (int p = 0; p < q; ++p) {
    BinaryPlaneView v;
    v.net = *GenerateXorNetwork(n_in, kNOut, kNTap, seed + p);
    EncryptedBits bits = MakeEncryptedBits(
        s.O * s.K, v.net,
        g_row_aligned_slices ? RowAlignedSliceCount(s.O * s.K, kNOut, s.K) : 0);
    for (int t = 0; t < n_in; ++t) {
      uint64_t* vec = bits.words.data() + t * bits.words_per_vector;
      for (int64_t i = 0; i < bits.words_per_vector; ++i) vec[i] = rng();
      if (bits.slices % 64 != 0) {  // canonical zero padding
        vec[bits.words_per_vector - 1] &=
            (uint64_t{1} << (bits.slices % 64)) - 1;
      }
    }
    l->stored[p] = std::move(bits.words);
    l->scales[p].assign(s.O, 0.5f / (p + 1));
    v.stored = l->stored[p].data();
    v.words_per_vector = bits.words_per_vector;
    v.slices = bits.slices;
    v.scales = l->scales[p].data();
    l->w.planes.push_back(v);
  }
  // As a Dense layer does on its first int8 run: where the segments start
  // on row boundaries (O a multiple of N_out, or --row_aligned) and the
  // kernels are AVX2's, the int8 path reads taps kept transposed.
  AttachTransposedTaps(l->w, SelectedIsa());
  return l;
}

const OwnedLayer& Layer(Shape s, int q, int n_in) {
  static std::map<std::tuple<int64_t, int64_t, int, int>,
                  std::unique_ptr<OwnedLayer>>
      cache;
  auto& slot = cache[{s.O, s.K, q, n_in}];
  if (!slot) slot = MakeLayer(s, q, n_in, s.O * 7 + s.K + q * 131 + n_in);
  return *slot;
}

const std::vector<float>& RandomFloats(int64_t n) {
  static std::map<int64_t, std::vector<float>> cache;
  auto& v = cache[n];
  if (v.empty()) {
    std::mt19937 rng(static_cast<uint32_t>(n));
    std::uniform_real_distribution<float> u(-1.f, 1.f);
    v.resize(n);
    for (auto& f : v) f = u(rng);
  }
  return v;
}

// ------------------------------------------------------------ benchmarks

void BM_Flexor(benchmark::State& state, Shape s, int64_t batch, int q, int n_in,
               int threads, BinaryMethod method,
               ActivationPrecision activations) {
  const OwnedLayer& layer = Layer(s, q, n_in);
  const std::vector<float>& x = RandomFloats(batch * s.K);
  std::vector<float> y(batch * s.O);
  GemmOptions options;
  options.method = method;
  options.activations = activations;
  tbb::task_arena arena(threads);
  for (auto _ : state) {
    arena.execute([&] {
      BinaryCodedGemm(layer.w, 0, s.O, x.data(), batch, y.data(), s.O, options);
    });
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  state.counters["GFLOP/s"] = benchmark::Counter(
      2.0 * s.O * s.K * batch, benchmark::Counter::kIsIterationInvariantRate,
      benchmark::Counter::kIs1000);
  const BinaryMethod m =
      method == BinaryMethod::kAuto
          ? ChooseMethod(SelectedIsa(), batch, s.O, s.K, activations)
          : method;
  std::string label = MethodName(m);
  if (m == BinaryMethod::kInt8Sign) {
    label += std::string("(") + Int8KernelName(SelectedIsa(), batch) + ")";
  }
  state.SetLabel(label);
}

void BM_Openblas(benchmark::State& state, Shape s, int64_t batch, int threads) {
  const std::vector<float>& w = RandomFloats(s.O * s.K);
  const std::vector<float>& x = RandomFloats(batch * s.K);
  std::vector<float> y(batch * s.O);
  openblas_set_num_threads(threads);
  for (auto _ : state) {
    if (batch == 1) {
      cblas_sgemv(CblasRowMajor, CblasNoTrans, s.O, s.K, 1.f, w.data(), s.K,
                  x.data(), 1, 0.f, y.data(), 1);
    } else {
      // y[batch, O] = x[batch, K] * W[O, K]^T, the layer's layout.
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, batch, s.O, s.K, 1.f,
                  x.data(), s.K, w.data(), s.K, 0.f, y.data(), s.O);
    }
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  state.counters["GFLOP/s"] = benchmark::Counter(
      2.0 * s.O * s.K * batch, benchmark::Counter::kIsIterationInvariantRate,
      benchmark::Counter::kIs1000);
}

void BM_Decrypt(benchmark::State& state, Shape s, int n_in) {
  const OwnedLayer& layer = Layer(s, 1, n_in);
  const int64_t n = s.O * s.K;
  std::vector<uint64_t> out(WordsForBits(n));
  for (auto _ : state) {
    DecryptPlane(layer.w.planes[0], n, out.data());
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(state.iterations() * (n / 8));  // decoded bytes
}

void BM_Memcpy(benchmark::State& state, int64_t bytes) {
  std::vector<char> src(bytes, 1), dst(bytes);
  for (auto _ : state) {
    std::memcpy(dst.data(), src.data(), bytes);
    benchmark::DoNotOptimize(dst.data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(state.iterations() * bytes);
}

// One 16-row block of the int8 LUT kernel, one thread, data in L1/L2: the
// work per block today (decrypt 2 taps with a funnel shift, byte-transpose,
// look up) against the LUT reading the XOR of the 2 taps kept transposed,
// which a layout whose segments start on row boundaries would allow (the
// layout proposal in docs/performance.md). Same integers either way.
void BM_Int8LutBlock(benchmark::State& state, int64_t k, bool pretransposed) {
  const KernelTable& kt = GetKernelTable(SelectedIsa());
  const int64_t kw = WordsForBits(k), wpv = 16 * kw + 1;
  std::mt19937_64 rng(7);
  std::vector<uint64_t> tap_a(wpv), tap_b(wpv), bits(16 * kw);
  for (auto& w : tap_a) w = rng();
  for (auto& w : tap_b) w = rng();
  const uint64_t* taps[2] = {tap_a.data(), tap_b.data()};
  std::vector<int8_t> xq(kw * 64);
  for (auto& v : xq) v = static_cast<int8_t>(rng());
  std::vector<uint8_t> tables(LutI8TableBytes(kw));
  kt.lut_i8_tables(xq.data(), kw, tables.data());
  const int64_t tbytes = LutI8TransposedBytes(kw);
  std::vector<uint8_t> t16(tbytes), ta(tbytes), tb(tbytes);
  kt.transpose_bytes16(tap_a.data(), kw, 16, kw, ta.data());
  kt.transpose_bytes16(tap_b.data(), kw, 16, kw, tb.data());
  const uint8_t* xored[2] = {ta.data(), tb.data()};
  const uint8_t* one[1] = {t16.data()};
  int32_t neg[16];
  for (auto _ : state) {
    if (pretransposed) {
      kt.lut_i8(xored, 2, kw, tables.data(), neg);
    } else {
      kt.decrypt_words(taps, 2, wpv, 0, 13, 16 * kw, bits.data());
      kt.transpose_bytes16(bits.data(), kw, 16, kw, t16.data());
      kt.lut_i8(one, 1, kw, tables.data(), neg);
    }
    benchmark::DoNotOptimize(neg);
  }
  state.counters["weights/s"] = benchmark::Counter(
      16.0 * k, benchmark::Counter::kIsIterationInvariantRate);
}

// ---------------------------------------------------------- ratio table

// One row of the ratio table: the FleXOR run and its baseline, measured
// before and (baseline_after) after the FleXOR runs of the same case, so
// drift of the machine during the run shows up as their spread.
struct Pair {
  std::string flexor, baseline, baseline_after, row;
  double flops = 0;  // 2 * O * K * batch (0: decryption row)
};
std::vector<Pair>& Pairs() {
  static std::vector<Pair> pairs;
  return pairs;
}

class RatioReporter : public benchmark::ConsoleReporter {
 public:
  void ReportRuns(const std::vector<Run>& runs) override {
    for (const Run& r : runs) {
      if (r.run_type != Run::RT_Iteration || r.error_occurred) continue;
      const std::string& name = r.run_name.function_name;
      seconds_[name] = r.GetAdjustedRealTime();
      auto it = r.counters.find("bytes_per_second");
      if (it != r.counters.end()) bytes_per_s_[name] = it->second;
      labels_[name] = r.report_label;
    }
    ConsoleReporter::ReportRuns(runs);
  }
  void Finalize() override {
    ConsoleReporter::Finalize();
    std::printf(
        "\nRatios (baseline time / FleXOR time; > 1 means FleXOR is faster). "
        "Baseline = mean of the OpenBLAS runs before and after the case; "
        "spread = |before - after| / min. GFLOP/s-equivalent = 2 O K batch / "
        "time. Decrypt rows: decrypt bandwidth / memcpy bandwidth.\n");
    std::printf(
        "| case | kernel | FleXOR | GFLOP/s | OpenBLAS | GFLOP/s | spread | "
        "ratio |\n");
    std::printf("|---|---|---:|---:|---:|---:|---:|---:|\n");
    double worst_spread = 0;
    for (const Pair& p : Pairs()) {
      if (!seconds_.count(p.flexor) || !seconds_.count(p.baseline)) continue;
      if (bytes_per_s_.count(p.flexor)) {
        const double a = bytes_per_s_[p.flexor];
        double b = bytes_per_s_[p.baseline], spread = 0;
        if (bytes_per_s_.count(p.baseline_after)) {
          const double b2 = bytes_per_s_[p.baseline_after];
          spread = std::fabs(b - b2) / std::min(b, b2);
          b = 0.5 * (b + b2);
        }
        std::printf(
            "| %s | decrypt | %.1f GB/s | | %.1f GB/s (memcpy) | | "
            "%.0f%% | %.2f |\n",
            p.row.c_str(), a / 1e9, b / 1e9, 100 * spread, a / b);
        continue;
      }
      const double a = seconds_[p.flexor];
      double b = seconds_[p.baseline], spread = 0;
      if (seconds_.count(p.baseline_after)) {
        const double b2 = seconds_[p.baseline_after];
        spread = std::fabs(b - b2) / std::min(b, b2);
        b = 0.5 * (b + b2);
        worst_spread = std::max(worst_spread, spread);
      }
      // Times are in microseconds (the benchmarks' unit).
      std::printf(
          "| %s | %s | %.4g us | %.1f | %.4g us | %.1f | %.0f%% | "
          "%.2f |\n",
          p.row.c_str(), labels_[p.flexor].c_str(), a, p.flops / (a * 1e3), b,
          p.flops / (b * 1e3), 100 * spread, b / a);
    }
    std::printf(
        "\nlargest OpenBLAS before/after spread: %.0f%%%s\n",
        100 * worst_spread,
        worst_spread > 0.10 ? " (> 10%: the machine was not quiet)" : "");
    std::fflush(stdout);
  }

 private:
  std::map<std::string, double> seconds_, bytes_per_s_;
  std::map<std::string, std::string> labels_;
};

std::string LoadAverage() {
  std::ifstream f("/proc/loadavg");
  std::string a, b, c;
  f >> a >> b >> c;
  return a + " " + b + " " + c;
}

std::string CpuModel() {
  std::ifstream f("/proc/cpuinfo");
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind("model name", 0) == 0)
      return line.substr(line.find(':') + 2);
  }
  return "unknown";
}

void RegisterAll(bool full, bool methods,
                 const std::vector<int64_t>& batch_list,
                 const std::vector<Shape>& shape_list) {
  const int all_threads =
      std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  std::vector<int> thread_counts = {1};
  if (all_threads > 1) thread_counts.push_back(all_threads);
  std::vector<Shape> shapes = {{4096, 4096}, {4096, 14336}};
  std::vector<int64_t> batches = {1, 8, 32, 128};
  std::vector<int> n_ins = {16};  // 0.8 bit
  std::vector<int> qs = {1};
  if (full) {
    shapes = {{1024, 1024}, {4096, 4096}, {11008, 4096}, {4096, 14336}};
    n_ins = {16, 12, 8};  // 0.8, 0.6, 0.4 bit per plane
    qs = {1, 2};
  }
  if (!batch_list.empty()) batches = batch_list;
  if (!shape_list.empty()) shapes = shape_list;
  // (method, activations) per case: kAuto with FP32 and with int8
  // activations allowed (the label says which kernel that picked);
  // --methods adds every kernel forced.
  struct Variant {
    BinaryMethod method;
    ActivationPrecision activations;
    const char* name;
  };
  const double kMinTime = 0.3;
  for (Shape s : shapes) {
    const std::string shape = std::to_string(s.O) + "x" + std::to_string(s.K);
    for (int64_t batch : batches) {
      std::vector<Variant> variants = {
          {BinaryMethod::kAuto, ActivationPrecision::kFloat32, "auto"}};
      variants.push_back(
          {BinaryMethod::kAuto, ActivationPrecision::kInt8, "auto_int8"});
      if (methods) {
        variants.push_back({BinaryMethod::kSignFma,
                            ActivationPrecision::kFloat32, "sign_fma"});
        variants.push_back(
            {BinaryMethod::kLut, ActivationPrecision::kFloat32, "lut"});
        variants.push_back({BinaryMethod::kLutRows,
                            ActivationPrecision::kFloat32, "lut_rows"});
        variants.push_back(
            {BinaryMethod::kInt8Sign, ActivationPrecision::kInt8, "int8_sign"});
      }
      for (int t : thread_counts) {
        const std::string tail =
            "/b" + std::to_string(batch) + "/t" + std::to_string(t);
        const std::string blas = "openblas/" + shape + tail;
        const double flops = 2.0 * s.O * s.K * batch;
        benchmark::RegisterBenchmark((blas + "/before").c_str(), BM_Openblas, s,
                                     batch, t)
            ->UseRealTime()
            ->MinTime(kMinTime)
            ->Unit(benchmark::kMicrosecond);
        for (int q : qs) {
          for (int n_in : n_ins) {
            for (const Variant& v : variants) {
              char bits[32];
              std::snprintf(bits, sizeof(bits), "%.1fbit",
                            static_cast<double>(n_in) / kNOut);
              const std::string cfg =
                  std::string(bits) + "/q" + std::to_string(q);
              const std::string name =
                  "flexor/" + shape + tail + "/" + cfg + "/" + v.name;
              benchmark::RegisterBenchmark(name.c_str(), BM_Flexor, s, batch, q,
                                           n_in, t, v.method, v.activations)
                  ->UseRealTime()
                  ->MinTime(kMinTime)
                  ->Unit(benchmark::kMicrosecond);
              Pairs().push_back({name, blas + "/before", blas + "/after",
                                 shape + " b" + std::to_string(batch) + " t" +
                                     std::to_string(t) + " " + cfg + " " +
                                     v.name,
                                 flops});
            }
          }
        }
        benchmark::RegisterBenchmark((blas + "/after").c_str(), BM_Openblas, s,
                                     batch, t)
            ->UseRealTime()
            ->MinTime(kMinTime)
            ->Unit(benchmark::kMicrosecond);
      }
    }
  }
  if (GetKernelTable(SelectedIsa()).lut_i8 != nullptr) {
    for (Shape s : shapes) {
      for (bool pre : {false, true}) {
        const std::string name =
            "int8_lut_block/k" + std::to_string(s.K) +
            (pre ? "/xor2_of_transposed_taps" : "/decrypt_transpose_lut");
        benchmark::RegisterBenchmark(name.c_str(), BM_Int8LutBlock, s.K, pre)
            ->MinTime(kMinTime)
            ->Unit(benchmark::kNanosecond);
      }
    }
  }
  // Decryption alone, one thread: decoded bytes/s vs memcpy of as many
  // bytes, memcpy measured before and after the decryption cases.
  for (Shape s : shapes) {
    const std::string shape = std::to_string(s.O) + "x" + std::to_string(s.K);
    const std::string mem = "memcpy/" + shape;
    benchmark::RegisterBenchmark((mem + "/before").c_str(), BM_Memcpy,
                                 s.O * s.K / 8)
        ->MinTime(kMinTime);
    for (int n_in : n_ins) {
      char bits[32];
      std::snprintf(bits, sizeof(bits), "%.1fbit",
                    static_cast<double>(n_in) / kNOut);
      const std::string name = "decrypt/" + shape + "/" + bits;
      benchmark::RegisterBenchmark(name.c_str(), BM_Decrypt, s, n_in)
          ->MinTime(kMinTime);
      Pairs().push_back(
          {name, mem + "/before", mem + "/after", shape + " " + bits, 0});
    }
    benchmark::RegisterBenchmark((mem + "/after").c_str(), BM_Memcpy,
                                 s.O * s.K / 8)
        ->MinTime(kMinTime);
  }
}

}  // namespace
}  // namespace flexor

int main(int argc, char** argv) {
  bool full = false, methods = false;
  std::vector<int64_t> batches;
  std::vector<flexor::Shape> shapes;
  std::vector<char*> args;
  for (int i = 0; i < argc; ++i) {
    if (std::strcmp(argv[i], "--full") == 0) {
      full = true;
    } else if (std::strcmp(argv[i], "--methods") == 0) {
      methods = true;
    } else if (std::strcmp(argv[i], "--row_aligned") == 0) {
      flexor::g_row_aligned_slices = true;
    } else if (std::strncmp(argv[i], "--batches=", 10) == 0) {
      for (const char* p = argv[i] + 10; *p != 0;) {
        char* end;
        batches.push_back(std::strtoll(p, &end, 10));
        p = *end == ',' ? end + 1 : end;
        if (end == p && *p != 0) break;
      }
    } else if (std::strncmp(argv[i], "--shapes=", 9) == 0) {
      // O x K pairs, e.g. --shapes=4000x4096,4096x4096.
      for (absl::string_view spec : absl::StrSplit(argv[i] + 9, ',')) {
        std::vector<absl::string_view> ok = absl::StrSplit(spec, 'x');
        flexor::Shape s;
        if (ok.size() != 2 || !absl::SimpleAtoi(ok[0], &s.O) ||
            !absl::SimpleAtoi(ok[1], &s.K) || s.O <= 0 || s.K <= 0) {
          std::fprintf(stderr, "--shapes: expected OxK[,OxK...], got %s\n",
                       argv[i] + 9);
          return 2;
        }
        shapes.push_back(s);
      }
    } else {
      args.push_back(argv[i]);
    }
  }
  int n = static_cast<int>(args.size());
  benchmark::Initialize(&n, args.data());
  benchmark::AddCustomContext("cpu_model", flexor::CpuModel());
  benchmark::AddCustomContext("kernel_isa",
                              flexor::IsaName(flexor::SelectedIsa()));
  benchmark::AddCustomContext("load_average_at_start", flexor::LoadAverage());
  benchmark::AddCustomContext(
      "slices", flexor::g_row_aligned_slices ? "row-aligned" : "canonical");
  std::printf("load average at start: %s\n", flexor::LoadAverage().c_str());
  flexor::RegisterAll(full, methods, batches, shapes);
  flexor::RatioReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  benchmark::Shutdown();
  return 0;
}
