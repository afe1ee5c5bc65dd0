#include "server/common/memory_trimmer.h"

#include <malloc.h>

#include <algorithm>

namespace flexor::server {

MemoryTrimmer::MemoryTrimmer(absl::Duration delay, absl::Duration min_interval)
    : delay_(delay), min_interval_(min_interval), thread_([this] { Loop(); }) {}

MemoryTrimmer::~MemoryTrimmer() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
  }
  thread_.join();
}

void MemoryTrimmer::Request() {
  absl::MutexLock lock(&mu_);
  if (due_ != absl::InfiniteFuture()) return;  // one is scheduled
  due_ = std::max(absl::Now() + delay_, last_trim_ + min_interval_);
}

int64_t MemoryTrimmer::trims() const {
  absl::MutexLock lock(&mu_);
  return trims_;
}

void MemoryTrimmer::Loop() {
  absl::MutexLock lock(&mu_);
  while (true) {
    // Sleep until stopped or the trim is due (or, idle, until one is
    // scheduled).
    const absl::Time due = due_;
    auto wake = [this, due]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
      return stop_ || due_ != due;
    };
    if (due == absl::InfiniteFuture()) {
      mu_.Await(absl::Condition(&wake));
    } else {
      mu_.AwaitWithDeadline(absl::Condition(&wake), due);
    }
    if (stop_) return;
    if (due_ != due || absl::Now() < due) continue;
    due_ = absl::InfiniteFuture();
    mu_.Unlock();
    malloc_trim(0);
    mu_.Lock();
    last_trim_ = absl::Now();
    ++trims_;
  }
}

}  // namespace flexor::server
