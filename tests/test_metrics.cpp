#include <doctest/doctest.h>

#include <aifc/error.hpp>
#include <aifc/metrics.hpp>
#include <random>

namespace {

constexpr aifc::MonoNanos ms = 1'000'000;

aifc::RequestRecord make(std::uint64_t index, aifc::MonoNanos send, aifc::MonoNanos ttft,
                         aifc::MonoNanos itl, int tokens) {
  aifc::RequestRecord r;
  r.index = index;
  r.scheduled_ns = send - ms / 10;
  r.send_ns = send;
  r.first_byte_ns = send + ttft / 2;
  r.first_token_ns = send + ttft;
  for (int i = 0; i < tokens; ++i) r.token_ns.push_back(send + ttft + i * itl);
  r.end_ns = r.token_ns.back() + ms;
  r.input_tokens = 100;
  r.input_tokens_exact = true;
  r.output_tokens = tokens;
  r.output_token_source = aifc::TokenSource::usage;
  r.http_status = 200;
  return r;
}

}  // namespace

TEST_CASE("metrics: summary has vLLM's keys and right values") {
  std::vector<aifc::RequestRecord> records;
  for (int i = 0; i < 10; ++i)
    records.push_back(make(i, 1000 * ms + i * 30 * ms, (10 + i) * ms, 5 * ms, 11));
  auto failed = make(10, 1000 * ms, 0, 0, 1);
  failed.error = aifc::RequestError::http_status;
  records.push_back(failed);
  auto warm = make(11, 0, ms, ms, 2);
  warm.warmup = true;
  records.push_back(warm);

  aifc::SummaryOptions o;
  o.percentile_metrics = {"ttft", "tpot", "itl", "e2el"};
  o.metric_percentiles = {50, 90, 99};
  o.goodput = aifc::GoodputSlo::parse("ttft:14.5 tpot:6");
  const nlohmann::json s = aifc::summarize(records, 2.0, o);
  for (const char* key : {"duration",
                          "completed",
                          "failed",
                          "total_input_tokens",
                          "total_output_tokens",
                          "request_throughput",
                          "request_goodput",
                          "output_throughput",
                          "total_token_throughput",
                          "mean_ttft_ms",
                          "median_ttft_ms",
                          "std_ttft_ms",
                          "p99_ttft_ms",
                          "p90_tpot_ms",
                          "mean_itl_ms",
                          "p50_e2el_ms",
                          "max_output_tokens_per_s",
                          "max_concurrent_requests",
                          "mean_lateness_ms",
                          "errors_by_kind",
                          "output_token_source"}) {
    CAPTURE(key);
    CHECK(s.contains(key));
  }
  CHECK(s["completed"] == 10);
  CHECK(s["failed"] == 1);
  CHECK(s["errors_by_kind"]["http_status"] == 1);
  CHECK(s["total_output_tokens"] == 110);
  CHECK(s["request_throughput"].get<double>() == doctest::Approx(5.0));
  // TTFTs 10..19 ms: numpy median 14.5, p90 = 18.1
  CHECK(s["median_ttft_ms"].get<double>() == doctest::Approx(14.5));
  CHECK(s["p90_ttft_ms"].get<double>() == doctest::Approx(18.1));
  CHECK(s["mean_itl_ms"].get<double>() == doctest::Approx(5.0));
  CHECK(s["mean_tpot_ms"].get<double>() == doctest::Approx(5.1));  // (50 + 1 ms) / 10
  CHECK(s["mean_lateness_ms"].get<double>() == doctest::Approx(0.1));
  // Goodput: ttft <= 14.5 ms and tpot <= 6 ms -> requests 0..4
  CHECK(s["request_goodput"].get<double>() == doctest::Approx(2.5));
  CHECK(s["max_concurrent_requests"] ==
        3);  // 30 ms apart, 61-70 ms long; the failed one not counted
}

