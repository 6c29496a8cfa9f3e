// libFuzzer harness: the SSE parser. The first two bytes choose how the stream is split and the
// parser's cap; the rest is the stream. Checked: no event passes the cap, and, unless the cap was
// hit, feeding the stream in pieces gives the same events as feeding it whole.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "fuzz_check.hpp"
#include "stream/sse.hpp"

namespace {

struct Parsed {
  std::vector<std::string> events;
  bool overflowed = false;
  bool partial = false;
};

Parsed parse(std::string_view bytes, std::size_t piece, std::size_t cap) {
  aifc::SseParser parser(cap);
  Parsed out;
  for (std::size_t at = 0; at < bytes.size(); at += piece)
    parser.feed(bytes.substr(at, piece), [&](const aifc::SseEvent& e) {
      AIFC_FUZZ_CHECK(e.data.size() <= cap);
      AIFC_FUZZ_CHECK(e.event.size() <= 256);
      out.events.push_back(std::string(e.event) + '\x01' + std::string(e.data));
    });
  out.overflowed = parser.overflowed();
  out.partial = parser.has_partial_event();
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  const std::size_t piece = 1 + data[0] % 17;
  const std::size_t cap = data[1] < 128 ? 8 + data[1] : aifc::SseParser::kDefaultMaxEventBytes;
  const std::string_view bytes(reinterpret_cast<const char*>(data) + 2, size - 2);
  const auto whole = parse(bytes, bytes.size() + 1, cap);
  const auto split = parse(bytes, piece, cap);
  if (!whole.overflowed && !split.overflowed) {
    AIFC_FUZZ_CHECK(whole.events == split.events);
    AIFC_FUZZ_CHECK(whole.partial == split.partial);
  }
  return 0;
}
