#include <doctest/doctest.h>

#include <aifc/error.hpp>
#include <aifc/timeline.hpp>
#include <string>

namespace {

constexpr aifc::MonoNanos ms = 1'000'000;

std::size_t count(const std::string& text, const std::string& what) {
  std::size_t n = 0;
  for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

// A request sent at `send` ms whose tokens came after the given gaps (the first is the TTFT).
aifc::RequestRecord request(std::uint64_t index, aifc::MonoNanos send,
                            std::initializer_list<aifc::MonoNanos> gaps) {
  aifc::RequestRecord r;
  r.index = index;
  r.scheduled_ns = r.send_ns = send * ms;
  aifc::MonoNanos t = r.send_ns;
  for (const auto gap : gaps) r.token_ns.push_back(t += gap * ms);
  r.first_token_ns = r.token_ns.empty() ? -1 : r.token_ns.front();
  r.end_ns = t + ms;
  r.output_tokens = static_cast<std::int64_t>(r.token_ns.size());
  r.http_status = 200;
  return r;
}

}  // namespace

TEST_CASE("timeline: one line per request, gaps coloured by the thresholds") {
  aifc::BenchmarkResult result;
  result.start_ns = 0;
  // Gaps 10, 10 (green), 30 (orange), 90 (red), 10 (green) against 25,50.
  result.records.push_back(request(1, 5, {40, 10, 10, 30, 90, 10}));
  result.records.push_back(request(0, 0, {20, 60}));  // sent first: drawn first
  auto failed = request(2, 8, {});
  failed.first_token_ns = -1;
  failed.end_ns = 30 * ms;
  failed.error = aifc::RequestError::http_status;
  result.records.push_back(failed);
  auto warm = request(3, 1, {5, 5});
  warm.warmup = true;  // not part of the run
  result.records.push_back(warm);

  const auto page = aifc::timeline_html(result, aifc::TimelineOptions::from_thresholds("25,50"));
  CHECK(page.rfind("<!DOCTYPE html>", 0) == 0);
  CHECK(count(page, "<g><title>request ") == 3);
  CHECK(page.find("<g><title>request 0:") < page.find("<g><title>request 1:"));
  CHECK(page.find("request 2: failed (http_status)") != std::string::npos);
  // Request 1: its TTFT, then runs green, orange, red, green; request 0: TTFT, one red gap.
  CHECK(count(page, R"(class="t")") == 2 + 1);  // two requests and the legend
  CHECK(count(page, R"(<rect class="g")") == 2);
  CHECK(count(page, R"(<rect class="o")") == 1);
  CHECK(count(page, R"(<rect class="r")") == 2);
  CHECK(count(page, R"(<rect class="f")") == 1);
  CHECK(page.find("ITL below 25 ms") != std::string::npos);
  CHECK(page.find("<script") == std::string::npos);  // self-contained, nothing runs

  aifc::TimelineOptions few;
  few.max_requests = 2;
  CHECK(aifc::timeline_html(result, few).find("The first 2 of 3 requests") != std::string::npos);
  few.title = "<b>x</b>";
  CHECK(aifc::timeline_html(result, few).find("<title>&lt;b&gt;x&lt;/b&gt;</title>") !=
        std::string::npos);
  const aifc::BenchmarkResult no_records;  // not {}: clang 14 refuses the explicit member ctor
  CHECK(aifc::timeline_html(no_records).find("keep_records was off") != std::string::npos);
}

TEST_CASE("timeline: thresholds are two numbers of ms in order") {
  CHECK(aifc::TimelineOptions::from_thresholds("10, 80").itl_red_above_ms == 80);
  CHECK_THROWS_WITH_AS(aifc::TimelineOptions::from_thresholds("25"),
                       doctest::Contains("two numbers"), aifc::Error);
  CHECK_THROWS_WITH_AS(aifc::TimelineOptions::from_thresholds("50,25"),
                       doctest::Contains("first <= second"), aifc::Error);
  CHECK_THROWS_WITH_AS(aifc::TimelineOptions::from_thresholds("25,fast"),
                       doctest::Contains("'fast' is not a number"), aifc::Error);
}