TEST_CASE("metrics: aggregates merge exactly and agree with the exact summary") {
  std::mt19937_64 gen(1);
  std::uniform_int_distribution<aifc::MonoNanos> ttft(5 * ms, 500 * ms), itl(ms, 40 * ms);
  std::vector<aifc::RequestRecord> records;
  for (int i = 0; i < 3000; ++i)
    records.push_back(make(i, i * 10 * ms, ttft(gen), itl(gen), 1 + i % 50));
  aifc::MetricsAggregate whole, a, b, c;
  for (std::size_t i = 0; i < records.size(); ++i) {
    whole.add(records[i]);
    (i % 3 == 0 ? a : i % 3 == 1 ? b : c).add(records[i]);
  }
  aifc::MetricsAggregate merged;
  merged.merge(a);
  merged.merge(aifc::MetricsAggregate::from_json(b.to_json()));
  merged.merge(c);
  CHECK(merged.to_json() == whole.to_json());

  aifc::SummaryOptions o;
  const nlohmann::json exact = aifc::summarize(records, 30.0, o);
  const nlohmann::json approx = aifc::summarize(merged, 30.0, o);
  for (const char* key : {"mean_ttft_ms", "median_ttft_ms", "p99_ttft_ms", "mean_itl_ms",
                          "p99_itl_ms", "mean_tpot_ms"}) {
    CAPTURE(key);
    CHECK(approx[key].get<double>() == doctest::Approx(exact[key].get<double>()).epsilon(0.002));
  }
  CHECK(approx["completed"] == exact["completed"]);
}

TEST_CASE("metrics: the exact and the aggregate summary agree on every key they share") {
  std::mt19937_64 gen(7);
  std::uniform_int_distribution<aifc::MonoNanos> ttft(5 * ms, 900 * ms), itl(ms / 2, 60 * ms);
  std::uniform_int_distribution<int> pick(0, 99);
  std::vector<aifc::RequestRecord> records;
  for (int i = 0; i < 4000; ++i) {
    auto r = make(i, i * 7 * ms, ttft(gen), itl(gen), 1 + i % 64);
    const int kind = pick(gen);
    if (kind < 5) {
      r.error = aifc::RequestError::http_status;
    } else if (kind < 7) {
      r.error = aifc::RequestError::cancelled;
    } else if (kind < 9) {
      r.warmup = true;
    } else if (kind < 30) {  // a reasoning model: reasoning first, the answer later
      r.first_reasoning_ns = r.first_token_ns;
      r.first_answer_ns = r.first_token_ns + ttft(gen) / 4;
    }
    r.input_tokens_exact = kind != 50;
    r.retried = kind == 60;
    r.requested_output_tokens = kind == 70 ? 1 : 0;
    records.push_back(r);
  }
  aifc::SummaryOptions options;
  options.percentile_metrics = {"ttft", "tpot", "itl", "e2el"};
  options.metric_percentiles = {1, 25, 50, 90, 99, 99.9};
  options.goodput = aifc::GoodputSlo::parse("ttft:400 tpot:30");
  aifc::MetricsAggregate aggregate(options.goodput);
  for (const auto& r : records) aggregate.add(r);
  // Through JSON, as agents send it: the SLO travels along, so later adds judge alike.
  auto loaded = aifc::MetricsAggregate::from_json(aggregate.to_json());
  CHECK(loaded.to_json() == aggregate.to_json());
  REQUIRE(loaded.goodput().ttft_ms);
  CHECK(*loaded.goodput().ttft_ms == 400);

  const nlohmann::json exact = aifc::summarize(records, 30.0, options);
  const nlohmann::json approx = aifc::summarize(loaded, 30.0, options);
  int compared = 0;
  for (const auto& item : exact.items()) {
    // Named copies: clang before 16 cannot capture structured bindings (CAPTURE is a lambda).
    const std::string key = item.key();
    const auto& value = item.value();
    CAPTURE(key);
    if (key == "max_output_tokens_per_s" || key == "max_concurrent_requests" ||
        key == "percentiles_exact")
      continue;  // need raw records, or say which path made them
    REQUIRE(approx.contains(key));
    ++compared;
    if (value.is_number_float()) {
      // Within the histogram's 0.1% (plus rounding a sample to a whole nanosecond).
      CHECK(approx[key].get<double>() ==
            doctest::Approx(value.get<double>()).epsilon(0.001).scale(1e-6));
    } else {
      CHECK(approx[key] == value);
    }
  }
  for (const auto& item : approx.items()) {
    const std::string key = item.key();
    CAPTURE(key);
    CHECK((exact.contains(key) || key == "percentiles_exact"));
  }
  CHECK(compared > 80);
  CHECK(exact.contains("p99_ttft_reasoning_ms"));
  CHECK_FALSE(exact.contains("good"));  // not a summary key; goodput is a rate
  CHECK(exact["request_goodput"].get<double>() > 0);
  CHECK(exact["retried_requests"].get<int>() > 0);
}

