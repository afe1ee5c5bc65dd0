// The profiling hook of the kernels: time spent in a scope added to a
// counter the caller passed down (MatmulOptions::decrypt_nanos). With no
// counter nothing is timed, so the hook costs one branch when off.
#ifndef FLEXOR_ENGINE_KERNELS_SCOPED_NANOS_H_
#define FLEXOR_ENGINE_KERNELS_SCOPED_NANOS_H_

#include <atomic>
#include <chrono>
#include <cstdint>

namespace flexor {

class ScopedNanos {
 public:
  explicit ScopedNanos(std::atomic<int64_t>* sink) : sink_(sink) {
    if (sink_ != nullptr) start_ = std::chrono::steady_clock::now();
  }
  ~ScopedNanos() {
    if (sink_ == nullptr) return;
    sink_->fetch_add(std::chrono::duration_cast<std::chrono::nanoseconds>(
                         std::chrono::steady_clock::now() - start_)
                         .count(),
                     std::memory_order_relaxed);
  }
  ScopedNanos(const ScopedNanos&) = delete;
  ScopedNanos& operator=(const ScopedNanos&) = delete;

 private:
  std::atomic<int64_t>* sink_;
  std::chrono::steady_clock::time_point start_;
};

}  // namespace flexor

#endif  // FLEXOR_ENGINE_KERNELS_SCOPED_NANOS_H_
