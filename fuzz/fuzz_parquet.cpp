// libFuzzer harness: the Parquet reader (src/load/parquet.hpp) on the input's bytes as a whole
// file. Checked: a file it cannot read is refused with aifc::Error, never another exception, a
// crash or an allocation beyond its limits; every row it reads is a JSON object.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "aifc/error.hpp"
#include "fuzz_check.hpp"
#include "load/parquet.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  aifc::detail::ParquetLimits limits;
  limits.max_values = 1 << 20;
  limits.max_page_bytes = 1 << 24;
  try {
    aifc::detail::for_each_parquet_row(
        std::string_view(reinterpret_cast<const char*>(data), size), "fuzz.parquet",
        [](nlohmann::json&& row, std::int64_t index) {
          AIFC_FUZZ_CHECK(row.is_object());
          AIFC_FUZZ_CHECK(index >= 0);
        },
        limits);
  } catch (const aifc::Error& e) {
    AIFC_FUZZ_CHECK(e.code() == aifc::ErrorCode::parse_error);
  }
  return 0;
}
