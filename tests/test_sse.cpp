#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "stream/sse.hpp"

namespace {

struct Collected {
  std::vector<std::string> data;
  std::vector<std::string> events;
};

Collected feed_in_pieces(const std::string& stream, std::size_t piece) {
  aifc::SseParser parser;
  Collected c;
  for (std::size_t i = 0; i < stream.size(); i += piece) {
    parser.feed(std::string_view(stream).substr(i, piece), [&](const aifc::SseEvent& e) {
      c.data.emplace_back(e.data);
      c.events.emplace_back(e.event);
    });
  }
  return c;
}

}  // namespace

TEST_CASE("sse: events split at every possible byte give the same events") {
  const std::string stream =
      ": keep-alive comment\r\n"
      "data: {\"a\":1}\r\n\r\n"
      "event: error\n"
      "data: first line\n"
      "data: second line\n\n"
      "data:no-space\r\r"
      "data: [DONE]\n\n";
  const std::vector<std::string> expected = {"{\"a\":1}", "first line\nsecond line", "no-space",
                                             "[DONE]"};
  for (std::size_t piece = 1; piece <= stream.size(); ++piece) {
    CAPTURE(piece);
    const auto c = feed_in_pieces(stream, piece);
    REQUIRE(c.data == expected);
    CHECK(c.events[1] == "error");
    CHECK(c.events[0].empty());
  }
}

TEST_CASE("sse: a CRLF split between two pieces is one line end") {
  aifc::SseParser p;
  std::vector<std::string> got;
  auto on = [&](const aifc::SseEvent& e) { got.emplace_back(e.data); };
  p.feed("data: x\r", on);
  p.feed("\n\r", on);
  CHECK(got == std::vector<std::string>{"x"});
  p.feed("\ndata: y\n\n", on);
  CHECK(got == std::vector<std::string>{"x", "y"});
}

TEST_CASE("sse: an event without its blank line is partial, not dispatched") {
  aifc::SseParser p;
  int events = 0;
  p.feed("data: {\"choices\":[]}\n", [&](const aifc::SseEvent&) { ++events; });
  CHECK(events == 0);
  CHECK(p.has_partial_event());
  p.reset();
  CHECK_FALSE(p.has_partial_event());
  p.feed("data: partial line without end", [&](const aifc::SseEvent&) { ++events; });
  CHECK(p.has_partial_event());
}

TEST_CASE("sse: comments, unknown fields and empty data") {
  aifc::SseParser p;
  std::vector<std::string> got;
  p.feed(":comment only\n\nid: 7\nretry: 100\nfoo: bar\n\ndata\n\ndata:\n\n",
         [&](const aifc::SseEvent& e) { got.emplace_back(e.data); });
  // A block without data dispatches nothing; "data" alone and "data:" are empty data.
  CHECK(got == std::vector<std::string>{"", ""});
}

TEST_CASE("sse: a line or an event beyond the limit stops the parser and frees its memory") {
  int events = 0;
  auto count = [&](const aifc::SseEvent&) { ++events; };
  {
    aifc::SseParser p(1024);
    const std::string piece(300, 'x');
    p.feed("data: ", count);
    for (int i = 0; i < 10 && !p.overflowed(); ++i) p.feed(piece, count);  // no line end, ever
    CHECK(p.overflowed());
    p.feed("\n\ndata: {}\n\n", count);  // ignored once overflowed
    CHECK(events == 0);
    p.reset();
    p.feed("data: {}\n\n", count);
    CHECK(events == 1);
  }
  {
    // Many short data lines that add up to a too large event.
    aifc::SseParser p(1024);
    std::string lines;
    for (int i = 0; i < 40; ++i) lines += "data: " + std::string(40, 'y') + "\n";
    p.feed(lines, count);
    CHECK(p.overflowed());
    CHECK(events == 1);
  }
  {
    // The default limit takes a 1 MiB event.
    aifc::SseParser p;
    p.feed("data: " + std::string(1 << 20, 'z') + "\n\n", count);
    CHECK_FALSE(p.overflowed());
    CHECK(events == 2);
  }
}
