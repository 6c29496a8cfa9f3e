#include <doctest/doctest.h>

#include <aifc/server_metrics.hpp>
#include <string>

namespace {

// What a vLLM server with speculative decoding writes (prometheus_client's text format): HELP
// and TYPE lines, _created samples beside the counters, two engines, float values.
std::string vllm_metrics(double drafts, double draft_tokens, double accepted, double pos0,
                         double pos1) {
  const std::string labels0 = "engine=\"0\",model_name=\"org/model {v2}\"";
  const std::string labels1 = "engine=\"1\",model_name=\"org/model {v2}\"";
  auto line = [](const std::string& name, const std::string& labels, double value) {
    return "vllm:spec_decode_" + name + "{" + labels + "} " + std::to_string(value) + "\n";
  };
  std::string text =
      "# HELP vllm:num_requests_running Number of requests in model execution batches.\n"
      "# TYPE vllm:num_requests_running gauge\n"
      "vllm:num_requests_running{engine=\"0\",model_name=\"org/model {v2}\"} 3.0\n"
      "# HELP vllm:spec_decode_num_drafts_total Number of spec decoding drafts.\n"
      "# TYPE vllm:spec_decode_num_drafts_total counter\n";
  text +=
      line("num_drafts_total", labels0, drafts / 2) + line("num_drafts_total", labels1, drafts / 2);
  text += line("num_drafts_created", labels0, 1.7e9);  // not a count: skipped
  text += "# TYPE vllm:spec_decode_num_draft_tokens_total counter\n";
  text += line("num_draft_tokens_total", labels0, draft_tokens);
  text += "# TYPE vllm:spec_decode_num_accepted_tokens_total counter\r\n";  // CRLF too
  text += line("num_accepted_tokens_total", labels0, accepted);
  text += line("num_accepted_tokens_per_pos_total", labels0 + ",position=\"0\"", pos0 / 2);
  text += line("num_accepted_tokens_per_pos_total", labels1 + ",position=\"0\"", pos0 / 2);
  text += line("num_accepted_tokens_per_pos_total", labels0 + ",position=\"1\"", pos1);
  return text;
}

}  // namespace

TEST_CASE("server metrics: vLLM's spec-decode counters are summed over engines and models") {
  const auto counters = aifc::parse_spec_decode_counters(vllm_metrics(100, 200, 130, 80, 50));
  REQUIRE(counters.has_value());
  CHECK(counters->num_drafts == doctest::Approx(100));
  CHECK(counters->num_draft_tokens == doctest::Approx(200));
  CHECK(counters->num_accepted_tokens == doctest::Approx(130));
  REQUIRE(counters->accepted_per_position.size() == 2);
  CHECK(counters->accepted_per_position.at(0) == doctest::Approx(80));
  CHECK(counters->accepted_per_position.at(1) == doctest::Approx(50));
}

TEST_CASE("server metrics: a server without speculative decoding has no counters") {
  CHECK_FALSE(aifc::parse_spec_decode_counters("").has_value());
  CHECK_FALSE(aifc::parse_spec_decode_counters("# TYPE vllm:num_requests_running gauge\n"
                                               "vllm:num_requests_running{engine=\"0\"} 1.0\n")
                  .has_value());
  // llama.cpp's names, and a page that is no Prometheus text at all.
  CHECK_FALSE(aifc::parse_spec_decode_counters("llamacpp:tokens_predicted_total 12\n").has_value());
  CHECK_FALSE(aifc::parse_spec_decode_counters("<html>not found</html>").has_value());
}

TEST_CASE("server metrics: malformed samples are skipped, not failed") {
  const std::string text =
      "vllm:spec_decode_num_drafts_total{engine=\"0\"} 10\n"
      "vllm:spec_decode_num_drafts_total{engine=\"1\"} NaN\n"
      "vllm:spec_decode_num_drafts_total{engine=\"2\"}\n"
      "vllm:spec_decode_num_drafts_total{engine=\"3 12\n"
      "vllm:spec_decode_num_drafts_total{engine=\"4\"} 12abc\n"
      "vllm:spec_decode_num_draft_tokens_total 30 1700000000000\n"  // a timestamp after it
      "vllm:spec_decode_num_accepted_tokens_per_pos_total{position=\"x\"} 5\n"
      "vllm:spec_decode_num_accepted_tokens_per_pos_total{position=\"1\",a=\"q\\\"}\"} 4\n";
  const auto counters = aifc::parse_spec_decode_counters(text);
  REQUIRE(counters.has_value());
  CHECK(counters->num_drafts == doctest::Approx(10));
  CHECK(counters->num_draft_tokens == doctest::Approx(30));
  REQUIRE(counters->accepted_per_position.size() == 1);
  CHECK(counters->accepted_per_position.at(1) == doctest::Approx(4));
}

