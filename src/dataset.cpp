#include "aifc/dataset.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <numeric>
#include <sstream>

#include "aifc/error.hpp"
#include "rng.hpp"

namespace aifc {
namespace {

// Short, common words: nearly every BPE vocabulary holds " word" as one token, so a prompt of
// N of them is close to N tokens even before the server's tokenizer corrects it.
constexpr const char* kWords[] = {
    "the",     "of",     "and",    "to",     "in",      "is",      "you",       "that",    "it",
    "he",      "was",    "for",    "on",     "are",     "as",      "with",      "his",     "they",
    "at",      "be",     "this",   "have",   "from",    "or",      "one",       "had",     "by",
    "word",    "but",    "not",    "what",   "all",     "were",    "we",        "when",    "your",
    "can",     "said",   "there",  "use",    "an",      "each",    "which",     "she",     "do",
    "how",     "their",  "if",     "will",   "up",      "other",   "about",     "out",     "many",
    "then",    "them",   "these",  "so",     "some",    "her",     "would",     "make",    "like",
    "him",     "into",   "time",   "has",    "look",    "two",     "more",      "write",   "go",
    "see",     "number", "no",     "way",    "could",   "people",  "my",        "than",    "first",
    "water",   "been",   "call",   "who",    "oil",     "its",     "now",       "find",    "long",
    "down",    "day",    "did",    "get",    "come",    "made",    "may",       "part",    "over",
    "new",     "sound",  "take",   "only",   "little",  "work",    "know",      "place",   "year",
    "live",    "me",     "back",   "give",   "most",    "very",    "after",     "thing",   "our",
    "just",    "name",   "good",   "man",    "think",   "say",     "great",     "where",   "help",
    "through", "much",   "before", "line",   "right",   "too",     "mean",      "old",     "any",
    "same",    "tell",   "boy",    "follow", "came",    "want",    "show",      "also",    "around",
    "form",    "three",  "small",  "set",    "put",     "end",     "does",      "another", "well",
    "large",   "must",   "big",    "even",   "such",    "because", "turn",      "here",    "why",
    "ask",     "went",   "men",    "read",   "need",    "land",    "different", "home",    "us",
    "move",    "try",    "kind",   "hand",   "picture", "again",   "change",    "off",     "play",
    "spell",   "air",    "away",   "animal", "house",   "point",   "page",      "letter",  "mother",
    "answer",  "found",  "study",  "still",  "learn",   "should",  "world",     "high",    "every",
    "near",    "add"};
constexpr std::size_t kWordCount = std::size(kWords);

void append_words(std::string& text, std::int64_t n, detail::Rng& rng) {
  for (std::int64_t i = 0; i < n; ++i) {
    if (!text.empty()) text.push_back(' ');
    text.append(kWords[rng.next() % kWordCount]);
  }
}

void drop_words(std::string& text, std::int64_t n) {
  for (std::int64_t i = 0; i < n && !text.empty(); ++i) {
    const auto space = text.rfind(' ');
    text.resize(space == std::string::npos ? 0 : space);
  }
}

// A rough token estimate for text with no tokenizer at hand (about four characters a token).
std::int64_t estimate_tokens(const std::string& text) {
  return std::max<std::int64_t>(1, static_cast<std::int64_t>((text.size() + 3) / 4));
}

std::int64_t draw_len(std::int64_t len, double ratio, detail::Rng& rng) {
  const auto lo = static_cast<std::int64_t>(std::floor(static_cast<double>(len) * (1.0 - ratio)));
  const auto hi = static_cast<std::int64_t>(std::ceil(static_cast<double>(len) * (1.0 + ratio)));
  return std::max<std::int64_t>(1, rng.uniform_int(lo, hi));
}

// True when every vocabulary word is one token for this tokenizer, checked on one text of all
// of them: then a prompt of N words is N tokens and needs no count of its own.
bool words_are_single_tokens(const TokenCounter& counter) {
  std::string all;
  for (const char* w : kWords) {
    if (!all.empty()) all.push_back(' ');
    all += w;
  }
  const auto n = counter(all);
  return n && *n == static_cast<std::int64_t>(kWordCount);
}

std::vector<Prompt> random_prompts(const DatasetConfig& c, const TokenCounter& counter) {
  detail::Rng rng(c.seed);
  std::string prefix;
  append_words(prefix, c.random_prefix_len, rng);
  bool server_counts = static_cast<bool>(counter);
  const bool additive = server_counts && words_are_single_tokens(counter);
  std::vector<Prompt> prompts;
  prompts.reserve(static_cast<std::size_t>(c.num_prompts));
  for (std::int64_t i = 0; i < c.num_prompts; ++i) {
    Prompt p;
    const std::int64_t target =
        c.random_prefix_len + draw_len(c.random_input_len, c.random_range_ratio, rng);
    p.output_tokens = draw_len(c.random_output_len, c.random_range_ratio, rng);
    p.text = prefix;
    append_words(p.text, target - c.random_prefix_len, rng);
    p.input_tokens = target;
    // With an additive tokenizer a few spot checks stand for all; otherwise count every prompt.
    const bool check = server_counts && (!additive || i < 4);
    if (additive && !check) {
      p.input_tokens_exact = true;
    } else if (check) {
      // Words are not always one token each: correct the length until the server agrees.
      for (int attempt = 0; attempt < 8; ++attempt) {
        const auto n = counter(p.text);
        if (!n) {
          server_counts = false;
          break;
        }
        if (*n == target) {
          p.input_tokens_exact = true;
          break;
        }
        p.input_tokens = *n;
        if (*n > target)
          drop_words(p.text, std::max<std::int64_t>(1, (*n - target + 1) / 2));
        else
          append_words(p.text, std::max<std::int64_t>(1, (target - *n + 1) / 2), rng);
      }
      if (p.input_tokens_exact) p.input_tokens = target;
    }
    prompts.push_back(std::move(p));
  }
  return prompts;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(ErrorCode::io_error, fmt::format("cannot open dataset file '{}'", path));
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Takes num_prompts from the candidates in a seeded order, cycling when there are too few
// (as vLLM oversamples), so every request count is reachable.
std::vector<Prompt> sample(std::vector<Prompt> all, const DatasetConfig& c,
                           const std::string& what) {
  if (all.empty())
    throw Error(ErrorCode::parse_error, fmt::format("dataset '{}' holds no usable prompt", what));
  std::vector<Prompt> out;
  out.reserve(static_cast<std::size_t>(c.num_prompts));
  for (std::int64_t i = 0; i < c.num_prompts; ++i)
    out.push_back(all[static_cast<std::size_t>(i) % all.size()]);
  return out;
}

template <class T>
void shuffle(std::vector<T>& v, std::uint64_t seed) {
  detail::Rng rng(seed);
  for (std::size_t i = v.size(); i > 1; --i) std::swap(v[i - 1], v[rng.next() % i]);
}

std::vector<Prompt> sharegpt_prompts(const DatasetConfig& c, const TokenCounter& counter) {
  nlohmann::json doc;
  try {
    doc = nlohmann::json::parse(read_file(c.dataset_path));
  } catch (const nlohmann::json::parse_error& e) {
    throw Error(ErrorCode::parse_error,
                fmt::format("'{}' is not valid JSON: {}", c.dataset_path, e.what()));
  }
  if (!doc.is_array())
    throw Error(ErrorCode::parse_error,
                fmt::format("'{}' is not a ShareGPT file (expected a JSON array)", c.dataset_path));
  std::vector<std::size_t> order(doc.size());
  std::iota(order.begin(), order.end(), 0);
  shuffle(order, c.seed);
  std::vector<Prompt> picked;
  bool server_counts = static_cast<bool>(counter);
  for (std::size_t idx : order) {
    if (static_cast<std::int64_t>(picked.size()) >= c.num_prompts) break;
    const auto& entry = doc[idx];
    if (!entry.is_object() || !entry.contains("conversations")) continue;
    const auto& conv = entry["conversations"];
    if (!conv.is_array() || conv.size() < 2 || !conv[0].contains("value") ||
        !conv[1].contains("value") || !conv[0]["value"].is_string() ||
        !conv[1]["value"].is_string())
      continue;
    Prompt p;
    p.text = conv[0]["value"].get<std::string>();
    const auto reply = conv[1]["value"].get<std::string>();
    std::int64_t reply_tokens = estimate_tokens(reply);
    p.input_tokens = estimate_tokens(p.text);
    if (server_counts) {
      const auto n = counter(p.text);
      const auto r = n ? counter(reply) : std::nullopt;
      if (n && r) {
        p.input_tokens = *n;
        reply_tokens = *r;
        p.input_tokens_exact = true;
      } else {
        server_counts = false;
      }
    }
    p.output_tokens = c.sharegpt_output_len > 0 ? c.sharegpt_output_len : reply_tokens;
    // vLLM's filter: drop very short and very long conversations.
    if (p.input_tokens < 4 || (c.sharegpt_output_len == 0 && p.output_tokens < 4)) continue;
    if (p.input_tokens > 1024 || p.input_tokens + p.output_tokens > 2048) continue;
    picked.push_back(std::move(p));
  }
  return sample(std::move(picked), c, c.dataset_path);
}

std::vector<Prompt> jsonl_prompts(const DatasetConfig& c, const TokenCounter& counter) {
  std::ifstream in(c.dataset_path);
  if (!in)
    throw Error(ErrorCode::io_error, fmt::format("cannot open dataset file '{}'", c.dataset_path));
  std::vector<Prompt> all;
  std::string line;
  bool server_counts = static_cast<bool>(counter);
  for (std::size_t line_no = 1; std::getline(in, line); ++line_no) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(line);
    } catch (const nlohmann::json::parse_error& e) {
      throw Error(ErrorCode::parse_error,
                  fmt::format("{}:{}: not valid JSON ({})", c.dataset_path, line_no, e.what()));
    }
    Prompt p;
    if (j.is_string()) {
      p.text = j.get<std::string>();
    } else if (j.is_object() && j.contains("prompt") && j["prompt"].is_string()) {
      p.text = j["prompt"].get<std::string>();
      for (const char* key : {"output_tokens", "output_len", "max_tokens"})
        if (j.contains(key) && j[key].is_number_integer())
          p.output_tokens = j[key].get<std::int64_t>();
    } else {
      throw Error(ErrorCode::parse_error,
                  fmt::format("{}:{}: expected a string or an object with a \"prompt\" string",
                              c.dataset_path, line_no));
    }
    all.push_back(std::move(p));
  }
  shuffle(all, c.seed);
  auto out = sample(std::move(all), c, c.dataset_path);
  for (auto& p : out) {
    p.input_tokens = estimate_tokens(p.text);
    if (server_counts) {
      if (const auto n = counter(p.text)) {
        p.input_tokens = *n;
        p.input_tokens_exact = true;
      } else {
        server_counts = false;
      }
    }
  }
  return out;
}

}  // namespace

