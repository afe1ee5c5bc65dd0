#include "server/common/mapped_file_fault.h"

#include <signal.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>

namespace flexor::server {
namespace {

// Async-signal-safe: fixed buffers and write(2) only.
void ReportSigbus(int, siginfo_t* info, void*) {
  char text[320] = "flexor_server: SIGBUS reading address 0x";
  size_t n = std::strlen(text);
  const uintptr_t address = reinterpret_cast<uintptr_t>(info->si_addr);
  for (int shift = 60; shift >= 0; shift -= 4) {
    text[n++] = "0123456789abcdef"[(address >> shift) & 0xf];
  }
  const char cause[] =
      ": a model file mapped with --model-file-access=map was probably "
      "truncated or rewritten in place while served. Replace served model "
      "files by rename or publish a new version directory "
      "(docs/operations.md).\n";
  std::memcpy(text + n, cause, sizeof(cause) - 1);
  n += sizeof(cause) - 1;
  const ssize_t written = write(STDERR_FILENO, text, n);
  (void)written;
  // SA_RESETHAND restored the default action: returning re-runs the faulting
  // load, which ends the process as an unhandled SIGBUS would.
}

}  // namespace

void InstallMappedFileFaultReport() {
  struct sigaction action;
  std::memset(&action, 0, sizeof(action));
  action.sa_sigaction = ReportSigbus;
  action.sa_flags = SA_SIGINFO | SA_RESETHAND;
  sigemptyset(&action.sa_mask);
  sigaction(SIGBUS, &action, nullptr);
}

}  // namespace flexor::server
