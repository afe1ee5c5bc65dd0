// Standard process_* metrics (Prometheus client conventions) read from
// /proc/self at scrape time: resident and virtual memory, CPU time, open file
// descriptors, start time.
#ifndef FLEXOR_SERVER_METRICS_PROCESS_COLLECTOR_H_
#define FLEXOR_SERVER_METRICS_PROCESS_COLLECTOR_H_

#include <cstdint>
#include <vector>

#include "prometheus/collectable.h"
#include "prometheus/metric_family.h"
#include "server/common/memory_trimmer.h"

namespace flexor::server {

class ProcessCollector : public prometheus::Collectable {
 public:
  // `trimmer` (may be null): asked for a trim at every scrape, which frees
  // its copies of every series once the text is written (MemoryTrimmer).
  explicit ProcessCollector(MemoryTrimmer* trimmer = nullptr)
      : trimmer_(trimmer) {}
  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  MemoryTrimmer* const trimmer_;
};

// Resident set size of this process in bytes (0 if /proc is unreadable).
int64_t ProcessResidentBytes();

}  // namespace flexor::server

#endif  // FLEXOR_SERVER_METRICS_PROCESS_COLLECTOR_H_
