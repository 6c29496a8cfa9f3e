#pragma once
// A small SQLite wrapper for the service's state: one connection, WAL mode, synchronous=NORMAL
// so that what the service acknowledged survives a SIGKILL of the process (not an OS crash).

#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

struct sqlite3;
struct sqlite3_stmt;

namespace aifc::service {

using SqlValue = std::variant<std::nullptr_t, std::int64_t, double, std::string>;

class Store {
 public:
  /// Opens (creates) the database file. Throws Error(io_error) naming the file.
  explicit Store(const std::string& path);
  ~Store();
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  /// Runs one statement with bound parameters (?1, ?2, ...). Throws Error(io_error).
  void exec(const std::string& sql, const std::vector<SqlValue>& params = {});
  /// Runs a query; each row is a vector of values (NULL, integer, real or text).
  std::vector<std::vector<SqlValue>> query(const std::string& sql,
                                           const std::vector<SqlValue>& params = {});

  const std::string& path() const noexcept { return path_; }

 private:
  sqlite3_stmt* prepare(const std::string& sql, const std::vector<SqlValue>& params);
  [[noreturn]] void fail(const std::string& what);
  sqlite3* db_ = nullptr;
  std::string path_;
};

inline std::int64_t as_int(const SqlValue& v) {
  if (auto p = std::get_if<std::int64_t>(&v)) return *p;
  if (auto d = std::get_if<double>(&v)) return static_cast<std::int64_t>(*d);
  return 0;
}
inline std::string as_text(const SqlValue& v) {
  if (auto p = std::get_if<std::string>(&v)) return *p;
  if (auto i = std::get_if<std::int64_t>(&v)) return std::to_string(*i);
  return {};
}

}  // namespace aifc::service
