#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

namespace aifc::detail {

/// True when the bytes begin as a Parquet file does ("PAR1").
bool looks_like_parquet(std::string_view head) noexcept;

/// What one reading may cost, whatever a file claims: every decoded value (nulls included)
/// counts, and a page may not unpack to more bytes than this.
struct ParquetLimits {
  std::size_t max_values = std::size_t{1} << 28;
  std::size_t max_page_bytes = std::size_t{1} << 28;
};

/// Reads the rows of a Parquet file (all of it in `bytes`) as JSON objects, a column's name to
/// its value: lists as arrays, structs as objects, maps with text keys as objects, nulls as
/// null, byte arrays as text (bytes that are not UTF-8 replaced by U+FFFD), INT96 as null.
/// Calls on_row(row, index) in the file's order, one row group in memory at a time.
///
/// Reads what pyarrow, pandas, Polars, DuckDB and Spark write by default: data pages v1 and v2,
/// PLAIN and dictionary encodings (and RLE booleans), uncompressed, Snappy, GZIP or ZSTD.
/// Anything else (LZ4, Brotli, a DELTA encoding, a column in another file, a damaged file) is
/// refused with aifc::Error (parse_error) naming `name` and what is missing.
void for_each_parquet_row(
    std::string_view bytes, const std::string& name,
    const std::function<void(nlohmann::json&& row, std::int64_t index)>& on_row,
    const ParquetLimits& limits = {});

}  // namespace aifc::detail
