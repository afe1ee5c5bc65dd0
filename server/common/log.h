// Minimal structured logging to stderr. Debian 12's Abseil (20220623) has no
// absl/log, so this provides the one thing the server needs: timestamped,
// leveled, line-atomic messages.
//
//   FLEXOR_LOG(INFO) << "loaded model " << name;
#ifndef FLEXOR_SERVER_COMMON_LOG_H_
#define FLEXOR_SERVER_COMMON_LOG_H_

#include <sstream>

namespace flexor::server {

enum class LogLevel { kInfo = 0, kWarning = 1, kError = 2 };

// Messages below this level are dropped (default kInfo): enables `level`
// and the levels above it, disables those below.
void SetMinLogLevel(LogLevel level);
// Each level can be turned on and off on its own at run time (Triton's
// log_info / log_warning / log_error, the LogSettings RPC).
void SetLogLevelEnabled(LogLevel level, bool enabled);
bool LogLevelEnabled(LogLevel level);
// Triton's log_verbose_level: kept and reported; the server writes no
// verbose messages, so it changes no output.
void SetLogVerboseLevel(int level);
int LogVerboseLevel();

class LogMessage {
 public:
  LogMessage(LogLevel level, const char* file, int line);
  ~LogMessage();  // Writes the whole line at once.
  LogMessage(const LogMessage&) = delete;
  LogMessage& operator=(const LogMessage&) = delete;

  std::ostream& stream() { return stream_; }

 private:
  std::ostringstream stream_;
};

}  // namespace flexor::server

#define FLEXOR_LOG_LEVEL_INFO ::flexor::server::LogLevel::kInfo
#define FLEXOR_LOG_LEVEL_WARNING ::flexor::server::LogLevel::kWarning
#define FLEXOR_LOG_LEVEL_ERROR ::flexor::server::LogLevel::kError

#define FLEXOR_LOG(severity)                                             \
  if (!::flexor::server::LogLevelEnabled(FLEXOR_LOG_LEVEL_##severity)) { \
  } else                                                                 \
    ::flexor::server::LogMessage(FLEXOR_LOG_LEVEL_##severity, __FILE__,  \
                                 __LINE__)                               \
        .stream()

#endif  // FLEXOR_SERVER_COMMON_LOG_H_
