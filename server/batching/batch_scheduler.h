// Dynamic batching shared by every model (in the spirit of TF Serving's
// SharedBatchScheduler): one dispatcher thread watches all non-empty queues
// and, while fewer than `max_concurrent_batches` executions are running,
// turns the ready queue whose oldest request arrived first (server-wide
// arrival order, whatever the model) into a batch: a queue is ready when it
// holds max_batch_size samples, when its oldest request has waited
// max_queue_delay, or at once when the queue does not batch. Serving queues
// by the age of their oldest request instead of in turn keeps latency with
// requests spread over many models close to that of one model. A task that
// finishes a batch takes the next ready one itself (work-conserving), so a
// busy server does not pay a dispatcher wake-up and a new arena task per
// batch; the dispatcher thread starts tasks for free slots and handles the
// batching delays. With dispatch_when_idle, a request that finds nothing
// running and nothing queued is started by Submit itself, sparing a lone
// request the dispatcher thread's wake-up. Batches run as
// tasks in one oneTBB arena of `threads` threads, inside which the engine's
// kernels parallelise further. Under load, requests accumulate while the
// arena is busy, so concurrent requests share one decrypt+GEMM pass.
#ifndef FLEXOR_SERVER_BATCHING_BATCH_SCHEDULER_H_
#define FLEXOR_SERVER_BATCHING_BATCH_SCHEDULER_H_

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "server/batching/batch_queue.h"
#include "server/batching/batch_task.h"
#include "tbb/global_control.h"
#include "tbb/task_arena.h"

namespace flexor::server {

class BatchScheduler {
 public:
  // `dispatch_when_idle`: a queue that batches is also ready when no batch
  // is running at all, so a lone request does not wait max_queue_delay on
  // an idle server; under load, requests still accumulate while batches run.
  BatchScheduler(int threads, int max_concurrent_batches,
                 bool dispatch_when_idle = false);
  ~BatchScheduler();  // Stop()
  BatchScheduler(const BatchScheduler&) = delete;
  BatchScheduler& operator=(const BatchScheduler&) = delete;

  // Queues `task` on `queue`. RESOURCE_EXHAUSTED when the queue is full,
  // UNAVAILABLE after Stop(). On success the task is completed later,
  // exactly once; on error it is untouched.
  absl::Status Submit(BatchQueue* queue, BatchTask* task);

  // From now on every queue is ready at once (no batching delay); still
  // accepts tasks. Used when shutting down, to finish in-flight requests
  // without waiting for company.
  void Flush();

  // Runs every queued task, waits for running batches, stops the dispatcher.
  void Stop();

  // The compute arena (model warm-up runs here too).
  tbb::task_arena& arena() { return arena_; }
  int threads() const { return threads_; }

 private:
  void DispatchLoop();
  // The next batch to run in arrival order (counted in running_), or null
  // when none may run now; then `wake_at` is lowered to when a waiting
  // queue's delay ends.
  BatchQueue* TakeBatch(absl::Time now, absl::Time* wake_at,
                        std::vector<BatchTask*>* batch)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool Ready(const BatchQueue& queue, absl::Time now) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Runs `first_batch` of `first` (counted in running_) as an arena task,
  // which then takes further ready batches itself.
  void StartBatch(BatchQueue* first, std::vector<BatchTask*> first_batch);
  void Execute(BatchQueue* queue, const std::vector<BatchTask*>& batch);

  const int threads_;
  const int max_concurrent_batches_;
  const bool dispatch_when_idle_;
  // Lets the arena have `threads` workers even on small machines, where
  // oneTBB's default pool is hardware_concurrency - 1.
  tbb::global_control parallelism_;
  tbb::task_arena arena_;

  absl::Mutex mu_;
  absl::CondVar wake_;
  // Non-empty queues by the arrival number of their oldest request.
  std::map<uint64_t, BatchQueue*> active_ ABSL_GUARDED_BY(mu_);
  uint64_t arrivals_ ABSL_GUARDED_BY(mu_) = 0;
  int running_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool flushing_ ABSL_GUARDED_BY(mu_) = false;
  std::thread dispatcher_;
  // Arena tasks not yet finished with `this` (Stop waits for zero).
  std::atomic<int> outstanding_{0};
};

}  // namespace flexor::server

#endif  // FLEXOR_SERVER_BATCHING_BATCH_SCHEDULER_H_