TEST_CASE("metrics: a summary reads back from its JSON keys") {
  std::vector<aifc::RequestRecord> records;
  for (int i = 0; i < 50; ++i) records.push_back(make(i, i * 10 * ms, (5 + i) * ms, 2 * ms, 4));
  records[3].error = aifc::RequestError::http_status;
  aifc::SummaryOptions options;
  options.percentile_metrics = {"ttft", "itl"};
  options.metric_percentiles = {50, 99.9};
  options.goodput = aifc::GoodputSlo::parse("ttft:30");
  const aifc::Summary s = aifc::summarize(records, 2.0, options);
  REQUIRE(s.metric("ttft") != nullptr);
  CHECK(s.metric("tpot") == nullptr);      // not chosen
  CHECK(s.metric("lateness") != nullptr);  // always shown
  CHECK(s.metric("ttft")->percentiles.size() == 2);
  CHECK(s.request_goodput.has_value());
  CHECK(s.max_concurrent_requests.has_value());
  const nlohmann::json j = s;
  CHECK(j.contains("p99.9_ttft_ms"));
  const auto back = j.get<aifc::Summary>();
  CHECK(nlohmann::json(back) == j);
  CHECK(back.metric("ttft")->percentiles == s.metric("ttft")->percentiles);
  CHECK(back.errors_by_kind.at("http_status") == 1);
  // The table reads the typed summary; the configured rate shows when it is bounded.
  const auto table = aifc::format_summary_table(back, options, {12.5, std::nullopt});
  CHECK(table.find("Request rate configured (RPS):           12.50") != std::string::npos);
  CHECK(table.find("P99.9 TTFT (ms):") != std::string::npos);
  CHECK(table.find("Maximum request concurrency") == std::string::npos);
  const nlohmann::json incomplete{{"completed", 1}};
  CHECK_THROWS_AS(incomplete.get<aifc::Summary>(), aifc::Error);
}

TEST_CASE("metrics: goodput and option parsing") {
  CHECK_THROWS_WITH_AS(aifc::GoodputSlo::parse("ttft=5"), doctest::Contains("ttft:MS"),
                       aifc::Error);
  CHECK_THROWS_WITH_AS(aifc::GoodputSlo::parse("speed:5"), doctest::Contains("speed"), aifc::Error);
  CHECK_THROWS_AS(aifc::GoodputSlo::parse("ttft:abc"), aifc::Error);
  const auto g = aifc::GoodputSlo::parse("ttft:100,e2el:2000");
  CHECK(*g.ttft_ms == 100);
  CHECK(*g.e2el_ms == 2000);
  CHECK_FALSE(g.tpot_ms);
  aifc::SummaryOptions o;
  o.percentile_metrics = {"ttft", "speed"};
  CHECK_THROWS_AS(o.validate(), aifc::Error);
  o = {};
  o.metric_percentiles = {0};
  CHECK_THROWS_AS(o.validate(), aifc::Error);
}

TEST_CASE("metrics: the summary table has the familiar lines") {
  std::vector<aifc::RequestRecord> records{make(0, 0, 10 * ms, ms, 3)};
  aifc::SummaryOptions o;
  const auto table = aifc::format_summary_table(aifc::summarize(records, 1.0, o), o);
  CHECK(table.find("============ Serving Benchmark Result ============") != std::string::npos);
  CHECK(table.find("Successful requests:                     1") != std::string::npos);
  CHECK(table.find("Mean TTFT (ms):                          10.00") != std::string::npos);
  CHECK(table.find("P99 ITL (ms):") != std::string::npos);
}

