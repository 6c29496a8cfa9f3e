#include "aifc/server_metrics.hpp"

#include <fmt/format.h>

#include <charconv>
#include <cmath>

namespace aifc {
namespace {

enum class SpecCounter { none, drafts, draft_tokens, accepted_tokens, accepted_per_position };

SpecCounter spec_counter(std::string_view name) {
  if (name == "vllm:spec_decode_num_drafts_total") return SpecCounter::drafts;
  if (name == "vllm:spec_decode_num_draft_tokens_total") return SpecCounter::draft_tokens;
  if (name == "vllm:spec_decode_num_accepted_tokens_total") return SpecCounter::accepted_tokens;
  if (name == "vllm:spec_decode_num_accepted_tokens_per_pos_total")
    return SpecCounter::accepted_per_position;
  return SpecCounter::none;
}

// One sample line, `name{label="value",...} number [timestamp]`, taken apart. Label values are
// quoted and may hold spaces, braces and escaped quotes, so the labels are scanned, not split.
struct Sample {
  std::string_view name;
  std::optional<std::int64_t> position;  // the "position" label, when present and a number
  double value = 0;
};

std::optional<Sample> parse_sample(std::string_view line) {
  Sample s;
  std::size_t i = line.find_first_of("{ \t");
  if (i == std::string_view::npos) return std::nullopt;
  s.name = line.substr(0, i);
  if (line[i] == '{') {
    ++i;
    while (i < line.size() && line[i] != '}') {
      const std::size_t eq = line.find('=', i);
      if (eq == std::string_view::npos || eq + 1 >= line.size() || line[eq + 1] != '"')
        return std::nullopt;
      std::string_view key = line.substr(i, eq - i);
      while (!key.empty() && (key.front() == ' ' || key.front() == ',')) key.remove_prefix(1);
      std::string value;
      std::size_t j = eq + 2;
      for (; j < line.size() && line[j] != '"'; ++j) {
        if (line[j] == '\\' && j + 1 < line.size()) ++j;
        value += line[j];
      }
      if (j >= line.size()) return std::nullopt;  // an unterminated label value
      if (key == "position") {
        std::int64_t position = 0;
        const auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), position);
        if (ec == std::errc() && end == value.data() + value.size() && position >= 0)
          s.position = position;
      }
      i = j + 1;
      while (i < line.size() && (line[i] == ',' || line[i] == ' ')) ++i;
    }
    if (i >= line.size()) return std::nullopt;
    ++i;  // the closing brace
  }
  while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) ++i;
  std::size_t end = line.find_first_of(" \t", i);
  if (end == std::string_view::npos) end = line.size();
  const auto [parsed_end, ec] = std::from_chars(line.data() + i, line.data() + end, s.value);
  if (ec != std::errc() || parsed_end != line.data() + end || !std::isfinite(s.value))
    return std::nullopt;
  return s;
}

}  // namespace

std::optional<SpecDecodeCounters> parse_spec_decode_counters(std::string_view text) {
  SpecDecodeCounters counters;
  bool found = false;
  while (!text.empty()) {
    const std::size_t eol = text.find('\n');
    std::string_view line = text.substr(0, eol);
    text.remove_prefix(eol == std::string_view::npos ? text.size() : eol + 1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.rfind("vllm:spec_decode_", 0) != 0) continue;  // comments and other metrics
    const auto sample = parse_sample(line);
    if (!sample) continue;
    switch (spec_counter(sample->name)) {
      case SpecCounter::none:
        continue;
      case SpecCounter::drafts:
        counters.num_drafts += sample->value;
        break;
      case SpecCounter::draft_tokens:
        counters.num_draft_tokens += sample->value;
        break;
      case SpecCounter::accepted_tokens:
        counters.num_accepted_tokens += sample->value;
        break;
      case SpecCounter::accepted_per_position:
        if (!sample->position) continue;
        counters.accepted_per_position[*sample->position] += sample->value;
        break;
    }
    found = true;
  }
  if (!found) return std::nullopt;
  return counters;
}

