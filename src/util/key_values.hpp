#pragma once

#include <string>
#include <utility>
#include <vector>

namespace aifc::detail {

/// One `KEY=VALUE` line of a settings file (a slurmrestd config, a .env file), with its line.
struct KeyValue {
  std::string key;
  std::string value;
  int line = 0;
};

/// Reads `KEY=VALUE` lines: blank lines and `#` comments are skipped, a leading `export ` is
/// allowed, spaces around key and value are trimmed and one pair of matching quotes is removed.
/// A missing file gives nothing when `missing_ok`, else Error(io_error); a line without `=` is
/// Error(parse_error) naming the file and line. The one reader of such files in aifc.
std::vector<KeyValue> read_key_values(const std::string& path, bool missing_ok = false);

}  // namespace aifc::detail
