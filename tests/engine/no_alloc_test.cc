// After warm-up, a run allocates nothing through operator new: activations
// and scratch come from the leased buffer (BufferPool), kernel scratch from
// buffers that only grow. (TBB's own task allocations go through its
// allocator, not operator new, and are not counted.)
#include <execinfo.h>

#include <atomic>
#include <cstdlib>
#include <memory>
#include <new>
#include <string>
#include <vector>

#include "engine/format/model_file.h"
#include "engine/graph/model.h"
#include "engine/testing/random_model.h"
#include "gtest/gtest.h"
#include "tbb/task_arena.h"

namespace {
std::atomic<bool> g_counting{false};
std::atomic<int64_t> g_allocations{0};
}  // namespace

void* operator new(size_t n) {
  if (g_counting.load(std::memory_order_relaxed)) {
    g_allocations.fetch_add(1, std::memory_order_relaxed);
    if (std::getenv("NO_ALLOC_TEST_TRACE")) {  // where did it come from?
      void* frames[32];
      backtrace_symbols_fd(frames, backtrace(frames, 32), 2);
    }
  }
  if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
  throw std::bad_alloc();
}
void* operator new[](size_t n) { return operator new(n); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }
void operator delete[](void* p, size_t) noexcept { std::free(p); }
// The nothrow forms too (std::stable_sort's temporary buffer uses them and
// frees with plain delete): every replaceable form that the deletes above
// may free must allocate with malloc, or ASan reports the mismatch.
void* operator new(size_t n, const std::nothrow_t&) noexcept {
  try {
    return operator new(n);
  } catch (...) {
    return nullptr;
  }
}
void* operator new[](size_t n, const std::nothrow_t&) noexcept {
  return operator new(n, std::nothrow);
}
void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept {
  std::free(p);
}

namespace flexor {
namespace {

struct Case {
  RandomArch arch;
  std::string method;
  int width;
};

class NoAllocTest : public testing::TestWithParam<Case> {};

TEST_P(NoAllocTest, RunsAfterWarmUpDoNotAllocate) {
  const Case& c = GetParam();
  RandomModelSpec spec;
  spec.arch = c.arch;
  spec.method = c.method;
  spec.width = c.width;
  absl::StatusOr<std::string> bytes = BuildRandomModel(spec);
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  absl::StatusOr<std::shared_ptr<const ModelFile>> file =
      ModelFile::FromBytes(*bytes, "no-alloc");
  ASSERT_TRUE(file.ok());
  absl::StatusOr<std::shared_ptr<const Model>> model = Model::Compile(*file);
  ASSERT_TRUE(model.ok()) << model.status();
  const std::vector<std::string> layers = (*model)->WeightLayerNames();
  ASSERT_FALSE(layers.empty());
  absl::StatusOr<std::vector<ActivationPrecision>> steps =
      (*model)->StepActivations(ActivationPrecision::kInt8,
                                {{layers[0], ActivationPrecision::kInt16}});
  ASSERT_TRUE(steps.ok()) << steps.status();
  const std::vector<ActivationPrecision> mixed = *std::move(steps);
  for (int threads : {1, 2}) {
    tbb::task_arena arena(threads);
    for (int64_t batch : {1, 8, 33}) {
      std::vector<float> in(batch * (*model)->input_size(), 3.0f);
      std::vector<float> out(batch * (*model)->output_size());
      // The three precisions, then int8 with the first weight layer in
      // int16 (mixed precision).
      for (int variant = 0; variant < 4; ++variant) {
        const ActivationPrecision precision =
            variant == 3 ? ActivationPrecision::kInt8
                         : static_cast<ActivationPrecision>(variant);
        RunOptions options;
        options.matmul.activations = precision;
        if (variant == 3) options.step_activations = mixed;
        arena.execute([&] {
          // Warm-up: buffers grow here, on whichever threads TBB picks.
          for (int i = 0; i < 20; ++i) {
            ASSERT_TRUE(
                (*model)->Run(in.data(), batch, out.data(), options).ok());
          }
          // With several threads, a thread's kernel scratch grows the first
          // time it gets a bigger tile than before, which may happen after
          // the warm-up: allow a few windows to converge, then none.
          for (int window = 0; window < (threads == 1 ? 1 : 4); ++window) {
            g_allocations = 0;
            g_counting = true;
            for (int i = 0; i < 5; ++i) {
              (void)(*model)->Run(in.data(), batch, out.data(), options);
            }
            g_counting = false;
            if (g_allocations.load() == 0) break;
          }
        });
        EXPECT_EQ(g_allocations.load(), 0)
            << "threads " << threads << " batch " << batch << " "
            << ActivationPrecisionName(precision)
            << (variant == 3 ? " mixed" : "");
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Models, NoAllocTest,
                         testing::Values(Case{RandomArch::kLeNet, "flexor", 4},
                                         Case{RandomArch::kMlp, "flexor", 8},
                                         Case{RandomArch::kResNet, "ternary",
                                              2},
                                         Case{RandomArch::kLeNet, "binary2", 1},
                                         Case{RandomArch::kMlp, "fp32", 1}),
                         [](const auto& info) {
                           return absl::StrCat(info.index, "_",
                                               info.param.method);
                         });

}  // namespace
}  // namespace flexor
