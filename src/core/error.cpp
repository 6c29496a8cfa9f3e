#include "aifc/error.hpp"

namespace aifc {

std::string_view to_string(ErrorCode code) noexcept {
  switch (code) {
    case ErrorCode::invalid_argument:
      return "invalid_argument";
    case ErrorCode::invalid_state:
      return "invalid_state";
    case ErrorCode::io_error:
      return "io_error";
    case ErrorCode::parse_error:
      return "parse_error";
    case ErrorCode::connection_failed:
      return "connection_failed";
    case ErrorCode::server_error:
      return "server_error";
    case ErrorCode::interrupted:
      return "interrupted";
  }
  return "unknown";
}

Error::Error(ErrorCode code, const std::string& message)
    : std::runtime_error(message), code_(code) {}

}  // namespace aifc
