// The Parquet reader (src/load/parquet.hpp) on files written by pyarrow (tests/data/, made by
// tests/data/make_parquet.py), and on every truncation and many corruptions of them.
#include <doctest/doctest.h>

#include <aifc/error.hpp>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "load/parquet.hpp"

namespace {

std::string fixture(const std::string& name) {
  std::ifstream in(std::string(AIFC_SOURCE_DIR) + "/tests/data/" + name, std::ios::binary);
  REQUIRE(in);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<nlohmann::json> rows_of(const std::string& bytes,
                                    aifc::detail::ParquetLimits limits = {}) {
  std::vector<nlohmann::json> rows;
  aifc::detail::for_each_parquet_row(
      bytes, "test.parquet",
      [&](nlohmann::json&& row, std::int64_t index) {
        CHECK(index == static_cast<std::int64_t>(rows.size()));
        rows.push_back(std::move(row));
      },
      limits);
  return rows;
}

}  // namespace

TEST_CASE("parquet: pyarrow's defaults (Snappy, dictionary, v1 pages, three-level lists)") {
  const auto bytes = fixture("chat.parquet");
  CHECK(aifc::detail::looks_like_parquet(bytes));
  const auto rows = rows_of(bytes);
  REQUIRE(rows.size() == 3);
  CHECK(rows[0] == nlohmann::json::parse(R"({"messages": [
      {"role": "system", "content": "Be brief."}, {"role": "user", "content": "Name a prime."}],
      "source": "a"})"));
  CHECK(rows[1] == nlohmann::json::parse(R"({"messages": [
      {"role": "user", "content": "Zähle bis drei."}, {"role": "assistant", "content": "1 2 3"}],
      "source": null})"));
  CHECK(rows[2] ==
        nlohmann::json::parse(
            R"({"messages": [{"role": "user", "content": "Name a prime."}], "source": "a"})"));
}

TEST_CASE("parquet: uncompressed v2 pages across row groups, with nulls and booleans") {
  const auto rows = rows_of(fixture("prompts_v2.parquet"));
  REQUIRE(rows.size() == 7);
  for (std::size_t i = 0; i < rows.size(); ++i) {
    CAPTURE(i);
    CHECK(rows[i]["prompt"] ==
          "prompt number " + std::to_string(i) + " " + std::string(i * 40, 'x'));
    if (i == 2)
      CHECK(rows[i]["output_tokens"].is_null());
    else
      CHECK(rows[i]["output_tokens"] == static_cast<std::int64_t>(i) + 5);
  }
  // Booleans are RLE-encoded in v2 pages.
  const auto flags = nlohmann::json::parse("[true, false, null, true, true, false, true]");
  for (std::size_t i = 0; i < rows.size(); ++i) CHECK(rows[i]["flag"] == flags[i]);
}

TEST_CASE("parquet: GZIP and ZSTD pages") {
  for (const char* name : {"prompts_gzip.parquet", "prompts_zstd.parquet"}) {
    CAPTURE(name);
    const auto rows = rows_of(fixture(name));
    REQUIRE(rows.size() == 2);
    CHECK(rows[1]["prompt"] == "prompt number 1 " + std::string(40, 'x'));
    CHECK(rows[1]["output_tokens"] == 6);
    CHECK(rows[1]["flag"] == false);
  }
}

TEST_CASE("parquet: two-level lists of structs and lists of numbers") {
  const auto chats = rows_of(fixture("sharegpt.parquet"));
  REQUIRE(chats.size() == 2);
  CHECK(chats[1]["id"] == "c2");
  CHECK(chats[1]["conversations"][0] ==
        nlohmann::json::parse(
            R"({"from": "human", "value": "Say hello in three languages, one per line."})"));
  const auto trace = rows_of(fixture("trace.parquet"));
  REQUIRE(trace.size() == 3);
  CHECK(trace[1] == nlohmann::json::parse(
                        R"({"timestamp": 250, "input_length": 48, "output_length": 8,
                            "hash_ids": [1, 2, 3]})"));
  CHECK(trace[2]["hash_ids"] == nlohmann::json::array());
}

TEST_CASE("parquet: what aifc does not read is refused with the file and the reason") {
  CHECK_THROWS_WITH_AS(rows_of(fixture("prompts_brotli.parquet")),
                       doctest::Contains("'test.parquet' (Parquet): column 'prompt' is compressed "
                                         "with BROTLI"),
                       aifc::Error);
  CHECK_THROWS_WITH_AS(rows_of("PAR1 not really"), doctest::Contains("no PAR1 at both ends"),
                       aifc::Error);
  // A file may claim anything; the reader stops at its limits instead of allocating.
  aifc::detail::ParquetLimits small;
  small.max_values = 5;
  CHECK_THROWS_WITH_AS(rows_of(fixture("prompts_v2.parquet"), small),
                       doctest::Contains("more than 5 values"), aifc::Error);
}

TEST_CASE("parquet: every truncation and corruption of a file is an aifc::Error or rows") {
  aifc::detail::ParquetLimits limits;
  limits.max_values = 100000;
  limits.max_page_bytes = 1 << 20;
  for (const char* name :
       {"chat.parquet", "prompts_v2.parquet", "trace.parquet", "prompts_zstd.parquet"}) {
    const auto bytes = fixture(name);
    std::size_t refused = 0, read = 0;
    auto attempt = [&](const std::string& damaged) {
      try {
        rows_of(damaged, limits);
        ++read;
      } catch (const aifc::Error& e) {
        CHECK(e.code() == aifc::ErrorCode::parse_error);
        ++refused;
      }
    };
    // Cut short and keep the footer's end ("PAR1" and a length), so the footer is reached.
    for (std::size_t keep = 0; keep + 8 < bytes.size(); keep += 7)
      attempt(bytes.substr(0, keep) + bytes.substr(bytes.size() - 8));
    // Each byte in turn set to values that make lengths, types and counts wrong.
    for (std::size_t at = 0; at < bytes.size(); ++at) {
      for (const unsigned char value : {0x00, 0x7F, 0xFF}) {
        std::string damaged = bytes;
        damaged[at] = static_cast<char>(value);
        attempt(damaged);
      }
    }
    CAPTURE(name);
    CHECK(refused > 0);
    CHECK(read > 0);  // bytes of text and statistics may change without breaking the file
  }
}
