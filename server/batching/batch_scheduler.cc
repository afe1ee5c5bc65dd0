#include "server/batching/batch_scheduler.h"

#include <algorithm>
#include <cstring>
#include <exception>
#include <new>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "engine/runtime/buffer_pool.h"

namespace flexor::server {

BatchScheduler::BatchScheduler(int threads, int max_concurrent_batches,
                               bool dispatch_when_idle)
    : threads_(std::max(1, threads)),
      max_concurrent_batches_(std::max(1, max_concurrent_batches)),
      dispatch_when_idle_(dispatch_when_idle),
      parallelism_(tbb::global_control::max_allowed_parallelism,
                   static_cast<size_t>(std::max(1, threads)) + 1),
      // No slot reserved for an external thread: batches are enqueued.
      arena_(std::max(1, threads), /*reserved_for_masters=*/0) {
  dispatcher_ = std::thread([this] { DispatchLoop(); });
}

BatchScheduler::~BatchScheduler() { Stop(); }

absl::Status BatchScheduler::Submit(BatchQueue* queue, BatchTask* task) {
  absl::MutexLock lock(&mu_);
  if (stopping_) {
    return absl::UnavailableError("the server is shutting down");
  }
  if (queue->num_tasks_ >= queue->options().max_queue_size) {
    return absl::ResourceExhaustedError(absl::StrCat(
        queue->options().name, ": the request queue is full (",
        queue->options().max_queue_size,
        " requests waiting); retry with backoff or raise max_queue_size"));
  }
  task->enqueue_time_ = absl::Now();
  task->arrival_ = arrivals_++;
  task->next_ = nullptr;
  if (queue->tail_ == nullptr) {
    queue->head_ = task;
  } else {
    queue->tail_->next_ = task;
  }
  queue->tail_ = task;
  ++queue->num_tasks_;
  queue->queued_samples_ += task->num_samples();
  if (!queue->active_) {
    queue->active_ = true;
    queue->head_arrival_ = task->arrival_;
    active_.emplace(task->arrival_, queue);
  }
  // An idle server hands a lone request to the arena here, from the
  // caller's thread, instead of waking the dispatcher thread to do it: at
  // low load that hand-off was a third of the time a request spent in the
  // server. It still runs on an arena worker, as every batch does.
  if (dispatch_when_idle_ && running_ == 0 && active_.size() == 1) {
    absl::Time unused = absl::InfiniteFuture();
    std::vector<BatchTask*> batch;
    if (BatchQueue* ready = TakeBatch(absl::Now(), &unused, &batch)) {
      StartBatch(ready, std::move(batch));
      return absl::OkStatus();
    }
  }
  wake_.Signal();
  return absl::OkStatus();
}

void BatchScheduler::Flush() {
  absl::MutexLock lock(&mu_);
  flushing_ = true;
  wake_.Signal();
}

void BatchScheduler::Stop() {
  {
    absl::MutexLock lock(&mu_);
    if (stopping_ && !dispatcher_.joinable()) return;
    stopping_ = true;
    wake_.Signal();
  }
  if (dispatcher_.joinable()) dispatcher_.join();
  while (outstanding_.load(std::memory_order_acquire) != 0) {
    std::this_thread::yield();
  }
}

bool BatchScheduler::Ready(const BatchQueue& queue, absl::Time now) const {
  const BatchQueue::Options& o = queue.options();
  return stopping_ || flushing_ || !o.dynamic_batching ||
         (dispatch_when_idle_ && running_ == 0) ||
         queue.queued_samples_ >= o.max_batch_size ||
         now >= queue.head_->enqueue_time_ + o.max_queue_delay;
}

BatchQueue* BatchScheduler::TakeBatch(absl::Time now, absl::Time* wake_at,
                                      std::vector<BatchTask*>* batch) {
  if (running_ >= max_concurrent_batches_ || active_.empty()) return nullptr;
  BatchQueue* queue = nullptr;
  // Oldest head first: the first ready queue is the one whose waiting
  // request arrived earliest among those that may run now.
  for (const auto& [arrival, candidate] : active_) {
    if (Ready(*candidate, now)) {
      queue = candidate;
      break;
    }
    *wake_at = std::min(*wake_at, candidate->head_->enqueue_time_ +
                                      candidate->options().max_queue_delay);
  }
  if (queue == nullptr) return nullptr;
  // Form the batch: whole requests, up to max_batch_size samples (a single
  // request is never split; its size was checked on arrival).
  int64_t samples = 0;
  const int64_t limit =
      queue->options().dynamic_batching ? queue->options().max_batch_size : 0;
  while (queue->head_ != nullptr) {
    BatchTask* task = queue->head_;
    if (!batch->empty() && samples + task->num_samples() > limit) break;
    queue->head_ = task->next_;
    if (queue->head_ == nullptr) queue->tail_ = nullptr;
    task->next_ = nullptr;
    --queue->num_tasks_;
    queue->queued_samples_ -= task->num_samples();
    samples += task->num_samples();
    batch->push_back(task);
  }
  active_.erase(queue->head_arrival_);
  if (queue->head_ == nullptr) {
    queue->active_ = false;
  } else {
    queue->head_arrival_ = queue->head_->arrival_;
    active_.emplace(queue->head_arrival_, queue);
  }
  ++running_;
  return queue;
}

void BatchScheduler::DispatchLoop() {
  absl::MutexLock lock(&mu_);
  while (true) {
    if (stopping_ && active_.empty() && running_ == 0) return;
    absl::Time wake_at = absl::InfiniteFuture();
    std::vector<BatchTask*> batch;
    BatchQueue* queue = TakeBatch(absl::Now(), &wake_at, &batch);
    if (queue == nullptr) {
      wake_.WaitWithDeadline(&mu_, wake_at);
      continue;
    }
    StartBatch(queue, std::move(batch));
  }
}

void BatchScheduler::StartBatch(BatchQueue* first,
                                std::vector<BatchTask*> first_batch) {
  outstanding_.fetch_add(1, std::memory_order_relaxed);
  arena_.enqueue([this, first, first_batch = std::move(first_batch)] {
    // Work-conserving: when a batch is done, the same task takes the next
    // ready one (same order as the dispatcher), without waking the
    // dispatcher thread and queueing a new arena task per batch.
    BatchQueue* queue = first;
    std::vector<BatchTask*> batch = first_batch;
    while (queue != nullptr) {
      Execute(queue, batch);
      absl::MutexLock done(&mu_);
      --running_;
      batch.clear();
      absl::Time unused = absl::InfiniteFuture();
      queue = TakeBatch(absl::Now(), &unused, &batch);
      if (queue == nullptr) wake_.Signal();
    }
    // Last touch of `this`.
    outstanding_.fetch_sub(1, std::memory_order_acq_rel);
  });
}

void BatchScheduler::Execute(BatchQueue* queue,
                             const std::vector<BatchTask*>& batch) {
  const absl::Time start = absl::Now();
  // Drop what nobody waits for any more.
  std::vector<BatchTask*> live;
  live.reserve(batch.size());
  for (BatchTask* task : batch) {
    const BatchTimings timings{start - task->enqueue_time(),
                               absl::ZeroDuration(), 0};
    if (task->IsCancelled()) {
      task->Complete(absl::CancelledError("the request was cancelled"), nullptr,
                     timings);
    } else if (start > task->deadline()) {
      task->Complete(absl::DeadlineExceededError(absl::StrCat(
                         "the deadline passed after ",
                         absl::FormatDuration(start - task->enqueue_time()),
                         " in the queue, before the model ran")),
                     nullptr, timings);
    } else {
      live.push_back(task);
    }
  }
  if (live.empty()) return;

  const BatchQueue::Options& o = queue->options();
  int64_t samples = 0;
  for (BatchTask* task : live) samples += task->num_samples();
  const float* input = live.front()->input();
  // Leased from the engine's buffer pool: no allocation per batch after
  // warm-up (the output is encoded into the responses before Execute ends).
  PooledArray<float> gathered(0), output(0);
  absl::Status status;
  absl::Time compute_start = absl::Now();
  // This runs as a TBB task: an exception escaping it would terminate the
  // process, so allocation failures become the batch's error status.
  try {
    if (live.size() > 1) {
      gathered = PooledArray<float>(samples * o.input_size);
      float* dst = gathered.data();
      for (BatchTask* task : live) {
        const size_t n =
            static_cast<size_t>(task->num_samples() * o.input_size);
        std::memcpy(dst, task->input(), n * sizeof(float));
        dst += n;
      }
      input = gathered.data();
    }
    output = PooledArray<float>(samples * o.output_size);
    compute_start = absl::Now();
    status = queue->runner_(input, samples, output.data());
  } catch (const std::bad_alloc&) {
    status = absl::ResourceExhaustedError(
        absl::StrCat("out of memory for a batch of ", samples, " samples"));
  } catch (const std::exception& e) {
    status = absl::InternalError(absl::StrCat("batch failed: ", e.what()));
  }
  const absl::Duration compute = absl::Now() - compute_start;
  if (queue->observer_) queue->observer_(samples, compute);
  // After the last Complete() the queue's owner may be gone: no `queue` or
  // `o` below this line.
  const int64_t output_size = o.output_size;
  const float* out = output.data();
  for (BatchTask* task : live) {
    const BatchTimings timings{start - task->enqueue_time(), compute, samples};
    // Complete() may free the task: read it first.
    const int64_t rows = task->num_samples();
    task->Complete(status, status.ok() ? out : nullptr, timings);
    out += rows * output_size;
  }
}

}  // namespace flexor::server
