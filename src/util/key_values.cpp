#include "util/key_values.hpp"

#include <fmt/format.h>

#include <fstream>

#include "aifc/error.hpp"

namespace aifc::detail {
namespace {

std::string trim(std::string s) {
  const auto b = s.find_first_not_of(" \t\r");
  const auto e = s.find_last_not_of(" \t\r");
  return b == std::string::npos ? std::string() : s.substr(b, e - b + 1);
}

}  // namespace

std::vector<KeyValue> read_key_values(const std::string& path, bool missing_ok) {
  std::ifstream in(path);
  if (!in) {
    if (missing_ok) return {};
    throw Error(ErrorCode::io_error, fmt::format("cannot open '{}'", path));
  }
  std::vector<KeyValue> out;
  std::string line;
  for (int n = 1; std::getline(in, line); ++n) {
    line = trim(line);
    if (line.empty() || line.front() == '#') continue;
    if (line.rfind("export ", 0) == 0) line = trim(line.substr(7));
    const auto eq = line.find('=');
    if (eq == std::string::npos || eq == 0)
      throw Error(ErrorCode::parse_error, fmt::format("{}:{}: expected KEY=VALUE", path, n));
    std::string value = trim(line.substr(eq + 1));
    if (value.size() >= 2 && (value.front() == '"' || value.front() == '\'') &&
        value.back() == value.front())
      value = value.substr(1, value.size() - 2);
    out.push_back({trim(line.substr(0, eq)), std::move(value), n});
  }
  return out;
}

}  // namespace aifc::detail
