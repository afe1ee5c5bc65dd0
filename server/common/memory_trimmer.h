// Gives freed heap memory back to the kernel (glibc malloc_trim) shortly
// after events that free a lot of it.
//
// Why: glibc keeps freed chunks in the allocating thread's arena, and only
// returns the top of a heap on its own. A /metrics scrape copies every
// series (labels included) into temporaries on a CivetWeb thread, each of
// which has its own arena: at 1,000 models one scrape left 0.5-1.4 MB of
// freed memory resident per scraping thread, and evicted or unloaded
// models leave their freed bytes interleaved with live ones. malloc_trim
// releases every whole free page of every arena (MADV_DONTNEED).
//
// Requests are merged: the first one schedules a trim `delay` later (time
// for the scrape's text to be written, for in-flight requests to drop the
// evicted versions), the ones until then ride along, and trims are at
// least `min_interval` apart (a trim walks every arena under its lock: up
// to ~50 ms on a 2 GiB heap, during which allocations wait). Trims run on
// the trimmer's own thread, never on a request path.
#ifndef FLEXOR_SERVER_COMMON_MEMORY_TRIMMER_H_
#define FLEXOR_SERVER_COMMON_MEMORY_TRIMMER_H_

#include <cstdint>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace flexor::server {

class MemoryTrimmer {
 public:
  explicit MemoryTrimmer(absl::Duration delay = absl::Milliseconds(100),
                         absl::Duration min_interval = absl::Seconds(5));
  ~MemoryTrimmer();  // joins the thread; a pending trim is dropped
  MemoryTrimmer(const MemoryTrimmer&) = delete;
  MemoryTrimmer& operator=(const MemoryTrimmer&) = delete;

  // Asks for a trim: `delay` from now, or `min_interval` after the last
  // one if that is later; nothing new if one is already scheduled. Never
  // waits for a trim in progress. `freed_bytes`: what the caller just let
  // go of, if known (see SetUrgency).
  void Request(int64_t freed_bytes = 0);

  // Once `freed_bytes` have been reported freed since the last trim, the
  // next one may follow it after `min_interval` instead. The memory budget
  // sets a tenth of the budget: with a small budget, the models evicted in
  // 5 s can be several budgets' worth of freed, fragmented heap (64 MiB,
  // 2,000 LeNets, Zipf: RSS peaked 22 MiB over budget + base with 5 s
  // between trims, within it with 250 ms), while at 2 GiB the 5 s stand.
  void SetUrgency(int64_t freed_bytes, absl::Duration min_interval);

  // Trims done so far (tests).
  int64_t trims() const;

 private:
  void Loop();

  const absl::Duration delay_;
  const absl::Duration min_interval_;
  mutable absl::Mutex mu_;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  absl::Time due_ ABSL_GUARDED_BY(mu_) = absl::InfiniteFuture();
  absl::Time last_trim_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  int64_t urgent_bytes_ ABSL_GUARDED_BY(mu_) = 0;  // 0: never urgent
  absl::Duration urgent_interval_ ABSL_GUARDED_BY(mu_);
  int64_t freed_since_trim_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t trims_ ABSL_GUARDED_BY(mu_) = 0;
  std::thread thread_;
};

}  // namespace flexor::server

#endif  // FLEXOR_SERVER_COMMON_MEMORY_TRIMMER_H_
