#include <doctest/doctest.h>

#include "stream/openai_stream.hpp"

using aifc::StreamChunk;

TEST_CASE("openai_stream: completions chunk") {
  StreamChunk c;
  REQUIRE(aifc::scan_openai_chunk(
      R"({"id":"cmpl-1","object":"text_completion","created":1,"model":"m","choices":[{"index":0,"text":" hello","logprobs":null,"finish_reason":null}],"usage":null})",
      c));
  CHECK(c.has_choices);
  CHECK(c.text == " hello");
  CHECK(c.finish_reason.empty());
  CHECK(c.completion_tokens == -1);
  CHECK_FALSE(c.is_error);
}

TEST_CASE("openai_stream: chat deltas, reasoning and role-only chunks") {
  StreamChunk c;
  REQUIRE(aifc::scan_openai_chunk(
      R"({"choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]})",
      c));
  CHECK(c.text.empty());
  REQUIRE(aifc::scan_openai_chunk(R"({"choices":[{"delta":{"reasoning_content":"think"}}]})", c));
  CHECK(c.reasoning == "think");
  CHECK(c.text.empty());
  REQUIRE(
      aifc::scan_openai_chunk(R"({"choices":[{"delta":{"reasoning":"r","content":null}}]})", c));
  CHECK(c.reasoning == "r");
  REQUIRE(aifc::scan_openai_chunk(
      R"({"choices":[{"delta":{"content":"a\"b"},"finish_reason":"stop"}]})", c));
  CHECK(c.text == R"(a\"b)");
  CHECK(c.finish_reason == "stop");
}

TEST_CASE("openai_stream: usage chunk and server stamp") {
  StreamChunk c;
  REQUIRE(aifc::scan_openai_chunk(
      R"({"choices":[],"usage":{"prompt_tokens":12,"total_tokens":20,"completion_tokens":8},"aifc_sent_ns":123456789})",
      c));
  CHECK_FALSE(c.has_choices);
  CHECK(c.prompt_tokens == 12);
  CHECK(c.completion_tokens == 8);
  CHECK(c.server_sent_ns == 123456789);
}

TEST_CASE("openai_stream: error objects in both shapes") {
  StreamChunk c;
  REQUIRE(aifc::scan_openai_chunk(R"({"error":{"message":"boom","type":"x","code":500}})", c));
  CHECK(c.is_error);
  CHECK(c.error_message == "boom");
  REQUIRE(aifc::scan_openai_chunk(R"({"object":"error","message":"model gone","code":404})", c));
  CHECK(c.is_error);
  CHECK(c.error_message == "model gone");
  REQUIRE(aifc::scan_openai_chunk(R"({"error":null,"choices":[]})", c));
  CHECK_FALSE(c.is_error);
}

TEST_CASE("openai_stream: malformed payloads are rejected") {
  StreamChunk c;
  for (const char* bad :
       {"", "{", "{\"choices\":[{\"text\":\"broken", "[1,2]", "{\"a\":1} trailing", "{\"a\":tru}",
        "{\"a\":1,}", "{\"a\":\"ctl\x01\"}", "not json", "{\"a\":-}", "{\"a\":012}",
        "{\"usage\":{\"prompt_tokens\":-07}}", "{\"a\":\"bad \\c escape\"}", "{\"a\":\"\\u12\"}",
        "{\"a\":\"\\u12g4\"}"}) {
    CAPTURE(bad);
    CHECK_FALSE(aifc::scan_openai_chunk(bad, c));
  }
  CHECK(aifc::scan_openai_chunk(R"( { "nested" : {"deep":[1,2.5e3,{"x":[]}]}, "t": true } )", c));
  CHECK(aifc::scan_openai_chunk(R"({"a":0,"b":-0.5,"c":0e1})", c));
  CHECK(aifc::scan_openai_chunk(R"({"a":"\" \\ \/ \b \f \n \r \t \u00e9 \uD83D\uDE00"})", c));
}

TEST_CASE("openai_stream: unescaping") {
  std::string out;
  aifc::append_json_unescaped(out, R"(a\nb\t\"q\" \u00e9 \ud83d\ude00 \\)");
  CHECK(out == "a\nb\t\"q\" \xC3\xA9 \xF0\x9F\x98\x80 \\");
  out.clear();
  aifc::append_json_unescaped(out, R"(cut \u00)");
  CHECK(out == "cut ?");
  // A lone surrogate (JSON allows it; UTF-8 has no form for it) becomes U+FFFD.
  out.clear();
  aifc::append_json_unescaped(out, R"(\uDDDD|\uD83Dx)");
  CHECK(out == "\xEF\xBF\xBD|\xEF\xBF\xBDx");
}

TEST_CASE("openai_stream: counts that are no whole numbers in range are treated as absent") {
  aifc::StreamChunk c;
  REQUIRE(aifc::scan_openai_chunk(
      R"({"usage":{"prompt_tokens":99999999999999999999,"completion_tokens":1e309}})", c));
  CHECK(c.prompt_tokens == -1);
  CHECK(c.completion_tokens == -1);
  REQUIRE(aifc::scan_openai_chunk(R"({"usage":{"prompt_tokens":12.5,"completion_tokens":7}})", c));
  CHECK(c.prompt_tokens == -1);
  CHECK(c.completion_tokens == 7);
  REQUIRE(aifc::scan_openai_chunk(
      R"({"usage":{"prompt_tokens":999999999999999999,"completion_tokens":0}})", c));
  CHECK(c.prompt_tokens == 999999999999999999);  // 18 digits still fit
  CHECK(c.completion_tokens == 0);
  // A negative count is no count (found by fuzz/fuzz_openai_chunk.cpp).
  REQUIRE(aifc::scan_openai_chunk(R"({"usage":{"prompt_tokens":12,"completion_tokens":-2}})", c));
  CHECK(c.prompt_tokens == 12);
  CHECK(c.completion_tokens == -1);
  REQUIRE(aifc::scan_openai_chunk(R"({"aifc_sent_ns":-5})", c));
  CHECK(c.server_sent_ns == -1);
}
