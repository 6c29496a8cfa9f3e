#include "service/store.hpp"

#include <fmt/format.h>
#include <sqlite3.h>

#include "aifc/error.hpp"

namespace aifc::service {

Store::Store(const std::string& path) : path_(path) {
  if (sqlite3_open_v2(path.c_str(), &db_,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX,
                      nullptr) != SQLITE_OK) {
    const std::string message = db_ ? sqlite3_errmsg(db_) : "out of memory";
    sqlite3_close(db_);
    db_ = nullptr;
    throw Error(ErrorCode::io_error,
                fmt::format("cannot open the state database {}: {}", path, message));
  }
  sqlite3_busy_timeout(db_, 10'000);
  exec("PRAGMA journal_mode=WAL");
  // WAL with NORMAL: a commit survives the service being killed (the WAL is in the page cache
  // and SQLite replays it), and costs no fsync; only an operating-system crash can lose the
  // last commits. FULL made every agent heartbeat and partial result an fsync.
  exec("PRAGMA synchronous=NORMAL");
  exec("PRAGMA foreign_keys=ON");
}

Store::~Store() {
  if (db_) sqlite3_close(db_);
}

void Store::fail(const std::string& what) {
  throw Error(ErrorCode::io_error,
              fmt::format("state database {}: {}: {}", path_, what, sqlite3_errmsg(db_)));
}

sqlite3_stmt* Store::prepare(const std::string& sql, const std::vector<SqlValue>& params) {
  sqlite3_stmt* stmt = nullptr;
  if (sqlite3_prepare_v2(db_, sql.c_str(), static_cast<int>(sql.size()), &stmt, nullptr) !=
      SQLITE_OK)
    fail("cannot prepare '" + sql.substr(0, 60) + "'");
  for (std::size_t i = 0; i < params.size(); ++i) {
    const int at = static_cast<int>(i + 1);
    int rc = SQLITE_OK;
    if (auto p = std::get_if<std::int64_t>(&params[i]))
      rc = sqlite3_bind_int64(stmt, at, *p);
    else if (auto d = std::get_if<double>(&params[i]))
      rc = sqlite3_bind_double(stmt, at, *d);
    else if (auto s = std::get_if<std::string>(&params[i]))
      rc = sqlite3_bind_text(stmt, at, s->data(), static_cast<int>(s->size()), SQLITE_TRANSIENT);
    else
      rc = sqlite3_bind_null(stmt, at);
    if (rc != SQLITE_OK) {
      sqlite3_finalize(stmt);
      fail("cannot bind a parameter");
    }
  }
  return stmt;
}

void Store::exec(const std::string& sql, const std::vector<SqlValue>& params) {
  query(sql, params);
}

std::vector<std::vector<SqlValue>> Store::query(const std::string& sql,
                                                const std::vector<SqlValue>& params) {
  sqlite3_stmt* stmt = prepare(sql, params);
  std::vector<std::vector<SqlValue>> rows;
  for (;;) {
    const int rc = sqlite3_step(stmt);
    if (rc == SQLITE_DONE) break;
    if (rc != SQLITE_ROW) {
      sqlite3_finalize(stmt);
      fail("'" + sql.substr(0, 60) + "' failed");
    }
    std::vector<SqlValue> row;
    const int n = sqlite3_column_count(stmt);
    for (int c = 0; c < n; ++c) {
      switch (sqlite3_column_type(stmt, c)) {
        case SQLITE_INTEGER:
          row.emplace_back(static_cast<std::int64_t>(sqlite3_column_int64(stmt, c)));
          break;
        case SQLITE_FLOAT:
          row.emplace_back(sqlite3_column_double(stmt, c));
          break;
        case SQLITE_NULL:
          row.emplace_back(nullptr);
          break;
        default: {
          const auto* text = reinterpret_cast<const char*>(sqlite3_column_text(stmt, c));
          row.emplace_back(std::string(text ? text : "",
                                       static_cast<std::size_t>(sqlite3_column_bytes(stmt, c))));
        }
      }
    }
    rows.push_back(std::move(row));
  }
  sqlite3_finalize(stmt);
  return rows;
}

}  // namespace aifc::service
