#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace aifc {

/// What a benchmark needs from one streamed OpenAI-compatible chunk (completions or chat).
/// String views point into the scanned payload and keep JSON escapes as sent.
struct StreamChunk {
  bool has_choices = false;         ///< `choices` is a non-empty array
  std::string_view text;            ///< choices[0].text or choices[0].delta.content (raw JSON)
  std::string_view reasoning;       ///< choices[0].delta.reasoning_content or .reasoning (raw)
  std::string_view finish_reason;   ///< empty when null or absent
  std::int64_t prompt_tokens = -1;  ///< from `usage`, -1 when absent
  std::int64_t completion_tokens = -1;
  bool is_error = false;             ///< the server sent an error object in the stream
  std::string_view error_message;    ///< raw JSON string of the error's message
  std::int64_t server_sent_ns = -1;  ///< `aifc_sent_ns` stamp of the aifc simulator, -1 if absent
};

/// Scans one `data:` payload without allocating. Returns false when the payload is not a
/// well-formed JSON object; `out` is then unspecified.
bool scan_openai_chunk(std::string_view json, StreamChunk& out) noexcept;

/// Appends the decoded form of a raw JSON string body (without quotes) to `out`.
void append_json_unescaped(std::string& out, std::string_view raw);

}  // namespace aifc
