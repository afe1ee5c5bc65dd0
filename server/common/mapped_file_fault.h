// A last word before a SIGBUS ends the process. With
// --model-file-access=map a served model file that is truncated in place
// makes the next read of its lost pages raise SIGBUS; nothing can recover
// from that, but the log can say which mistake caused it instead of a bare
// "Bus error".
#ifndef FLEXOR_SERVER_COMMON_MAPPED_FILE_FAULT_H_
#define FLEXOR_SERVER_COMMON_MAPPED_FILE_FAULT_H_

namespace flexor::server {

// Installs a one-shot SIGBUS handler that writes the faulting address and
// the likely cause (a mapped model file truncated or rewritten in place) to
// stderr, then lets the default action end the process (core dump
// included). Call once at startup, only when model files are mapped.
void InstallMappedFileFaultReport();

}  // namespace flexor::server

#endif  // FLEXOR_SERVER_COMMON_MAPPED_FILE_FAULT_H_
