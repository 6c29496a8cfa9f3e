#include <doctest/doctest.h>

#include <string>

#include "http/http_response_parser.hpp"

namespace {

// Collects what the parser hands on.
struct Collect {
  int status = 0;
  bool event_stream = false;
  int header_calls = 0;
  std::string body;
  bool on_headers(int s, bool es) {
    status = s;
    event_stream = es;
    ++header_calls;
    return true;
  }
  bool on_body(const char* data, std::size_t len) {
    body.append(data, len);
    return true;
  }
};

using Parser = aifc::detail::HttpResponseParser;

const std::string kChunkedStream =
    "HTTP/1.1 100 Continue\r\n\r\n"
    "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n"
    "Keep-Alive: timeout=5, max=100\r\n\r\n"
    "11\r\ndata: {\"a\":\"x\"}\n\n\r\n"
    "e\r\ndata: [DONE]\n\n\r\n"
    "0\r\n\r\n";

}  // namespace

TEST_CASE("http_response_parser: a chunked stream split at every byte gives the same result") {
  Parser whole;
  Collect expected;
  REQUIRE(whole.feed(kChunkedStream.data(), kChunkedStream.size(), expected) ==
          Parser::Result::complete);
  CHECK(expected.status == 200);
  CHECK(expected.event_stream);
  CHECK(expected.header_calls == 1);  // the interim 100 is skipped
  CHECK(expected.body == "data: {\"a\":\"x\"}\n\ndata: [DONE]\n\n");
  CHECK(whole.keep_alive());
  CHECK(whole.keep_alive_hint().timeout_s == 5);
  CHECK(whole.keep_alive_hint().max == 100);
  for (std::size_t cut = 1; cut < kChunkedStream.size(); ++cut) {
    CAPTURE(cut);
    Parser p;
    Collect got;
    CHECK(p.feed(kChunkedStream.data(), cut, got) == Parser::Result::more);
    CHECK(p.feed(kChunkedStream.data() + cut, kChunkedStream.size() - cut, got) ==
          Parser::Result::complete);
    CHECK(got.body == expected.body);
    CHECK(got.status == 200);
  }
  // Byte by byte, too.
  Parser p;
  Collect got;
  Parser::Result last = Parser::Result::more;
  for (char c : kChunkedStream) last = p.feed(&c, 1, got);
  CHECK(last == Parser::Result::complete);
  CHECK(got.body == expected.body);
}

TEST_CASE("http_response_parser: framing by length, by close, and Connection: close") {
  const std::string sized =
      "HTTP/1.1 404 Not Found\r\nContent-Length: 4\r\nConnection: close\r\n\r\nnope";
  Parser p;
  Collect got;
  CHECK(p.feed(sized.data(), sized.size(), got) == Parser::Result::complete);
  CHECK(got.status == 404);
  CHECK(got.body == "nope");
  CHECK_FALSE(p.keep_alive());

  const std::string until_close = "HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n{}";
  Parser q;
  Collect body;
  CHECK(q.feed(until_close.data(), until_close.size(), body) == Parser::Result::more);
  CHECK(q.complete_at_eof());
  CHECK_FALSE(q.keep_alive());
  CHECK(body.body == "{}");
}

TEST_CASE("http_response_parser: numbers a server cannot mean are errors, not wrapped values") {
  auto fails = [](const std::string& response) {
    Parser p;
    Collect got;
    return p.feed(response.data(), response.size(), got) == Parser::Result::error;
  };
  CHECK(fails("HTTP/1.1 2xx OK\r\n\r\n"));
  CHECK(fails("HTTP/1.1 099 Odd\r\n\r\n"));
  CHECK(fails("HTTP/1.1 200 OK\r\nContent-Length: " + std::string(90, '9') + "\r\n\r\n"));
  CHECK(fails("HTTP/1.1 200 OK\r\nContent-Length: 12a\r\n\r\n"));
  CHECK(fails("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"));
  CHECK(fails("SSH-2.0-OpenSSH_9.2\r\n"));
  CHECK_FALSE(fails("HTTP/1.1 200 OK\r\nContent-Length: 999999999999999\r\n\r\n"));
}

TEST_CASE("http_response_parser: junk without a line end is refused, never piled up") {
  const std::string head = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
  // A chunk, then bytes that are not its CRLF, a piece at a time: refused at the first one.
  {
    Parser p;
    Collect got;
    const std::string start = head + "3\r\nabc";
    REQUIRE(p.feed(start.data(), start.size(), got) == Parser::Result::more);
    const std::string junk(4096, 'x');
    Parser::Result r = Parser::Result::more;
    for (int i = 0; i < 1000 && r == Parser::Result::more; ++i)
      r = p.feed(junk.data(), junk.size(), got);
    CHECK(r == Parser::Result::error);
    CHECK(p.error() == "chunk not followed by CRLF");
    CHECK(got.body == "abc");
  }
  // The CRLF split over two feeds is still fine.
  {
    Parser p;
    Collect got;
    const std::string a = head + "3\r\nabc\r", b = "\n0\r\n\r\n";
    REQUIRE(p.feed(a.data(), a.size(), got) == Parser::Result::more);
    CHECK(p.feed(b.data(), b.size(), got) == Parser::Result::complete);
    CHECK(got.body == "abc");
  }
  // Trailers without an end: refused past 64 KiB, with at most that much held.
  {
    Parser p;
    Collect got;
    const std::string start = head + "0\r\nX-Trailer: ";
    REQUIRE(p.feed(start.data(), start.size(), got) == Parser::Result::more);
    const std::string junk(4096, 'y');
    Parser::Result r = Parser::Result::more;
    std::size_t most = 0;
    for (int i = 0; i < 1000 && r == Parser::Result::more; ++i) {
      r = p.feed(junk.data(), junk.size(), got);
      most = std::max(most, p.buffered_bytes());
    }
    CHECK(r == Parser::Result::error);
    CHECK(p.error() == "trailer too long");
    CHECK(most <= 65536 + junk.size());
  }
}