std::optional<SpecDecodeStats> spec_decode_stats(const SpecDecodeCounters& before,
                                                 const SpecDecodeCounters& after) {
  const double drafts = after.num_drafts - before.num_drafts;
  const double draft_tokens = after.num_draft_tokens - before.num_draft_tokens;
  const double accepted = after.num_accepted_tokens - before.num_accepted_tokens;
  // A counter that went back means the server restarted in between: nothing can be said.
  if (draft_tokens <= 0 || drafts < 0 || accepted < 0) return std::nullopt;
  SpecDecodeStats stats;
  stats.num_drafts = std::llround(drafts);
  stats.draft_tokens = std::llround(draft_tokens);
  stats.accepted_tokens = std::llround(accepted);
  stats.acceptance_rate = accepted / draft_tokens * 100.0;
  stats.acceptance_length = drafts > 0 ? 1.0 + accepted / drafts : 0.0;
  if (drafts > 0) {
    std::map<std::int64_t, double> positions = before.accepted_per_position;
    for (const auto& [position, value] : after.accepted_per_position)
      positions.emplace(position, 0);
    for (const auto& [position, unused] : positions) {
      const auto b = before.accepted_per_position.find(position);
      const double before_value = b == before.accepted_per_position.end() ? 0 : b->second;
      const auto a = after.accepted_per_position.find(position);
      const double after_value = a == after.accepted_per_position.end() ? before_value : a->second;
      stats.per_position_acceptance_rates.push_back((after_value - before_value) / drafts);
    }
  }
  return stats;
}

void add_spec_decode_keys(nlohmann::json& document, const SpecDecodeStats& stats) {
  document["spec_decode_acceptance_rate"] = stats.acceptance_rate;
  document["spec_decode_acceptance_length"] = stats.acceptance_length;
  document["spec_decode_num_drafts"] = stats.num_drafts;
  document["spec_decode_draft_tokens"] = stats.draft_tokens;
  document["spec_decode_accepted_tokens"] = stats.accepted_tokens;
  document["spec_decode_per_position_acceptance_rates"] = stats.per_position_acceptance_rates;
}

std::optional<SpecDecodeStats> read_spec_decode_keys(const nlohmann::json& document) {
  if (!document.is_object() || !document.contains("spec_decode_draft_tokens")) return std::nullopt;
  SpecDecodeStats stats;
  stats.acceptance_rate = document.value("spec_decode_acceptance_rate", 0.0);
  stats.acceptance_length = document.value("spec_decode_acceptance_length", 0.0);
  stats.num_drafts = document.value("spec_decode_num_drafts", std::int64_t{0});
  stats.draft_tokens = document.value("spec_decode_draft_tokens", std::int64_t{0});
  stats.accepted_tokens = document.value("spec_decode_accepted_tokens", std::int64_t{0});
  stats.per_position_acceptance_rates =
      document.value("spec_decode_per_position_acceptance_rates", std::vector<double>{});
  return stats;
}

std::string format_spec_decode_table(const nlohmann::json& document) {
  const auto stats = read_spec_decode_keys(document);
  if (!stats) return {};
  std::string table = fmt::format("{:-^50}\n", "Speculative Decoding");
  table += fmt::format("{:<40} {:<10.2f}\n", "Acceptance rate (%):", stats->acceptance_rate);
  table += fmt::format("{:<40} {:<10.2f}\n", "Acceptance length:", stats->acceptance_length);
  table += fmt::format("{:<40} {:<10}\n", "Drafts:", stats->num_drafts);
  table += fmt::format("{:<40} {:<10}\n", "Draft tokens:", stats->draft_tokens);
  table += fmt::format("{:<40} {:<10}\n", "Accepted tokens:", stats->accepted_tokens);
  if (!stats->per_position_acceptance_rates.empty()) {
    table += "Per-position acceptance (%):\n";
    for (std::size_t i = 0; i < stats->per_position_acceptance_rates.size(); ++i)
      table += fmt::format("{:<40} {:<10.2f}\n", fmt::format("  Position {}:", i),
                           stats->per_position_acceptance_rates[i] * 100.0);
  }
  table += std::string(50, '=') + "\n";
  return table;
}

}  // namespace aifc
