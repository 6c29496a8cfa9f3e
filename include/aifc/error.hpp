#pragma once

#include <stdexcept>
#include <string>
#include <string_view>

#include "aifc/export.hpp"

namespace aifc {

/// What went wrong when the library itself was misused or misconfigured.
/// Failures of individual requests are not errors: they are recorded in the request's record.
enum class ErrorCode {
  invalid_argument,   ///< a config value or argument is out of range or malformed
  invalid_state,      ///< a call at the wrong time, e.g. run() on a running group
  io_error,           ///< a file could not be read or written
  parse_error,        ///< a dataset or config file is not in the expected format
  connection_failed,  ///< a server needed before a run (e.g. for /v1/models) is unreachable
  server_error,       ///< a server answered a set-up call with an error
  interrupted,        ///< the operation was stopped on request
};

AIFC_API std::string_view to_string(ErrorCode code) noexcept;

/// The one exception type of libaifc.
class AIFC_API Error : public std::runtime_error {
 public:
  Error(ErrorCode code, const std::string& message);
  ErrorCode code() const noexcept { return code_; }

 private:
  ErrorCode code_;
};

}  // namespace aifc
