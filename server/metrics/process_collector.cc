#include "server/metrics/process_collector.h"

#include <dirent.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>

namespace flexor::server {
namespace {

prometheus::MetricFamily Single(const char* name, const char* help,
                                prometheus::MetricType type, double value) {
  prometheus::MetricFamily family;
  family.name = name;
  family.help = help;
  family.type = type;
  prometheus::ClientMetric metric;
  if (type == prometheus::MetricType::Counter) {
    metric.counter.value = value;
  } else {
    metric.gauge.value = value;
  }
  family.metric.push_back(metric);
  return family;
}

struct ProcStat {
  double cpu_seconds = 0;
  double start_time_seconds = 0;
  double virtual_bytes = 0;
  double resident_bytes = 0;
};

bool ReadProcStat(ProcStat* out) {
  std::ifstream in("/proc/self/stat");
  std::string content((std::istreambuf_iterator<char>(in)),
                      std::istreambuf_iterator<char>());
  // The command name (field 2) may contain spaces: parse after the last ')'.
  const size_t paren = content.rfind(')');
  if (paren == std::string::npos) return false;
  std::istringstream fields(content.substr(paren + 2));
  std::string field;
  // Fields 3.. : state(3) ... utime(14) stime(15) ... starttime(22)
  // vsize(23) rss(24).
  double utime = 0, stime = 0, starttime = 0, vsize = 0, rss = 0;
  for (int i = 3; i <= 24 && (fields >> field); ++i) {
    switch (i) {
      case 14:
        utime = std::stod(field);
        break;
      case 15:
        stime = std::stod(field);
        break;
      case 22:
        starttime = std::stod(field);
        break;
      case 23:
        vsize = std::stod(field);
        break;
      case 24:
        rss = std::stod(field);
        break;
      default:
        break;
    }
  }
  const double ticks = static_cast<double>(sysconf(_SC_CLK_TCK));
  out->cpu_seconds = (utime + stime) / ticks;
  out->virtual_bytes = vsize;
  out->resident_bytes = rss * static_cast<double>(sysconf(_SC_PAGESIZE));
  // starttime is in ticks since boot; add the boot time from /proc/stat.
  std::ifstream stat("/proc/stat");
  std::string line;
  while (std::getline(stat, line)) {
    if (line.rfind("btime ", 0) == 0) {
      out->start_time_seconds = std::stod(line.substr(6)) + starttime / ticks;
      break;
    }
  }
  return true;
}

double OpenFds() {
  DIR* dir = opendir("/proc/self/fd");
  if (dir == nullptr) return 0;
  double count = 0;
  while (dirent* entry = readdir(dir)) {
    if (entry->d_name[0] != '.') ++count;
  }
  closedir(dir);
  return count - 1;  // The directory stream's own descriptor.
}

}  // namespace

int64_t ProcessResidentBytes() {
  ProcStat stat;
  if (!ReadProcStat(&stat)) return 0;
  return static_cast<int64_t>(stat.resident_bytes);
}

std::vector<prometheus::MetricFamily> ProcessCollector::Collect() const {
  if (trimmer_ != nullptr) trimmer_->Request();
  std::vector<prometheus::MetricFamily> out;
  ProcStat stat;
  if (ReadProcStat(&stat)) {
    out.push_back(Single("process_cpu_seconds_total",
                         "Total user and system CPU time spent in seconds.",
                         prometheus::MetricType::Counter, stat.cpu_seconds));
    out.push_back(Single("process_resident_memory_bytes",
                         "Resident memory size in bytes.",
                         prometheus::MetricType::Gauge, stat.resident_bytes));
    out.push_back(Single("process_virtual_memory_bytes",
                         "Virtual memory size in bytes.",
                         prometheus::MetricType::Gauge, stat.virtual_bytes));
    out.push_back(
        Single("process_start_time_seconds",
               "Start time of the process since unix epoch in seconds.",
               prometheus::MetricType::Gauge, stat.start_time_seconds));
  }
  out.push_back(Single("process_open_fds", "Number of open file descriptors.",
                       prometheus::MetricType::Gauge, OpenFds()));
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) == 0) {
    out.push_back(Single(
        "process_max_fds", "Maximum number of open file descriptors.",
        prometheus::MetricType::Gauge, static_cast<double>(limit.rlim_cur)));
  }
  return out;
}

}  // namespace flexor::server
