// The request queue of one loaded model version. Holds the batching policy
// and how to run the model; the shared BatchScheduler decides when to form
// a batch and runs it in the server's task arena.
#ifndef FLEXOR_SERVER_BATCHING_BATCH_QUEUE_H_
#define FLEXOR_SERVER_BATCHING_BATCH_QUEUE_H_

#include <cstdint>
#include <functional>
#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "server/batching/batch_task.h"

namespace flexor::server {

class BatchQueue {
 public:
  struct Options {
    std::string name;              // for messages: "model 'x' version 3"
    int max_batch_size = 32;       // samples per execution
    bool dynamic_batching = true;  // false: one request per execution
    absl::Duration max_queue_delay = absl::Microseconds(200);
    int max_queue_size = 1024;  // waiting requests
    int64_t input_size = 0;     // floats per sample
    int64_t output_size = 0;
  };
  // Runs the model: input [batch, input_size] -> output [batch, output_size].
  using Runner = std::function<absl::Status(const float* input, int64_t batch,
                                            float* output)>;
  // Called once per executed batch (before its tasks complete).
  using BatchObserver =
      std::function<void(int64_t samples, absl::Duration compute)>;

  BatchQueue(Options options, Runner runner, BatchObserver observer)
      : options_(std::move(options)),
        runner_(std::move(runner)),
        observer_(std::move(observer)) {}
  BatchQueue(const BatchQueue&) = delete;
  BatchQueue& operator=(const BatchQueue&) = delete;

  const Options& options() const { return options_; }

 private:
  friend class BatchScheduler;
  const Options options_;
  const Runner runner_;
  const BatchObserver observer_;
  // Guarded by the scheduler's mutex. The waiting tasks, oldest first,
  // linked through BatchTask::next_: an empty queue owns no memory (a
  // std::deque allocates about 0.6 KB up front, paid by every loaded
  // version, most of which sit idle on a server with many models).
  BatchTask* head_ = nullptr;
  BatchTask* tail_ = nullptr;
  int num_tasks_ = 0;
  int64_t queued_samples_ = 0;
  bool active_ = false;        // listed in the scheduler's active queues
  uint64_t head_arrival_ = 0;  // arrival number of head_
};

}  // namespace flexor::server

#endif  // FLEXOR_SERVER_BATCHING_BATCH_QUEUE_H_
