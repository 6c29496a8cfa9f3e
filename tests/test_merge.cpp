#include <doctest/doctest.h>

#include <aifc/benchmark.hpp>
#include <aifc/clock_sync.hpp>
#include <aifc/error.hpp>
#include <aifc/merge.hpp>
#include <random>

namespace {

// A synthetic record of a successful streamed request, times relative to `zero`.
aifc::RequestRecord record(std::uint64_t index, aifc::MonoNanos zero, std::mt19937_64& rng) {
  std::uniform_int_distribution<std::int64_t> ms(1, 400);
  aifc::RequestRecord r;
  r.index = index;
  r.scheduled_ns = zero + static_cast<std::int64_t>(index) * 3'000'000;
  r.send_ns = r.scheduled_ns + ms(rng) * 1000;
  r.first_byte_ns = r.send_ns + ms(rng) * 1'000'000;
  r.first_token_ns = r.first_byte_ns + 1000;
  r.first_answer_ns = r.first_token_ns;
  const int tokens = 2 + static_cast<int>(index % 7);
  aifc::MonoNanos t = r.first_token_ns;
  for (int i = 0; i < tokens; ++i) {
    r.token_ns.push_back(t);
    t += ms(rng) * 100'000;
  }
  r.end_ns = t;
  r.input_tokens = 10 + static_cast<std::int64_t>(index % 5);
  r.input_tokens_exact = true;
  r.output_tokens = tokens;
  r.output_token_source = aifc::TokenSource::usage;
  r.http_status = 200;
  if (index % 13 == 0) {
    r.error = aifc::RequestError::http_status;
    r.http_status = 500;
    r.token_ns.clear();
    r.first_token_ns = r.first_answer_ns = -1;
    r.output_tokens = 0;
  }
  return r;
}

// One rank's part, on a clock of its own: mono and Unix origins far apart, like two machines.
aifc::ShardResult part(std::uint32_t rank, std::uint32_t nranks, std::int64_t mono_origin,
                       std::int64_t clock_offset_ns, const aifc::SummaryOptions& options,
                       std::size_t requests) {
  std::mt19937_64 rng(rank + 1);
  aifc::ShardResult p;
  p.rank = rank;
  p.node = rank < 2 ? "n1" : "n2";
  p.clock_offset_ns = clock_offset_ns;
  auto& r = p.result;
  r.anchor.mono_ns = mono_origin;
  // This machine's Unix clock is behind the reference by the offset.
  r.anchor.unix_ns = 1'800'000'000'000'000'000 - clock_offset_ns;
  r.start_ns = mono_origin + 5'000'000 + rank * 100'000;  // starts 0.1 ms apart
  r.aggregate = aifc::MetricsAggregate(options.goodput);
  for (std::size_t i = 0; i < requests; ++i) {
    auto rec = record(i * nranks + rank, r.start_ns, rng);
    r.aggregate.add(rec);
    r.end_ns = std::max(r.end_ns, rec.end_ns);
    r.records.push_back(rec);
  }
  r.duration_s = static_cast<double>(r.end_ns - r.start_ns) * 1e-9;
  r.summary = aifc::summarize(r.records, r.duration_s, options);
  return p;
}

}  // namespace

TEST_CASE("merge: the closest round trip gives the clock offset") {
  std::vector<aifc::ClockSample> samples = {
      {1000, 6500, 3000},  // round trip 2000: offset 6500 - 2000 = 4500
      {5000, 9200, 5400},  // round trip 400: offset 9200 - 5200 = 4000
      {9000, 15000, 12000},
      {20000, 0, 19000},  // came back before it left: ignored
  };
  const auto o = aifc::estimate_clock_offset(samples);
  CHECK(o.samples == 3);
  CHECK(o.round_trip_ns == 400);
  CHECK(o.offset_ns == 4000);
  CHECK(o.uncertainty_ns == 200);
  CHECK(aifc::estimate_clock_offset({}).samples == 0);
}