TEST_CASE("server metrics: the stats are vLLM's differences of two readings") {
  const auto before = *aifc::parse_spec_decode_counters(vllm_metrics(100, 200, 130, 80, 50));
  auto after = *aifc::parse_spec_decode_counters(vllm_metrics(300, 600, 370, 230, 140));
  after.accepted_per_position[2] = 6;  // a position first seen after
  const auto stats = aifc::spec_decode_stats(before, after);
  REQUIRE(stats.has_value());
  CHECK(stats->num_drafts == 200);
  CHECK(stats->draft_tokens == 400);
  CHECK(stats->accepted_tokens == 240);
  CHECK(stats->acceptance_rate == doctest::Approx(60.0));  // percent
  CHECK(stats->acceptance_length == doctest::Approx(2.2));
  REQUIRE(stats->per_position_acceptance_rates.size() == 3);
  CHECK(stats->per_position_acceptance_rates[0] == doctest::Approx(0.75));  // fractions
  CHECK(stats->per_position_acceptance_rates[1] == doctest::Approx(0.45));
  CHECK(stats->per_position_acceptance_rates[2] == doctest::Approx(0.03));
  // A position the second reading lacks counts as unchanged, as in vLLM.
  auto without = after;
  without.accepted_per_position.erase(1);
  CHECK(aifc::spec_decode_stats(before, without)->per_position_acceptance_rates[1] == 0.0);
}

TEST_CASE("server metrics: nothing drafted in between, or a restarted server, is no stats") {
  const auto reading = *aifc::parse_spec_decode_counters(vllm_metrics(100, 200, 130, 80, 50));
  CHECK_FALSE(aifc::spec_decode_stats(reading, reading).has_value());
  const auto restarted = *aifc::parse_spec_decode_counters(vllm_metrics(10, 20, 13, 8, 5));
  CHECK_FALSE(aifc::spec_decode_stats(reading, restarted).has_value());
}

TEST_CASE("server metrics: the result keys are vLLM's and read back; the table is vLLM's") {
  aifc::SpecDecodeStats stats;
  stats.num_drafts = 200;
  stats.draft_tokens = 400;
  stats.accepted_tokens = 240;
  stats.acceptance_rate = 60;
  stats.acceptance_length = 2.2;
  stats.per_position_acceptance_rates = {0.75, 0.45};
  nlohmann::json doc = nlohmann::json::object();
  CHECK(aifc::format_spec_decode_table(doc).empty());
  CHECK_FALSE(aifc::read_spec_decode_keys(doc).has_value());
  aifc::add_spec_decode_keys(doc, stats);
  CHECK(doc["spec_decode_acceptance_rate"] == 60.0);
  CHECK(doc["spec_decode_acceptance_length"] == 2.2);
  CHECK(doc["spec_decode_num_drafts"] == 200);
  CHECK(doc["spec_decode_draft_tokens"] == 400);
  CHECK(doc["spec_decode_accepted_tokens"] == 240);
  CHECK(doc["spec_decode_per_position_acceptance_rates"] == nlohmann::json({0.75, 0.45}));
  const auto back = aifc::read_spec_decode_keys(doc);
  REQUIRE(back.has_value());
  CHECK(back->accepted_tokens == 240);
  CHECK(back->per_position_acceptance_rates == stats.per_position_acceptance_rates);
  const std::string table = aifc::format_spec_decode_table(doc);
  CHECK(table.find("---------------Speculative Decoding---------------\n") == 0);
  CHECK(table.find("Acceptance rate (%):                     60.00") != std::string::npos);
  CHECK(table.find("Acceptance length:                       2.20") != std::string::npos);
  CHECK(table.find("Drafts:                                  200") != std::string::npos);
  CHECK(table.find("Per-position acceptance (%):\n  Position 0:") != std::string::npos);
  CHECK(table.find("  Position 1:                            45.00") != std::string::npos);
}
