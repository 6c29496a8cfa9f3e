// libFuzzer harness: the HTTP/1.1 request parser of an event-loop server. The first byte chooses
// how the bytes are split; the rest is what a client sent, perhaps several pipelined requests.
// Checked: what it holds stays within its limits, a body is never longer than its limit, the
// requests it finds and where it stops do not depend on the split.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "fuzz_check.hpp"
#include "http/http_request_parser.hpp"

namespace {

using Parser = aifc::detail::HttpRequestParser;

struct Outcome {
  std::vector<std::string> requests;  // method, target, body and keep-alive of each
  int error_status = 0;
  bool operator==(const Outcome&) const = default;
};

Outcome parse(std::string_view bytes, std::size_t piece) {
  Parser parser;
  Outcome out;
  for (std::size_t at = 0; at < bytes.size() && out.error_status == 0; at += piece) {
    const auto part = bytes.substr(at, piece);
    const char* p = part.data();
    const char* end = p + part.size();
    while (p < end) {
      const auto result = parser.feed(p, end);
      AIFC_FUZZ_CHECK(parser.request().body.size() <= Parser::kMaxBody);
      AIFC_FUZZ_CHECK(parser.request().headers.size() <= Parser::kMaxHeaders);
      if (result == Parser::Result::error) {
        out.error_status = parser.error_status();
        AIFC_FUZZ_CHECK(out.error_status >= 400 && out.error_status < 500);
        break;
      }
      if (result == Parser::Result::more) break;
      const auto& r = parser.request();
      out.requests.push_back(r.method + " " + r.target + " " + r.body +
                             (r.keep_alive ? " keep" : " close"));
      parser.reset();
    }
  }
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  const std::size_t piece = 1 + data[0] % 23;
  const std::string_view bytes(reinterpret_cast<const char*>(data) + 1, size - 1);
  const auto whole = parse(bytes, bytes.size() + 1);
  const auto split = parse(bytes, piece);
  // A line is checked as it grows, so a limit may be found at another byte when split; the
  // requests completed before an error, and everything when there is none, are the same.
  if (whole.error_status == 0 && split.error_status == 0) {
    AIFC_FUZZ_CHECK(whole == split);
  } else {
    AIFC_FUZZ_CHECK(whole.error_status != 0 && split.error_status != 0);
  }
  return 0;
}
