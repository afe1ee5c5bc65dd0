// One unit of work for the dynamic batcher: a request's samples, and the
// callback that answers it. Implemented by the gRPC layer (InferCall).
#ifndef FLEXOR_SERVER_BATCHING_BATCH_TASK_H_
#define FLEXOR_SERVER_BATCHING_BATCH_TASK_H_

#include <cstdint>

#include "absl/status/status.h"
#include "absl/time/time.h"

namespace flexor::server {

// Timings reported to each task of an executed batch.
struct BatchTimings {
  absl::Duration queue;    // enqueue -> batch start
  absl::Duration compute;  // the model execution of the whole batch
  int64_t batch_samples = 0;
};

class BatchTask {
 public:
  virtual ~BatchTask() = default;

  virtual int64_t num_samples() const = 0;
  // [num_samples, input_size] row-major; valid until Complete().
  virtual const float* input() const = 0;
  // Checked when the batch is formed: such tasks are answered without
  // running.
  virtual bool IsCancelled() const = 0;
  virtual absl::Time deadline() const = 0;

  // Called exactly once, from a compute thread. On success `output` holds
  // [num_samples, output_size] and is valid only during the call.
  virtual void Complete(const absl::Status& status, const float* output,
                        const BatchTimings& timings) = 0;

  absl::Time enqueue_time() const { return enqueue_time_; }

 private:
  friend class BatchScheduler;
  absl::Time enqueue_time_;
  uint64_t arrival_ = 0;       // server-wide arrival order (BatchScheduler)
  BatchTask* next_ = nullptr;  // the next task of its BatchQueue
};

}  // namespace flexor::server

#endif  // FLEXOR_SERVER_BATCHING_BATCH_TASK_H_
