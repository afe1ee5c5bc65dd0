#include "engine/runtime/buffer_pool.h"

#include <algorithm>
#include <cstdlib>
#include <new>
#include <utility>

namespace flexor {
namespace {

constexpr int64_t kAlignFloats = 16;  // 64 bytes

BufferPool::Buffer Allocate(int64_t floats) {
  const int64_t n = (std::max<int64_t>(floats, 1) + kAlignFloats - 1) /
                    kAlignFloats * kAlignFloats;
  void* p = std::aligned_alloc(64, static_cast<size_t>(n) * sizeof(float));
  if (p == nullptr) throw std::bad_alloc();
  return {static_cast<float*>(p), n};
}

}  // namespace

BufferPool::Lease& BufferPool::Lease::operator=(Lease&& other) noexcept {
  if (this != &other) {
    if (pool_ != nullptr) pool_->Release(buffer_);
    pool_ = std::exchange(other.pool_, nullptr);
    buffer_ = std::exchange(other.buffer_, Buffer{});
  }
  return *this;
}

BufferPool::Lease::~Lease() {
  if (pool_ != nullptr) pool_->Release(buffer_);
}

BufferPool& BufferPool::Global() {
  static BufferPool* pool = [] {
    auto* p = new BufferPool();  // never destroyed
    // Room for the idle list up front: returning a buffer must not allocate.
    absl::MutexLock lock(&p->mu_);
    p->idle_.reserve(256);
    return p;
  }();
  return *pool;
}

BufferPool::Lease BufferPool::Acquire(int64_t floats) {
  Buffer buffer;
  {
    absl::MutexLock lock(&mu_);
    // Smallest idle buffer that fits, else the largest (it gets replaced):
    // the pool converges on one buffer per concurrent run.
    int best = -1;
    for (int i = 0; i < static_cast<int>(idle_.size()); ++i) {
      const int64_t cap = idle_[i].capacity;
      if (best < 0) {
        best = i;
        continue;
      }
      const int64_t best_cap = idle_[best].capacity;
      const bool fits = cap >= floats, best_fits = best_cap >= floats;
      if ((fits && (!best_fits || cap < best_cap)) ||
          (!fits && !best_fits && cap > best_cap)) {
        best = i;
      }
    }
    if (best >= 0) {
      buffer = idle_[best];
      idle_[best] = idle_.back();
      idle_.pop_back();
    }
  }
  if (buffer.capacity < floats) {
    std::free(buffer.data);
    buffer = Allocate(floats);
  }
  return Lease(this, buffer);
}

void BufferPool::Release(Buffer buffer) {
  if (buffer.data == nullptr) return;
  if (buffer.capacity > kMaxPooledFloats) {
    std::free(buffer.data);
    return;
  }
  absl::MutexLock lock(&mu_);
  idle_.push_back(buffer);
}

int64_t BufferPool::IdleBytes() const {
  absl::MutexLock lock(&mu_);
  int64_t bytes = 0;
  for (const Buffer& b : idle_) bytes += b.capacity * sizeof(float);
  return bytes;
}

BufferPool::~BufferPool() {
  for (Buffer& b : idle_) std::free(b.data);
}

}  // namespace flexor
