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

void MemoryTrimmer::Request(int64_t freed_bytes) {
  absl::MutexLock lock(&mu_);
  freed_since_trim_ += std::max<int64_t>(0, freed_bytes);
  const bool urgent = urgent_bytes_ > 0 && freed_since_trim_ >= urgent_bytes_;
  const absl::Time due =
      std::max(absl::Now() + delay_,
               last_trim_ + (urgent ? urgent_interval_ : min_interval_));
  // Scheduled already: only an urgent request brings it forward.
  if (due < due_) due_ = due;
}

void MemoryTrimmer::SetUrgency(int64_t freed_bytes,
                               absl::Duration min_interval) {
  absl::MutexLock lock(&mu_);
  urgent_bytes_ = freed_bytes;
  urgent_interval_ = min_interval;
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
    freed_since_trim_ = 0;  // what is freed from here on counts for the next
    mu_.Unlock();
    malloc_trim(0);
    mu_.Lock();
    last_trim_ = absl::Now();
    ++trims_;
  }
}

}  // namespace flexor::server