void DatasetConfig::validate() const {
  auto bad = [](const std::string& what) { throw Error(ErrorCode::invalid_argument, what); };
  if (num_prompts < 1) bad(fmt::format("num_prompts must be at least 1 (got {})", num_prompts));
  if (dataset_name == DatasetKind::random) {
    if (random_input_len < 1)
      bad(fmt::format("random_input_len must be at least 1 (got {})", random_input_len));
    if (random_output_len < 1)
      bad(fmt::format("random_output_len must be at least 1 (got {})", random_output_len));
    if (random_range_ratio < 0.0 || random_range_ratio >= 1.0)
      bad(fmt::format("random_range_ratio must be in [0, 1) (got {})", random_range_ratio));
    if (random_prefix_len < 0) bad("random_prefix_len must not be negative");
  } else if (dataset_path.empty()) {
    bad(fmt::format("dataset '{}' needs a dataset_path",
                    nlohmann::json(dataset_name).get<std::string>()));
  }
  if (sharegpt_output_len < 0) bad("sharegpt_output_len must not be negative");
}

std::vector<Prompt> load_dataset(const DatasetConfig& config, const TokenCounter& counter) {
  config.validate();
  switch (config.dataset_name) {
    case DatasetKind::random:
      return random_prompts(config, counter);
    case DatasetKind::sharegpt:
      return sharegpt_prompts(config, counter);
    case DatasetKind::jsonl:
      return jsonl_prompts(config, counter);
  }
  throw Error(ErrorCode::invalid_argument, "unknown dataset");
}

}  // namespace aifc
