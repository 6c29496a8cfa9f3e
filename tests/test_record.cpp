#include <doctest/doctest.h>

#include <aifc/record.hpp>
#include <cmath>
#include <nlohmann/json.hpp>

#include "metrics/record_json.hpp"

TEST_CASE("record: derived latencies") {
  aifc::RequestRecord r;
  r.scheduled_ns = 1'000'000'000;
  r.send_ns = 1'002'000'000;
  r.first_token_ns = 1'052'000'000;
  r.end_ns = 1'152'000'000;
  r.output_tokens = 11;
  CHECK(r.ttft_s() == doctest::Approx(0.050));
  CHECK(r.e2el_s() == doctest::Approx(0.150));
  CHECK(r.tpot_s() == doctest::Approx(0.010));
  CHECK(r.lateness_s() == doctest::Approx(0.002));
  r.output_tokens = 1;
  CHECK(std::isnan(r.tpot_s()));
}

TEST_CASE("record: JSON round trip keeps every field") {
  aifc::RequestRecord r;
  r.index = 42;
  r.scheduled_ns = 1;
  r.send_ns = 2;
  r.first_byte_ns = 3;
  r.first_token_ns = 4;
  r.end_ns = 9;
  r.token_ns = {4, 6, 9};
  r.input_tokens = 100;
  r.input_tokens_exact = true;
  r.output_tokens = 3;
  r.output_token_source = aifc::TokenSource::usage;
  r.http_status = 200;
  r.error = aifc::RequestError::timeout_read;
  r.error_message = "slow";
  const auto back = nlohmann::json(r).get<aifc::RequestRecord>();
  CHECK(back.index == 42);
  CHECK(back.token_ns == r.token_ns);
  CHECK(back.error == aifc::RequestError::timeout_read);
  CHECK(back.output_token_source == aifc::TokenSource::usage);
  CHECK(back.input_tokens_exact);
  CHECK(aifc::to_string(aifc::RequestError::connection_closed) == "connection_closed");
  CHECK(aifc::request_error_from_string("timeout_first_token") ==
        aifc::RequestError::timeout_first_token);
}

TEST_CASE("record: the text writer gives the text of the JSON value, byte for byte") {
  aifc::RequestRecord full;
  full.index = 18446744073709551615ull;
  full.warmup = true;
  full.scheduled_ns = -1;
  full.send_ns = 1'700'000'000'000'000'000;
  full.token_ns = {4, -6, 9};
  full.server_token_ns = {3};
  full.input_tokens_exact = true;
  full.output_token_source = aifc::TokenSource::chunks;
  full.retried = true;
  full.http_status = 503;
  full.error = aifc::RequestError::http_status;
  const std::string texts[] = {"",
                               "plain text",
                               "quote \" backslash \\ slash / newline \n tab \t del \x7f",
                               "Zähle 日本語 😀",
                               std::string("cut \xE6\x97 and \xFF bytes"),
                               std::string("nul \0 inside", 13)};
  for (const auto& text : texts) {
    CAPTURE(text);
    for (auto r : {aifc::RequestRecord{}, full}) {
      r.error_message = text;
      r.generated_text = text + text;
      std::string out = "prefix:";
      aifc::append_record_json(out, r);
      CHECK(out == "prefix:" + nlohmann::json(r).dump(-1, ' ', false,
                                                      nlohmann::json::error_handler_t::replace));
    }
  }
}