TEST_CASE("metrics: a metric without samples is n/a in the table, 0 in the JSON as vLLM") {
  // A non-streaming answer: one arrival, so no inter-token gaps (and one token: no TPOT).
  std::vector<aifc::RequestRecord> records;
  for (int i = 0; i < 4; ++i) records.push_back(make(i, 1000 * ms + i * ms, 20 * ms, 0, 1));
  aifc::SummaryOptions options;
  options.percentile_metrics = {"ttft", "tpot", "itl"};
  for (const auto& summary : {aifc::summarize(records, 1.0, options), [&] {
                                aifc::MetricsAggregate a;
                                for (const auto& r : records) a.add(r);
                                return aifc::summarize(a, 1.0, options);
                              }()}) {
    CHECK(summary.metric("ttft")->count == 4);
    CHECK(summary.metric("tpot")->count == 0);
    CHECK(summary.metric("itl")->count == 0);
    CHECK(nlohmann::json(summary)["mean_tpot_ms"] == 0.0);
    const auto table = aifc::format_summary_table(summary, options);
    CHECK(table.find("Mean TPOT (ms):                          n/a") != std::string::npos);
    CHECK(table.find("P99 ITL (ms):                            n/a") != std::string::npos);
    CHECK(table.find("Mean TTFT (ms):                          20.00") != std::string::npos);
  }
}

TEST_CASE("metrics: answers longer than asked and resent requests are counted on both paths") {
  std::vector<aifc::RequestRecord> records;
  for (int i = 0; i < 6; ++i) {
    auto r = make(i, 1000 * ms, 10 * ms, ms, 8);
    r.requested_output_tokens = i < 2 ? 4 : 8;  // two answers ran past their max_tokens
    r.retried = i == 5;
    records.push_back(r);
  }
  aifc::MetricsAggregate a;
  for (const auto& r : records) a.add(r);
  const auto back = aifc::MetricsAggregate::from_json(a.to_json());
  for (const auto& s : {aifc::summarize(records, 1.0, {}), aifc::summarize(back, 1.0, {})}) {
    CHECK(s.exceeded_requested_length == 2);
    CHECK(s.retried_requests == 1);
  }
}

TEST_CASE("metrics: vLLM's client_queue_time and e2el_including_client_queue, when chosen") {
  std::vector<aifc::RequestRecord> records;
  for (int i = 0; i < 4; ++i) {
    auto r = make(i, 1000 * ms, 10 * ms, 5 * ms, 3);
    r.scheduled_ns = r.send_ns - (i + 1) * 10 * ms;  // waited 10, 20, 30, 40 ms
    records.push_back(r);
  }
  aifc::SummaryOptions o;
  nlohmann::json s = aifc::summarize(records, 1.0, o);
  CHECK_FALSE(s.contains("mean_client_queue_time_ms"));  // only when chosen, as vLLM
  o.percentile_metrics = {"ttft", "client_queue_time", "e2el_including_client_queue"};
  o.metric_percentiles = {50, 99};
  CHECK_NOTHROW(o.validate());
  for (const bool exact : {true, false}) {
    CAPTURE(exact);
    aifc::MetricsAggregate aggregate;
    for (const auto& r : records) aggregate.add(r);
    s = exact ? aifc::summarize(records, 1.0, o) : aifc::summarize(aggregate, 1.0, o);
    CHECK(s["mean_client_queue_time_ms"].get<double>() == doctest::Approx(25.0).epsilon(0.002));
    CHECK(s["p50_client_queue_time_ms"].get<double>() == doctest::Approx(25.0).epsilon(0.01));
    // E2EL is 10 + 2 * 5 + 1 = 21 ms; from the schedule 31..61 ms.
    CHECK(s["mean_e2el_including_client_queue_ms"].get<double>() ==
          doctest::Approx(46.0).epsilon(0.002));
    CHECK(s["samples"]["client_queue_time"] == 4);
  }
  const auto table = aifc::format_summary_table(s.get<aifc::Summary>(), o, {});
  CHECK(table.find("P99 Client Queue Time (ms):") != std::string::npos);
  CHECK(table.find("Mean E2EL incl. Client Queue (ms):") != std::string::npos);
  o.percentile_metrics = {"queue"};
  CHECK_THROWS_WITH_AS(o.validate(), doctest::Contains("client_queue_time"), aifc::Error);
}
