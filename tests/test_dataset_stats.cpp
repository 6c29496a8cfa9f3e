#include <doctest/doctest.h>

#include <aifc/dataset_stats.hpp>
#include <regex>
#include <string>

namespace {

aifc::RequestRecord record(std::uint64_t index, std::int64_t input, std::int64_t output,
                           bool warmup = false) {
  aifc::RequestRecord r;
  r.index = index;
  r.input_tokens = input;
  r.requested_output_tokens = output;
  r.output_tokens = output;
  r.warmup = warmup;
  return r;
}

int bars_count(const std::string& page, const std::string& id) {
  const auto from = page.find("id=\"" + id + "\"");
  const auto to = page.find("</svg>", from);
  REQUIRE(from != std::string::npos);
  int total = 0;
  const std::string svg = page.substr(from, to - from);
  const std::regex count(R"(tokens: (\d+) requests</title>)");
  for (auto it = std::sregex_iterator(svg.begin(), svg.end(), count); it != std::sregex_iterator();
       ++it)
    total += std::stoi((*it)[1]);
  return total;
}

}  // namespace

TEST_CASE("dataset_stats: three histograms of the prompts, warm-ups left out") {
  aifc::BenchmarkResult result;
  for (std::uint64_t i = 0; i < 50; ++i) result.records.push_back(record(i, 100 + i, 10 + i % 5));
  result.records.push_back(record(0, 9999, 9999, true));
  const std::string page = aifc::dataset_stats_html(result, "stats <of> a run");
  CHECK(page.find("<title>stats &lt;of&gt; a run</title>") != std::string::npos);
  CHECK(bars_count(page, "prompt-tokens") == 50);
  CHECK(bars_count(page, "output-tokens") == 50);
  CHECK(bars_count(page, "total-tokens") == 50);
  CHECK(page.find("50 requests: mean 124.5, min 100, median 124.5, p99 148.51, max 149 tokens") !=
        std::string::npos);
  CHECK(page.find("9999") == std::string::npos);
  // Equal lengths make one full bar, not a division by zero.
  aifc::BenchmarkResult same;
  for (std::uint64_t i = 0; i < 4; ++i) same.records.push_back(record(i, 7, 3));
  const std::string flat = aifc::dataset_stats_html(same);
  CHECK(bars_count(flat, "prompt-tokens") == 4);
  CHECK(flat.find("4 requests: mean 7.0, min 7, median 7, p99 7, max 7 tokens") !=
        std::string::npos);
  // Without records the page says why it is empty.
  const aifc::BenchmarkResult empty;
  CHECK(aifc::dataset_stats_html(empty).find("no per-request records") != std::string::npos);
}
