#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "http/http_request_parser.hpp"

using aifc::detail::HttpRequestParser;
using Result = HttpRequestParser::Result;

namespace {

// Feeds `bytes` in pieces of `step` (0: all at once) and collects every complete request.
struct Parsed {
  std::vector<aifc::detail::HttpRequest> requests;
  Result last = Result::more;
  int error_status = 0;
};

Parsed parse(const std::string& bytes, std::size_t step = 0) {
  Parsed out;
  HttpRequestParser parser;
  std::size_t at = 0;
  while (at < bytes.size()) {
    const std::size_t n = step == 0 ? bytes.size() - at : std::min(step, bytes.size() - at);
    const char* p = bytes.data() + at;
    const char* end = p + n;
    while (p < end) {
      out.last = parser.feed(p, end);
      if (out.last == Result::error) {
        out.error_status = parser.error_status();
        return out;
      }
      if (out.last != Result::complete) break;
      out.requests.push_back(parser.request());
      parser.reset();
    }
    at += n;
  }
  return out;
}

const std::string kPost =
    "POST /v1/completions?x=1 HTTP/1.1\r\nHost: h\r\ncontent-length: 11\r\n"
    "Authorization: Bearer k\r\n\r\n{\"a\": true}";

}  // namespace

TEST_CASE("http_request_parser: a request split anywhere is the same request") {
  for (std::size_t step : {0, 1, 2, 3, 7, 64}) {
    const auto got = parse(kPost, step);
    REQUIRE(got.requests.size() == 1);
    const auto& r = got.requests[0];
    CHECK(r.method == "POST");
    CHECK(r.target == "/v1/completions?x=1");
    CHECK(r.path() == "/v1/completions");
    CHECK(r.header("AUTHORIZATION") == "Bearer k");
    CHECK(r.header("missing").empty());
    CHECK(r.body == "{\"a\": true}");
    CHECK(r.keep_alive);
  }
}

TEST_CASE("http_request_parser: pipelined requests, chunked bodies and keep-alive rules") {
  const std::string chunked =
      "POST /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
      "4\r\nabcd\r\n3;ext=1\r\nefg\r\n0\r\nTrailer: x\r\n\r\n";
  const std::string get10 = "GET /health HTTP/1.0\r\n\r\n";
  const std::string close = "GET /v1/models HTTP/1.1\r\nConnection: close\r\n\r\n";
  for (std::size_t step : {0, 1, 5}) {
    const auto got = parse("\r\n" + kPost + chunked + get10 + close, step);
    REQUIRE(got.requests.size() == 4);
    CHECK(got.requests[1].body == "abcdefg");
    CHECK(got.requests[2].method == "GET");
    CHECK_FALSE(got.requests[2].keep_alive);  // HTTP/1.0 closes unless asked
    CHECK_FALSE(got.requests[3].keep_alive);
  }
  const auto asked = parse("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
  REQUIRE(asked.requests.size() == 1);
  CHECK(asked.requests[0].keep_alive);
  // curl sends Expect: 100-continue for large bodies and waits for the 100.
  HttpRequestParser parser;
  const std::string head =
      "POST /v1/completions HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n";
  const char* p = head.data();
  CHECK(parser.feed(p, head.data() + head.size()) == Result::more);
  CHECK(parser.headers_done());
  CHECK(parser.request().expect_continue);
  CHECK(parser.idle() == false);
  CHECK(HttpRequestParser().idle());
}

TEST_CASE("http_request_parser: bad or oversized input is refused with the status to answer") {
  CHECK(parse("GARBAGE\r\n\r\n").error_status == 400);
  CHECK(parse("get / HTTP/1.1\r\n\r\n").error_status == 400);
  CHECK(parse("GET / HTTP/2.0\r\n\r\n").error_status == 400);
  CHECK(parse("GET / HTTP/1.1\r\nNo colon here\r\n\r\n").error_status == 400);
  CHECK(parse("GET / HTTP/1.1\r\nBad Name: x\r\n\r\n").error_status == 400);
  CHECK(parse("POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n").error_status == 400);
  CHECK(parse("POST / HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n").error_status ==
        400);
  CHECK(parse("POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n").error_status ==
        400);
  CHECK(parse("POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n")
            .error_status == 400);
  CHECK(parse("POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n").error_status == 400);
  CHECK(parse("POST / HTTP/1.1\r\nContent-Length: 999999999999\r\n\r\n").error_status == 413);
  CHECK(parse("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n").error_status == 400);
  CHECK(parse("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabXX").error_status ==
        400);
  CHECK(parse("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffff\r\n")
            .error_status == 413);
  // The limits hold however the bytes come: one long line, or many headers.
  const std::string long_target = "GET /" + std::string(20000, 'a') + " HTTP/1.1\r\n\r\n";
  CHECK(parse(long_target).error_status == 414);
  CHECK(parse(long_target, 100).error_status == 414);
  const std::string long_header = "GET / HTTP/1.1\r\nX: " + std::string(1 << 20, 'v');
  CHECK(parse(long_header, 4096).error_status == 431);
  std::string many = "GET / HTTP/1.1\r\n";
  for (int i = 0; i < 200; ++i) many += "X-" + std::to_string(i) + ": 1\r\n";
  CHECK(parse(many + "\r\n").error_status == 431);
  std::string big = "GET / HTTP/1.1\r\n";
  for (int i = 0; i < 90; ++i)
    big += "X-" + std::to_string(i) + ": " + std::string(1000, 'v') + "\r\n";
  CHECK(parse(big + "\r\n").error_status == 431);
}
