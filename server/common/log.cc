#include "server/common/log.h"

#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <string>

#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace flexor::server {
namespace {

// Bit i set: level i enabled.
std::atomic<unsigned> g_enabled{0b111};
std::atomic<int> g_verbose_level{0};

unsigned Bit(LogLevel level) { return 1u << static_cast<int>(level); }

char LevelChar(LogLevel level) {
  switch (level) {
    case LogLevel::kInfo:
      return 'I';
    case LogLevel::kWarning:
      return 'W';
    case LogLevel::kError:
      return 'E';
  }
  return '?';
}

const char* Basename(const char* path) {
  const char* slash = std::strrchr(path, '/');
  return slash == nullptr ? path : slash + 1;
}

}  // namespace

void SetMinLogLevel(LogLevel level) {
  // Bits of `level` and above.
  g_enabled.store(0b111u & ~(Bit(level) - 1), std::memory_order_relaxed);
}

void SetLogLevelEnabled(LogLevel level, bool enabled) {
  if (enabled) {
    g_enabled.fetch_or(Bit(level), std::memory_order_relaxed);
  } else {
    g_enabled.fetch_and(~Bit(level), std::memory_order_relaxed);
  }
}

bool LogLevelEnabled(LogLevel level) {
  return (g_enabled.load(std::memory_order_relaxed) & Bit(level)) != 0;
}

void SetLogVerboseLevel(int level) {
  g_verbose_level.store(level, std::memory_order_relaxed);
}

int LogVerboseLevel() {
  return g_verbose_level.load(std::memory_order_relaxed);
}

LogMessage::LogMessage(LogLevel level, const char* file, int line) {
  stream_ << LevelChar(level)
          << absl::FormatTime("%Y-%m-%dT%H:%M:%E6S", absl::Now(),
                              absl::LocalTimeZone())
          << ' ' << Basename(file) << ':' << line << "] ";
}

LogMessage::~LogMessage() {
  stream_ << '\n';
  const std::string line = stream_.str();
  // One write(2) per line keeps concurrent messages from interleaving.
  ssize_t ignored = ::write(STDERR_FILENO, line.data(), line.size());
  (void)ignored;
}

}  // namespace flexor::server
