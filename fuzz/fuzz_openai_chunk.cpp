// libFuzzer harness: the allocation-free scanner of one streamed OpenAI chunk. Checked: every
// view it returns points into the payload, token counts are never negative except "absent" (-1),
// and a payload it accepts is one nlohmann::json also reads as an object.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include "fuzz_check.hpp"
#include "stream/openai_stream.hpp"

namespace {

bool inside(std::string_view part, std::string_view whole) {
  if (part.empty()) return true;
  return part.data() >= whole.data() && part.data() + part.size() <= whole.data() + whole.size();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view payload(reinterpret_cast<const char*>(data), size);
  aifc::StreamChunk chunk;
  if (!aifc::scan_openai_chunk(payload, chunk)) return 0;
  AIFC_FUZZ_CHECK(inside(chunk.text, payload));
  AIFC_FUZZ_CHECK(inside(chunk.reasoning, payload));
  AIFC_FUZZ_CHECK(inside(chunk.finish_reason, payload));
  AIFC_FUZZ_CHECK(inside(chunk.error_message, payload));
  AIFC_FUZZ_CHECK(chunk.prompt_tokens >= -1);
  AIFC_FUZZ_CHECK(chunk.completion_tokens >= -1);
  // The text decodes without reading outside it, into UTF-8 when the payload's bytes are.
  std::string text;
  aifc::append_json_unescaped(text, chunk.text);
  const bool ascii_payload = std::all_of(
      payload.begin(), payload.end(), [](char c) { return static_cast<unsigned char>(c) < 0x80; });
  if (ascii_payload)
    AIFC_FUZZ_CHECK(nlohmann::json(text).dump().size() > 0);  // throws if not UTF-8
  // nlohmann::json also checks UTF-8 inside strings, which the scanner leaves to the decoder.
  for (const char c : payload)
    if (static_cast<unsigned char>(c) >= 0x80) return 0;
  // It also refuses numbers beyond a double (1e309), which JSON's grammar allows.
  try {
    AIFC_FUZZ_CHECK(nlohmann::json::parse(payload).is_object());
  } catch (const nlohmann::json::out_of_range&) {
  } catch (const nlohmann::json::parse_error& e) {
    // nlohmann::json also refuses a lone UTF-16 surrogate (\uDDDD), which JSON's grammar allows
    // and the decoder turns into U+FFFD; anything else it refuses, the scanner must too.
    AIFC_FUZZ_CHECK(std::string(e.what()).find("surrogate") != std::string::npos);
  }
  return 0;
}
