// libFuzzer harness: the event loop's HTTP/1.1 response parser. The first byte chooses how the
// bytes are split; the rest is what a server sent. Checked: the unfinished line it holds stays
// within its limits, a Content-Length body is never longer than announced, and the split does
// not change the outcome.
#include <cstddef>
#include <cstdint>
#include <string>

#include "fuzz_check.hpp"
#include "http/http_response_parser.hpp"

namespace {

struct Outcome {
  aifc::detail::HttpResponseParser::Result result = aifc::detail::HttpResponseParser::Result::more;
  int status = 0;
  int header_calls = 0;
  std::string body;
  std::string error;
  bool keep_alive = false;
  bool complete_at_eof = false;
  bool operator==(const Outcome&) const = default;
};

struct Collect {
  Outcome* out;
  bool on_headers(int status, bool) {
    out->status = status;
    ++out->header_calls;
    return true;
  }
  bool on_body(const char* data, std::size_t len) {
    out->body.append(data, len);
    return true;
  }
};

Outcome parse(std::string_view bytes, std::size_t piece) {
  using Parser = aifc::detail::HttpResponseParser;
  Parser parser;
  Outcome out;
  Collect collect{&out};
  for (std::size_t at = 0; at < bytes.size() && out.result == Parser::Result::more; at += piece) {
    const auto part = bytes.substr(at, piece);
    out.result = parser.feed(part.data(), part.size(), collect);
    // The longest line a parser may hold: a header line (64 KiB) or a trailer, plus one feed.
    AIFC_FUZZ_CHECK(parser.buffered_bytes() <= 65536 + piece);
  }
  AIFC_FUZZ_CHECK(out.header_calls <= 1);
  out.error = parser.error();
  out.keep_alive = parser.keep_alive();
  out.complete_at_eof = parser.complete_at_eof();
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  const std::size_t piece = 1 + data[0] % 23;
  const std::string_view bytes(reinterpret_cast<const char*>(data) + 1, size - 1);
  const auto whole = parse(bytes, bytes.size() + 1);
  const auto split = parse(bytes, piece);
  AIFC_FUZZ_CHECK(whole.result == split.result);
  AIFC_FUZZ_CHECK(whole.status == split.status);
  // An error may be found at another byte when split (a line is checked as it grows), so the
  // body handed on before it may differ; a response that parsed must be the same.
  if (whole.result != aifc::detail::HttpResponseParser::Result::error) {
    AIFC_FUZZ_CHECK(whole == split);
  }
  return 0;
}
