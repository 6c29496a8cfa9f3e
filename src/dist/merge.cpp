#include "aifc/merge.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <set>

#include "aifc/clock_sync.hpp"
#include "aifc/error.hpp"
#include "util/json_numbers.hpp"

namespace aifc {
namespace {

// True when the part kept every record its aggregate counted, so that an exact summary of the
// union is possible.
bool has_all_records(const BenchmarkResult& r) {
  std::uint64_t n = 0;
  for (const auto& rec : r.records) n += rec.warmup ? 0 : 1;
  return n == r.aggregate.counted();
}

void shift(MonoNanos& t, std::int64_t delta) {
  if (t >= 0) t += delta;  // -1: did not happen
}

void shift(RequestRecord& r, std::int64_t delta) {
  for (MonoNanos* t : {&r.scheduled_ns, &r.send_ns, &r.first_byte_ns, &r.first_token_ns,
                       &r.first_reasoning_ns, &r.first_answer_ns, &r.end_ns})
    shift(*t, delta);
  for (auto& t : r.token_ns) shift(t, delta);
  // The server's stamps move with the client's, so their difference (send-stamp accuracy)
  // stays what the agent measured.
  for (auto& t : r.server_token_ns) shift(t, delta);
}

double ms(std::int64_t ns) { return static_cast<double>(ns) * 1e-6; }

}  // namespace

MergedResult merge_shards(std::vector<ShardResult> parts, std::uint32_t nranks,
                          const SummaryOptions& summary) {
  if (nranks == 0) throw Error(ErrorCode::invalid_argument, "merge: nranks must be at least 1");
  std::sort(parts.begin(), parts.end(),
            [](const ShardResult& a, const ShardResult& b) { return a.rank < b.rank; });
  MergedResult m;
  m.result.aggregate = MetricsAggregate(summary.goodput);
  std::set<std::uint32_t> seen;
  for (const auto& p : parts) {
    if (p.rank >= nranks)
      throw Error(ErrorCode::invalid_argument,
                  fmt::format("merge: rank {} is beyond the {} ranks of the run", p.rank, nranks));
    if (!seen.insert(p.rank).second)
      throw Error(ErrorCode::invalid_argument,
                  fmt::format("merge: rank {} is reported twice", p.rank));
    m.ranks.push_back(p.rank);
  }
  for (std::uint32_t r = 0; r < nranks; ++r)
    if (!seen.count(r)) m.missing_ranks.push_back(r);
  if (parts.empty()) return m;

  // Each part's clocks, mapped onto the reference clock (Unix time of the reference host).
  std::vector<std::int64_t> delta(parts.size());
  std::int64_t start = 0, end = 0;
  for (std::size_t i = 0; i < parts.size(); ++i) {
    const auto& r = parts[i].result;
    delta[i] = r.anchor.unix_ns - r.anchor.mono_ns + parts[i].clock_offset_ns;
    const std::int64_t s = r.start_ns + delta[i], e = r.end_ns + delta[i];
    start = i == 0 ? s : std::min(start, s);
    end = i == 0 ? e : std::max(end, e);
  }

  m.exact = true;
  for (const auto& p : parts) m.exact = m.exact && has_all_records(p.result);
  BenchmarkResult& out = m.result;
  out.anchor = ClockAnchor{start, start};
  // (each rank's first_send_late_ns is in per_rank; the merged one is the earliest rank's)
  out.start_ns = start;
  out.end_ns = end;
  out.duration_s = static_cast<double>(end - start) * 1e-9;
  // The spread is of the actual starts: each rank's planned start plus how late its first
  // request left (the planned starts of a coordinated run are one instant by construction).
  std::int64_t earliest_actual = 0, latest_actual = 0;
  std::map<std::string, nlohmann::json> nodes;
  for (std::size_t i = 0; i < parts.size(); ++i) {
    auto& p = parts[i];
    auto& r = p.result;
    if (r.aggregate.goodput().ttft_ms != summary.goodput.ttft_ms ||
        r.aggregate.goodput().tpot_ms != summary.goodput.tpot_ms ||
        r.aggregate.goodput().e2el_ms != summary.goodput.e2el_ms)
      throw Error(ErrorCode::invalid_argument,
                  fmt::format("merge: rank {} judged goodput by other objectives", p.rank));
    out.aggregate.merge(r.aggregate);
    out.interrupted = out.interrupted || r.interrupted;
    out.observer_errors += r.observer_errors;
    out.observer_events_dropped += r.observer_events_dropped;
    if (out.first_observer_error.empty()) out.first_observer_error = r.first_observer_error;
    const std::int64_t rank_start = r.start_ns + delta[i];
    const std::int64_t actual_start = rank_start + r.first_send_late_ns;
    earliest_actual = i == 0 ? actual_start : std::min(earliest_actual, actual_start);
    latest_actual = i == 0 ? actual_start : std::max(latest_actual, actual_start);
    m.per_rank.push_back({{"rank", p.rank},
                          {"node", p.node},
                          {"completed", r.aggregate.completed},
                          {"failed", r.aggregate.failed},
                          {"cancelled", r.aggregate.cancelled},
                          {"total_output_tokens", r.aggregate.total_output_tokens},
                          {"start_offset_ms", ms(rank_start - start)},
                          {"first_send_late_ms", ms(r.first_send_late_ns)},
                          {"clock_offset_ms", ms(p.clock_offset_ns)},
                          {"clock_uncertainty_ms", ms(p.clock_uncertainty_ns)},
                          {"duration_s", r.duration_s},
                          {"interrupted", r.interrupted},
                          {"records_kept", has_all_records(r)}});
    auto& node = nodes[p.node];
    if (node.is_null())
      node = {{"ranks", nlohmann::json::array()},
              {"completed", 0},
              {"failed", 0},
              {"total_output_tokens", 0}};
    node["ranks"].push_back(p.rank);
    node["completed"] = node["completed"].get<std::uint64_t>() + r.aggregate.completed;
    node["failed"] = node["failed"].get<std::uint64_t>() + r.aggregate.failed;
    node["total_output_tokens"] =
        node["total_output_tokens"].get<std::int64_t>() + r.aggregate.total_output_tokens;
    if (m.exact) {
      for (auto& rec : r.records) {
        shift(rec, delta[i]);
        out.records.push_back(std::move(rec));
      }
    }
    r.records.clear();
  }
  m.start_spread_ns = latest_actual - earliest_actual;
  // The server's speculative-decoding counters cover the run only when one part is all of it;
  // the parts of a distributed run would each read the same counters, which do not add up.
  if (nranks == 1 && parts.size() == 1) out.spec_decode = parts.front().result.spec_decode;
  for (auto& [name, node] : nodes) m.per_node[name] = std::move(node);
  // Completion order, as one process would have collected them.
  std::stable_sort(
      out.records.begin(), out.records.end(),
      [](const RequestRecord& a, const RequestRecord& b) { return a.end_ns < b.end_ns; });
  out.summary = m.exact ? summarize(out.records, out.duration_s, summary)
                        : summarize(out.aggregate, out.duration_s, summary);
  return m;
}

ResultDocument read_result_document(const nlohmann::json& doc) {
  detail::check_json_numbers(doc, "result: ");
  auto need = [&](const char* key) -> const nlohmann::json& {
    if (!doc.is_object() || !doc.contains(key))
      throw Error(ErrorCode::parse_error,
                  fmt::format("not an aifc result document: it has no \"{}\"", key));
    return doc.at(key);
  };
  ResultDocument out;
  try {
    out.spec = need("aifc_spec").get<BenchmarkSpec>();
    out.result.aggregate = MetricsAggregate::from_json(need("aggregate"));
    const auto& anchor = need("clock_anchor");
    out.result.anchor.mono_ns = anchor.at("mono_ns").get<std::int64_t>();
    out.result.anchor.unix_ns = anchor.at("unix_ns").get<std::int64_t>();
    out.result.start_ns = anchor.at("start_mono_ns").get<std::int64_t>();
    out.result.first_send_late_ns = anchor.value("first_send_late_ns", std::int64_t{0});
    out.result.duration_s = need("duration").get<double>();
    out.result.end_ns =
        out.result.start_ns + static_cast<std::int64_t>(out.result.duration_s * 1e9 + 0.5);
    out.result.interrupted = doc.value("interrupted", false);
    out.tokenizer = tokenizer_api_from_string(doc.value("tokenizer_api", std::string("none")));
    if (doc.contains("records"))
      out.result.records = doc.at("records").get<std::vector<RequestRecord>>();
    out.result.spec_decode = read_spec_decode_keys(doc);
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    throw Error(ErrorCode::parse_error, fmt::format("result document: {}", e.what()));
  }
  out.result.summary =
      has_all_records(out.result)
          ? summarize(out.result.records, out.result.duration_s, out.spec.summary)
          : summarize(out.result.aggregate, out.result.duration_s, out.spec.summary);
  return out;
}

nlohmann::json merged_result_document(const BenchmarkSpec& spec, TokenizerApi tokenizer,
                                      const MergedResult& merged, bool detailed) {
  BenchmarkSpec whole = spec;
  whole.shard = Shard{};
  auto doc = result_document(whole, tokenizer, merged.result, detailed);
  doc["distributed"] = {{"nranks", merged.ranks.size() + merged.missing_ranks.size()},
                        {"ranks", merged.ranks},
                        {"missing_ranks", merged.missing_ranks},
                        {"exact", merged.exact},
                        {"start_spread_ms", ms(merged.start_spread_ns)},
                        {"per_rank", merged.per_rank},
                        {"per_node", merged.per_node}};
  return doc;
}

}  // namespace aifc

namespace aifc {

ClockOffset estimate_clock_offset(const std::vector<ClockSample>& samples) {
  ClockOffset best;
  for (const auto& s : samples) {
    const std::int64_t round_trip = s.received_ns - s.sent_ns;
    if (round_trip < 0) continue;
    ++best.samples;
    if (best.samples > 1 && round_trip >= best.round_trip_ns) continue;
    best.round_trip_ns = round_trip;
    // The reference read its clock somewhere in the round trip; the middle is the best guess.
    best.offset_ns = s.reference_ns - (s.sent_ns + round_trip / 2);
    best.uncertainty_ns = (round_trip + 1) / 2;
  }
  return best;
}

}  // namespace aifc
