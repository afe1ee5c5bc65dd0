// A process-wide pool of 64-byte aligned float buffers for the request path:
// a run leases one, uses it and gives it back, so after warm-up inference
// allocates nothing (no malloc, no page faults, no memset).
//
// Why a pool and not thread_local buffers: a TBB worker that waits inside a
// parallel_for may pick up another request's task, which would then reuse the
// same thread_local buffer while the first request still needs it. A lease is
// owned by exactly one run.
#ifndef FLEXOR_ENGINE_RUNTIME_BUFFER_POOL_H_
#define FLEXOR_ENGINE_RUNTIME_BUFFER_POOL_H_

#include <cstdint>
#include <type_traits>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace flexor {

class BufferPool {
 public:
  struct Buffer {
    float* data = nullptr;
    int64_t capacity = 0;  // floats
  };

  // Owns one buffer until destroyed, then returns it to the pool.
  class Lease {
   public:
    Lease() = default;
    Lease(BufferPool* pool, Buffer buffer) : pool_(pool), buffer_(buffer) {}
    Lease(Lease&& other) noexcept { *this = std::move(other); }
    Lease& operator=(Lease&& other) noexcept;
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;
    ~Lease();
    float* data() const { return buffer_.data; }

   private:
    BufferPool* pool_ = nullptr;
    Buffer buffer_;
  };

  // Buffers larger than this are freed when returned instead of kept: one
  // huge request must not pin its memory for the life of the process.
  static constexpr int64_t kMaxPooledFloats = int64_t{16} << 20;  // 64 MiB

  static BufferPool& Global();

  // At least `floats` floats (uninitialised). Throws std::bad_alloc when the
  // memory cannot be had; callers turn that into an error status.
  Lease Acquire(int64_t floats);

  // Bytes held by idle pooled buffers (metrics, tests).
  int64_t IdleBytes() const;

  ~BufferPool();

 private:
  void Release(Buffer buffer);

  mutable absl::Mutex mu_;
  std::vector<Buffer> idle_ ABSL_GUARDED_BY(mu_);
};

// An uninitialised array of n trivially copyable T leased from
// BufferPool::Global() for the lifetime of the object: a kernel driver's
// temporary that does not allocate after warm-up. n == 0 leases nothing.
template <typename T>
class PooledArray {
 public:
  static_assert(std::is_trivially_copyable_v<T> && alignof(T) <= 64);
  explicit PooledArray(int64_t n) : size_(n) {
    if (n > 0) {
      lease_ = BufferPool::Global().Acquire(
          (n * static_cast<int64_t>(sizeof(T)) + 3) / 4);
    }
  }
  T* data() const { return reinterpret_cast<T*>(lease_.data()); }
  T& operator[](int64_t i) const { return data()[i]; }
  int64_t size() const { return size_; }
  T* begin() const { return data(); }
  T* end() const { return data() + size_; }

 private:
  BufferPool::Lease lease_;
  int64_t size_;
};

}  // namespace flexor

#endif  // FLEXOR_ENGINE_RUNTIME_BUFFER_POOL_H_
