// Collects protobuf text-format parse errors into one message, for the
// config parsers (project and Triton forms of config.pbtxt).
#ifndef FLEXOR_SERVER_CONFIG_TEXT_FORMAT_ERRORS_H_
#define FLEXOR_SERVER_CONFIG_TEXT_FORMAT_ERRORS_H_

#include <string>

#include "absl/strings/str_cat.h"
#include "google/protobuf/io/tokenizer.h"

namespace flexor::server {

class TextFormatErrors : public google::protobuf::io::ErrorCollector {
 public:
  void AddError(int line, int column, const std::string& message) override {
    if (!error_.empty()) error_ += "; ";
    absl::StrAppend(&error_, "line ", line + 1, " column ", column + 1, ": ",
                    message);
  }
  const std::string& error() const { return error_; }

 private:
  std::string error_;
};

}  // namespace flexor::server

#endif  // FLEXOR_SERVER_CONFIG_TEXT_FORMAT_ERRORS_H_
