#pragma once

#include <chrono>
#include <string>
#include <vector>

namespace aifc::detail {

struct ProcessResult {
  int exit_code = -1;  ///< -1 when it could not start or was killed at the timeout
  std::string out;
  std::string err;
  bool timed_out = false;
};

/// Runs argv[0] (looked up in PATH) with exactly `environment` ("K=V" entries), feeding
/// `input` on stdin and collecting stdout and stderr. Never throws for the program's failure.
ProcessResult run_process(const std::vector<std::string>& argv,
                          const std::vector<std::string>& environment,
                          const std::string& input = {},
                          std::chrono::milliseconds timeout = std::chrono::milliseconds(60'000));

}  // namespace aifc::detail