TEST_CASE("merge: shards on different clocks merge to the summary of the union of records") {
  aifc::SummaryOptions options;
  options.percentile_metrics = {"ttft", "tpot", "itl", "e2el"};
  options.metric_percentiles = {50, 90, 99};
  options.goodput = aifc::GoodputSlo::parse("ttft:250");
  const std::uint32_t nranks = 4;
  std::vector<aifc::ShardResult> parts;
  // Monotonic origins hours apart and clock offsets of several ms, as on four nodes.
  for (std::uint32_t r = 0; r < nranks; ++r)
    parts.push_back(part(r, nranks, 1'000'000'000'000LL * (r + 1),
                         (static_cast<std::int64_t>(r) - 2) * 3'000'000, options, 150));

  // The union, placed on the reference clock by hand.
  std::vector<aifc::RequestRecord> all;
  std::int64_t start = 0, end = 0;
  for (const auto& p : parts) {
    const std::int64_t delta =
        p.result.anchor.unix_ns - p.result.anchor.mono_ns + p.clock_offset_ns;
    start = start == 0 ? p.result.start_ns + delta : std::min(start, p.result.start_ns + delta);
    end = std::max(end, p.result.end_ns + delta);
    for (auto rec : p.result.records) {
      for (auto* t : {&rec.scheduled_ns, &rec.send_ns, &rec.first_byte_ns, &rec.first_token_ns,
                      &rec.first_answer_ns, &rec.end_ns})
        if (*t >= 0) *t += delta;
      for (auto& t : rec.token_ns) t += delta;
      all.push_back(rec);
    }
  }
  const nlohmann::json expected =
      aifc::summarize(all, static_cast<double>(end - start) * 1e-9, options);

  const auto merged = aifc::merge_shards(parts, nranks, options);
  CHECK(merged.exact);
  CHECK(merged.missing_ranks.empty());
  CHECK(merged.result.records.size() == all.size());
  // Every rank started within 0.3 ms of the first on the reference clock.
  CHECK(merged.start_spread_ns == 300'000);
  // A rank whose first request left 1 ms late started 1 ms later than planned.
  {
    auto late = parts;
    late[3].result.first_send_late_ns = 1'000'000;
    CHECK(aifc::merge_shards(late, nranks, options).start_spread_ns == 1'300'000);
  }
  const nlohmann::json merged_summary = merged.result.summary;
  for (const auto& item : expected.items()) {
    // Named copies: clang before 16 cannot capture structured bindings (CAPTURE is a lambda).
    const std::string key = item.key();
    const auto& value = item.value();
    CAPTURE(key);
    REQUIRE(merged_summary.contains(key));
    if (value.is_number_float())
      CHECK(merged_summary[key].get<double>() == doctest::Approx(value.get<double>()));
    else
      CHECK(merged_summary[key] == value);
  }
  CHECK(merged.result.summary.completed + merged.result.summary.failed == 600);
  CHECK(merged.per_node["n1"]["ranks"].size() == 2);

  // Without records the aggregates merge: counts exact, percentiles within the histogram's 0.1%.
  for (auto& p : parts) p.result.records.clear();
  const auto approx = aifc::merge_shards(parts, nranks, options);
  CHECK_FALSE(approx.exact);
  const nlohmann::json approx_summary = approx.result.summary;
  CHECK(approx_summary["completed"] == expected["completed"]);
  CHECK(approx_summary["total_output_tokens"] == expected["total_output_tokens"]);
  CHECK(approx_summary["request_goodput"].get<double>() ==
        doctest::Approx(expected["request_goodput"].get<double>()));
  for (const char* key : {"p99_ttft_ms", "median_itl_ms", "mean_e2el_ms", "p90_tpot_ms"}) {
    CAPTURE(key);
    CHECK(approx_summary[key].get<double>() ==
          doctest::Approx(expected[key].get<double>()).epsilon(0.001));
  }
}

TEST_CASE("merge: missing and repeated ranks") {
  aifc::SummaryOptions options;
  std::vector<aifc::ShardResult> parts = {part(0, 3, 1'000'000, 0, options, 10),
                                          part(2, 3, 2'000'000, 0, options, 10)};
  const auto merged = aifc::merge_shards(parts, 3, options);
  CHECK(merged.ranks == std::vector<std::uint32_t>{0, 2});
  CHECK(merged.missing_ranks == std::vector<std::uint32_t>{1});
  CHECK(merged.result.summary.completed + merged.result.summary.failed == 20);

  parts.push_back(part(2, 3, 3'000'000, 0, options, 10));
  CHECK_THROWS_AS(aifc::merge_shards(parts, 3, options), aifc::Error);
  CHECK_THROWS_AS(aifc::merge_shards({part(5, 6, 1, 0, options, 1)}, 3, options), aifc::Error);
  aifc::SummaryOptions other;
  other.goodput = aifc::GoodputSlo::parse("e2el:10");
  CHECK_THROWS_AS(aifc::merge_shards({part(0, 1, 1, 0, other, 1)}, 1, options), aifc::Error);
}

TEST_CASE("merge: a server's speculative-decoding figures are kept only from a whole run") {
  aifc::SummaryOptions options;
  aifc::SpecDecodeStats stats;
  stats.num_drafts = 10;
  stats.draft_tokens = 30;
  stats.accepted_tokens = 12;
  auto whole = part(0, 1, 1'000'000, 0, options, 5);
  whole.result.spec_decode = stats;
  const auto one = aifc::merge_shards({whole}, 1, options);
  REQUIRE(one.result.spec_decode.has_value());
  CHECK(one.result.spec_decode->accepted_tokens == 12);
  // Two ranks would each have read the same counters: no sum of them is right.
  auto first = part(0, 2, 1'000'000, 0, options, 5), second = part(1, 2, 2'000'000, 0, options, 5);
  first.result.spec_decode = second.result.spec_decode = stats;
  CHECK_FALSE(aifc::merge_shards({first, second}, 2, options).result.spec_decode.has_value());
}

TEST_CASE("merge: shards of a real run, read back from their documents, add up to the whole") {
  aifc::BenchmarkSpec spec;
  aifc::SimulatorConfig sim;
  sim.port = 0;
  sim.ttft = aifc::DelaySpec::parse("1");
  sim.itl = aifc::DelaySpec::parse("1");
  spec.simulator = sim;
  spec.dataset.num_prompts = 30;
  spec.dataset.random_input_len = 12;
  spec.dataset.random_output_len = 4;
  spec.dataset.random_range_ratio = 0.5;
  spec.load.num_requests = 30;
  spec.load.request_rate = 300;
  const auto whole = [&] {
    aifc::Benchmark b(spec);
    return b.result_document(b.run(), true);
  }();
  std::vector<aifc::ShardResult> parts;
  for (std::uint32_t rank = 0; rank < 3; ++rank) {
    auto shard = spec;
    shard.shard = {rank, 3};
    aifc::Benchmark b(shard);
    const auto doc = b.result_document(b.run(), true);
    auto read = aifc::read_result_document(nlohmann::json::parse(doc.dump()));
    CHECK(read.spec.shard.rank == rank);
    aifc::ShardResult p;
    p.rank = rank;
    p.result = std::move(read.result);
    parts.push_back(std::move(p));
  }
  const auto merged = aifc::merge_shards(parts, 3, spec.summary);
  CHECK(merged.exact);
  const auto doc = aifc::merged_result_document(spec, aifc::TokenizerApi::vllm, merged, true);
  for (const char* key : {"completed", "failed", "total_input_tokens", "total_output_tokens"})
    CHECK(doc[key] == whole[key]);
  // The same prompts went out, and vLLM's arrays are in request order: the whole run's.
  CHECK(doc["input_lens"] == whole["input_lens"]);
  // vLLM's per-request lists of the merged run: one entry per request of every rank.
  CHECK(doc["latencies"].size() == 30);
  CHECK(doc["queue_times"].size() == 30);
  CHECK(doc["rtfx"] == 0.0);
  for (const auto& latency : doc["latencies"]) CHECK(latency.get<double>() > 0.0);
  CHECK(doc["distributed"]["nranks"] == 3);
  CHECK(doc["aifc_spec"]["shard"]["nranks"] == 1);
}

TEST_CASE("merge: the shards of a ramp-up merge to the whole run's rps_change_events") {
  aifc::BenchmarkSpec spec;
  aifc::SimulatorConfig sim;
  sim.port = 0;
  spec.simulator = sim;
  spec.dataset.num_prompts = spec.load.num_requests = 40;
  spec.dataset.random_input_len = 4;
  spec.dataset.random_output_len = 2;
  spec.load.ramp_up_strategy = aifc::RampUp::linear;
  spec.load.ramp_up_start_rps = 100;
  spec.load.ramp_up_end_rps = 140;
  std::vector<aifc::ShardResult> parts;
  for (std::uint32_t rank = 0; rank < 2; ++rank) {
    auto shard = spec;
    shard.shard = {rank, 2};
    aifc::Benchmark b(shard);
    const auto doc = b.result_document(b.run(), false);
    aifc::ShardResult p;
    p.rank = rank;
    p.result = aifc::read_result_document(doc).result;
    parts.push_back(std::move(p));
  }
  const auto merged = aifc::merge_shards(parts, 2, spec.summary);
  const auto doc = aifc::merged_result_document(spec, aifc::TokenizerApi::vllm, merged, false);
  CHECK(doc["completed"] == 40);
  CHECK(doc["ramp_up_strategy"] == "linear");
  // Every whole rate from start to end, once, in order, as one process would list them.
  const auto& events = doc["rps_change_events"];
  REQUIRE(events.size() == 41);
  for (std::size_t i = 0; i < events.size(); ++i) {
    CHECK(events[i]["rps"] == 100 + static_cast<std::int64_t>(i));
    if (i > 0) CHECK(events[i]["timestamp"] >= events[i - 1]["timestamp"]);
  }
}

TEST_CASE("merge: a document that is not a result is refused by name") {
  try {
    aifc::read_result_document(nlohmann::json{{"completed", 3}});
    FAIL("no error");
  } catch (const aifc::Error& e) {
    CHECK(e.code() == aifc::ErrorCode::parse_error);
    CHECK(std::string(e.what()).find("aifc_spec") != std::string::npos);
  }
}
