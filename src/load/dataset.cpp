#include "aifc/dataset.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <numeric>
#include <sstream>
#include <string>
#include <string_view>

#include "aifc/error.hpp"
#include "load/parquet.hpp"
#include "util/json_values.hpp"
#include "util/rng.hpp"

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

// A rough token estimate for text with no tokenizer at hand (about four characters a token).
std::int64_t estimate_tokens(const std::string& text) {
  return std::max<std::int64_t>(1, static_cast<std::int64_t>((text.size() + 3) / 4));
}

std::int64_t draw_len(std::int64_t len, double ratio, detail::Rng& rng) {
  const auto lo = static_cast<std::int64_t>(std::floor(static_cast<double>(len) * (1.0 - ratio)));
  const auto hi = static_cast<std::int64_t>(std::ceil(static_cast<double>(len) * (1.0 + ratio)));
  return std::max<std::int64_t>(1, rng.uniform_int(lo, hi));
}

// Tokens per vocabulary word for this tokenizer, counted once on a text of all the words;
// nullopt when the server does not count. 1.0 exactly means a prompt of N words is N tokens.
std::optional<double> tokens_per_word(const TokenCounter& counter) {
  std::string all;
  for (const char* w : kWords) {
    if (!all.empty()) all.push_back(' ');
    all += w;
  }
  const auto n = counter(all);
  if (!n || *n <= 0) return std::nullopt;
  return static_cast<double>(*n) / static_cast<double>(kWordCount);
}

// The most counts the word search spends on one prompt (one more may top it up). It needs two
// or three for a smooth tokenizer; the bound keeps a pathological one from costing more.
constexpr int kMaxCountsPerPrompt = 6;

// Fits a random prompt to `target` tokens as the server counts them: the prefix plus the first
// k words of a seeded word stream, with k found by interpolation between counts. Returns false
// when the server stopped counting. The prompt's length is the count of its final text (exact,
// since counted); it equals the target unless no word boundary gives it (then it is the
// nearest one, at most one word away).
bool fit_random_prompt(Prompt& p, const std::string& prefix, std::int64_t prefix_words,
                       std::int64_t target, double ratio, detail::Rng& rng,
                       const TokenCounter& counter) {
  std::vector<const char*> pool;
  auto text_of = [&](std::int64_t k) {
    while (static_cast<std::int64_t>(pool.size()) < k)
      pool.push_back(kWords[rng.next() % kWordCount]);
    std::string t = prefix;
    for (std::int64_t i = 0; i < k; ++i) {
      if (!t.empty()) t.push_back(' ');
      t += pool[static_cast<std::size_t>(i)];
    }
    return t;
  };
  ratio = std::max(ratio, 0.05);
  // The first guess: every word, the prefix's too, costs `ratio` tokens.
  std::int64_t k =
      std::max<std::int64_t>(0, std::llround(static_cast<double>(target) / ratio) - prefix_words);
  std::int64_t lo_k = -1, lo_n = 0, hi_k = -1, hi_n = 0, best_k = -1, best_n = 0;
  for (int calls = 0; calls < kMaxCountsPerPrompt; ++calls) {
    const auto n = counter(text_of(k));
    if (!n) return false;
    const auto miss = [&](std::int64_t v) {
      return v > target ? 2 * (v - target) + 1 : 2 * (target - v);
    };
    if (best_k < 0 || miss(*n) < miss(best_n)) {
      best_k = k;
      best_n = *n;
    }
    if (*n == target) break;
    if (*n < target) {
      lo_k = k;
      lo_n = *n;
    } else {
      hi_k = k;
      hi_n = *n;
    }
    std::int64_t next;
    if (lo_k >= 0 && hi_k >= 0) {
      if (hi_k - lo_k <= 1) break;  // no word boundary in between: the nearest is found
      const double slope = static_cast<double>(hi_n - lo_n) /
                           static_cast<double>(std::max<std::int64_t>(1, hi_k - lo_k));
      next = lo_k + std::llround(static_cast<double>(target - lo_n) / std::max(slope, 1e-9));
      next = std::clamp(next, lo_k + 1, hi_k - 1);
    } else {
      const std::int64_t step = std::llround(static_cast<double>(target - *n) / ratio);
      next = k + (step != 0 ? step : (*n < target ? 1 : -1));
      if (next < 0) {
        if (k == 0) break;  // even the prefix alone is longer than the target
        next = 0;
      }
    }
    k = next;
  }
  p.text = text_of(best_k);
  p.input_tokens = best_n;
  // Between two word boundaries: top the shorter text up with the shortest word, which nearly
  // every tokenizer counts as one token. One more count says whether that hit the target.
  const std::int64_t short_by = target - lo_n;
  if (best_n != target && lo_k >= 0 && short_by > 0 && short_by <= 16) {
    std::string topped = text_of(lo_k);
    for (std::int64_t i = 0; i < short_by; ++i) topped += topped.empty() && i == 0 ? "a" : " a";
    if (const auto n = counter(topped)) {
      const auto miss = [&](std::int64_t v) { return v > target ? v - target : target - v; };
      if (miss(*n) < miss(p.input_tokens)) {
        p.text = std::move(topped);
        p.input_tokens = *n;
      }
    }
  }
  p.input_tokens_exact = true;
  return true;
}

// What one synthetic prompt is to be: a shared prefix of `prefix_words` words (one text for
// many prompts, so that a server's prefix cache can hit), `target` tokens in all, and the
// output length to ask for.
struct Shape {
  const std::string* prefix = nullptr;
  std::int64_t prefix_words = 0;
  std::int64_t target = 0;
  std::int64_t output_tokens = 0;
};

// Builds `n` prompts of random words fitted to their shapes. `shape_of(i, rng)` draws prompt
// i's shape from its own stream (the dataset seed and the index), so that a prompt is the same
// whichever ranks build it; prompts that `needed` turns down stay empty.
template <class ShapeOf>
std::vector<Prompt> synthetic_prompts(const DatasetConfig& c, std::int64_t n,
                                      const TokenCounter& counter, const PromptFilter& needed,
                                      ShapeOf&& shape_of) {
  double ratio = 1.0;  // tokens per word
  bool server_counts = false;
  if (const auto measured = counter ? tokens_per_word(counter) : std::nullopt) {
    ratio = *measured;
    server_counts = true;
  }
  const bool additive = server_counts && ratio == 1.0;
  std::vector<Prompt> prompts;
  prompts.reserve(static_cast<std::size_t>(n));
  std::int64_t built = 0;
  const std::string no_prefix;
  for (std::int64_t i = 0; i < n; ++i) {
    Prompt p;
    if (needed && !needed(i)) {
      prompts.push_back(std::move(p));  // another rank's
      continue;
    }
    detail::Rng rng(c.seed ^ (0x9E3779B97F4A7C15ull * static_cast<std::uint64_t>(i + 1)));
    const Shape shape = shape_of(i, rng);
    const std::string& prefix = shape.prefix ? *shape.prefix : no_prefix;
    p.output_tokens = shape.output_tokens;
    // With an additive tokenizer a few spot checks stand for all; otherwise fit every prompt.
    if (additive && built++ >= 4) {
      p.text = prefix;
      append_words(p.text, shape.target - shape.prefix_words, rng);
      p.input_tokens = shape.target;
      p.input_tokens_exact = true;
    } else if (server_counts && fit_random_prompt(p, prefix, shape.prefix_words, shape.target,
                                                  ratio, rng, counter)) {
      // fitted and counted
    } else {
      server_counts = false;  // no tokenizer (or it stopped answering): one word, one token
      p.text = prefix;
      append_words(p.text, shape.target - shape.prefix_words, rng);
      p.input_tokens = shape.target;
    }
    prompts.push_back(std::move(p));
  }
  return prompts;
}

// A prefix shared by many prompts: `tokens` tokens as the server counts them when it can
// (fitted as a prompt is), else as many words. Returns the text and its number of words.
std::pair<std::string, std::int64_t> shared_prefix(std::int64_t tokens, detail::Rng& rng,
                                                   const TokenCounter& counter) {
  Prompt fitted;
  const auto ratio = counter && tokens > 0 ? tokens_per_word(counter) : std::nullopt;
  if (ratio && fit_random_prompt(fitted, "", 0, tokens, *ratio, rng, counter)) {
    std::int64_t words = 0;
    bool in_word = false;
    for (char ch : fitted.text) {
      if (ch != ' ' && !in_word) ++words;
      in_word = ch != ' ';
    }
    return {fitted.text, words};
  }
  std::string text;
  append_words(text, tokens, rng);
  return {text, tokens};
}

template <class T>
void shuffle(std::vector<T>& v, std::uint64_t seed) {
  detail::Rng rng(seed);
  for (std::size_t i = v.size(); i > 1; --i) std::swap(v[i - 1], v[rng.next() % i]);
}

std::vector<Prompt> random_prompts(const DatasetConfig& c, const TokenCounter& counter,
                                   const PromptFilter& needed) {
  detail::Rng prefix_rng(c.seed);
  // Named, not a structured binding: clang 14 cannot capture those in the lambda.
  const auto shared = shared_prefix(c.random_prefix_len, prefix_rng, counter);
  const std::string& prefix = shared.first;
  const std::int64_t prefix_words = shared.second;
  return synthetic_prompts(c, c.num_prompts, counter, needed, [&](std::int64_t, detail::Rng& rng) {
    Shape shape{&prefix, prefix_words, 0, 0};
    shape.target = c.random_prefix_len + draw_len(c.random_input_len, c.random_range_ratio, rng);
    shape.output_tokens = draw_len(c.random_output_len,
                                   c.random_output_range_ratio.value_or(c.random_range_ratio), rng);
    return shape;
  });
}

// vLLM's prefix_repetition: num_prefixes prefixes, each shared by an equal share of the prompts
// (its prompts next to each other with disable_shuffle, spread by the seed otherwise), every
// prompt prefix_len + suffix_len tokens long. Unlike vLLM, whose count drops to a multiple of
// num_prefixes, every one of num_prompts prompts is built (the last prefix takes the rest).
std::vector<Prompt> prefix_repetition_prompts(const DatasetConfig& c, const TokenCounter& counter,
                                              const PromptFilter& needed) {
  const std::int64_t groups = c.prefix_repetition_num_prefixes;
  const std::int64_t per_prefix = c.num_prompts / groups;
  std::vector<std::pair<std::string, std::int64_t>> prefixes;  // text, words
  for (std::int64_t g = 0; g < groups; ++g) {
    detail::Rng rng(c.seed ^ (0xC2B2AE3D27D4EB4Full * static_cast<std::uint64_t>(g + 1)));
    prefixes.push_back(shared_prefix(c.prefix_repetition_prefix_len, rng, counter));
  }
  std::vector<std::int64_t> order(static_cast<std::size_t>(c.num_prompts));
  std::iota(order.begin(), order.end(), 0);
  if (!c.disable_shuffle) shuffle(order, c.seed ^ 0x5EEDull);
  return synthetic_prompts(c, c.num_prompts, counter, needed, [&](std::int64_t i, detail::Rng&) {
    const std::int64_t group =
        std::min(order[static_cast<std::size_t>(i)] / per_prefix, groups - 1);
    const auto& [text, words] = prefixes[static_cast<std::size_t>(group)];
    return Shape{&text, words, c.prefix_repetition_prefix_len + c.prefix_repetition_suffix_len,
                 c.prefix_repetition_output_len};
  });
}

std::ifstream open_dataset(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(ErrorCode::io_error, fmt::format("cannot open dataset file '{}'", path));
  return in;
}

bool is_parquet_file(std::ifstream& in) {
  char magic[4] = {};
  in.read(magic, 4);
  const bool parquet = in.gcount() == 4 && detail::looks_like_parquet(std::string_view(magic, 4));
  in.clear();
  in.seekg(0);
  return parquet;
}

std::string read_file(const std::string& path) {
  std::ifstream in = open_dataset(path);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Calls on_record(json, where) for each record of a file of JSON lines (each non-blank line) or
// of a Parquet file (each row, as an object of its columns, as Hugging Face sets are stored);
// `where` is "file:line" or "file: row N" for messages. A line that is not JSON is refused there.
template <class OnRecord>
void for_each_record(const std::string& path, OnRecord&& on_record) {
  std::ifstream in = open_dataset(path);
  if (is_parquet_file(in)) {
    const std::string bytes = read_file(path);
    detail::for_each_parquet_row(bytes, path, [&](nlohmann::json&& row, std::int64_t index) {
      on_record(row, fmt::format("{}: row {}", path, index + 1));
    });
    return;
  }
  std::string line;
  for (std::size_t line_no = 1; std::getline(in, line); ++line_no) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const std::string where = fmt::format("{}:{}", path, line_no);
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception& e) {  // parse_error, or out_of_range (1e999)
      throw Error(ErrorCode::parse_error, fmt::format("{}: not valid JSON ({})", where, e.what()));
    }
    on_record(j, where);
  }
}

// Takes num_prompts from the candidates in a seeded order, cycling when there are too few
// (as vLLM oversamples), so every request count is reachable.
std::vector<Prompt> sample(std::vector<Prompt> all, const DatasetConfig& c,
                           const std::string& what) {
  if (all.empty())
    throw Error(ErrorCode::parse_error, fmt::format("dataset '{}' holds no usable prompt", what));
  std::vector<Prompt> out;
  const auto n = c.no_oversample
                     ? std::min<std::int64_t>(c.num_prompts, static_cast<std::int64_t>(all.size()))
                     : c.num_prompts;
  out.reserve(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) out.push_back(all[static_cast<std::size_t>(i) % all.size()]);
  return out;
}

std::vector<Prompt> sharegpt_prompts(const DatasetConfig& c, const TokenCounter& counter) {
  nlohmann::json doc;
  const std::string bytes = read_file(c.dataset_path);
  try {
    if (detail::looks_like_parquet(bytes)) {  // a row per conversation, as the Hub stores them
      doc = nlohmann::json::array();
      detail::for_each_parquet_row(bytes, c.dataset_path, [&](nlohmann::json&& row, std::int64_t) {
        doc.push_back(std::move(row));
      });
    } else {
      doc = nlohmann::json::parse(bytes);
    }
  } catch (const nlohmann::json::exception& e) {  // parse_error, or out_of_range (1e999)
    throw Error(ErrorCode::parse_error,
                fmt::format("'{}' is not valid JSON: {}", c.dataset_path, e.what()));
  }
  if (!doc.is_array())
    throw Error(ErrorCode::parse_error,
                fmt::format("'{}' is not a ShareGPT file (expected a JSON array)", c.dataset_path));
  std::vector<std::size_t> order(doc.size());
  std::iota(order.begin(), order.end(), 0);
  if (!c.disable_shuffle) shuffle(order, c.seed);
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

// One line of a CSV file without quoting (BurstGPT's), split at its commas.
std::vector<std::string> csv_fields(const std::string& line) {
  std::vector<std::string> fields;
  std::size_t from = 0;
  for (;;) {
    const auto comma = line.find(',', from);
    std::string field =
        line.substr(from, comma == std::string::npos ? std::string::npos : comma - from);
    while (!field.empty() && (field.back() == '\r' || field.back() == ' ')) field.pop_back();
    while (!field.empty() && field.front() == ' ') field.erase(0, 1);
    fields.push_back(std::move(field));
    if (comma == std::string::npos) return fields;
    from = comma + 1;
  }
}

// vLLM's burstgpt: the GPT-4 rows of a BurstGPT trace with a response, taken in a seeded order
// (cycled when there are too few, unless no_oversample); each becomes random words of the row's
// request tokens, asking for its response tokens. The trace's timestamps are not used (as vLLM).
std::vector<Prompt> burstgpt_prompts(const DatasetConfig& c, const TokenCounter& counter,
                                     const PromptFilter& needed) {
  std::ifstream in = open_dataset(c.dataset_path);
  if (is_parquet_file(in))
    throw Error(ErrorCode::parse_error,
                fmt::format("'{}' is a Parquet file: burstgpt reads BurstGPT's CSV file "
                            "(BurstGPT_without_fails_2.csv)",
                            c.dataset_path));
  std::string line;
  if (!std::getline(in, line))
    throw Error(ErrorCode::parse_error, fmt::format("'{}' is empty", c.dataset_path));
  const auto header = csv_fields(line);
  auto column = [&](const char* name) {
    const auto it = std::find(header.begin(), header.end(), name);
    if (it == header.end())
      throw Error(ErrorCode::parse_error,
                  fmt::format("'{}' is not a BurstGPT file: its header has no '{}' column",
                              c.dataset_path, name));
    return static_cast<std::size_t>(it - header.begin());
  };
  const std::size_t model = column("Model"), request = column("Request tokens"),
                    response = column("Response tokens");
  std::vector<std::pair<std::int64_t, std::int64_t>> rows;  // request, response tokens
  for (std::size_t line_no = 2; std::getline(in, line); ++line_no) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const auto fields = csv_fields(line);
    if (fields.size() != header.size())
      throw Error(ErrorCode::parse_error,
                  fmt::format("{}:{}: {} fields where the header has {}", c.dataset_path, line_no,
                              fields.size(), header.size()));
    if (fields[model] != "GPT-4") continue;
    std::int64_t tokens[2] = {0, 0};
    for (int k = 0; k < 2; ++k) {
      const std::string& text = fields[k == 0 ? request : response];
      bool whole = true;
      try {
        tokens[k] = detail::whole_number(nlohmann::json(text));
      } catch (const Error&) {
        whole = false;
      }
      if (!whole || tokens[k] < 0 || tokens[k] > 10'000'000)
        throw Error(ErrorCode::parse_error,
                    fmt::format("{}:{}: '{}' is not a token count from 0 to 10000000",
                                c.dataset_path, line_no, text));
    }
    if (tokens[1] > 0) rows.emplace_back(tokens[0], tokens[1]);
  }
  if (rows.empty())
    throw Error(ErrorCode::parse_error,
                fmt::format("'{}' has no GPT-4 row with response tokens", c.dataset_path));
  if (!c.disable_shuffle) shuffle(rows, c.seed);
  const std::int64_t n =
      c.no_oversample
          ? std::min<std::int64_t>(c.num_prompts, static_cast<std::int64_t>(rows.size()))
          : c.num_prompts;
  return synthetic_prompts(c, n, counter, needed, [&](std::int64_t i, detail::Rng&) {
    const auto& [request_tokens, response_tokens] = rows[static_cast<std::size_t>(i) % rows.size()];
    return Shape{nullptr, 0, std::max<std::int64_t>(1, request_tokens), response_tokens};
  });
}

// A timed trace (JSON lines): each line's arrival time, input and output lengths, and the hash
// ids of its prompt's blocks. Lines are taken in time order, at most num_prompts of them and
// never repeated (their times are the point). Each prompt is the blocks of its hash ids (the
// same id, the same text of chunk_hash_size words) cut or filled to its input length.
std::vector<Prompt> timed_trace_prompts(const DatasetConfig& c, const TokenCounter& counter,
                                        const PromptFilter& needed) {
  struct Row {
    double at_s;
    std::int64_t input, output;
    std::vector<std::uint64_t> hashes;
  };
  std::vector<Row> rows;
  for_each_record(c.dataset_path, [&](const nlohmann::json& j, const std::string& where) {
    if (!j.is_object())
      throw Error(ErrorCode::parse_error, fmt::format("{}: expected a JSON object", where));
    auto integer = [&](const std::string& key, std::int64_t lo) {
      if (!j.contains(key) || !j[key].is_number_integer())
        throw Error(ErrorCode::parse_error, fmt::format("{}: no whole number \"{}\"", where, key));
      const auto v = j[key].get<std::int64_t>();
      if (v < lo || v > 10'000'000)
        throw Error(
            ErrorCode::parse_error,
            fmt::format("{}: \"{}\" must be from {} to 10000000 (got {})", where, key, lo, v));
      return v;
    };
    Row row;
    const auto& stamp_key = c.timed_trace_label_timestamp;
    if (!j.contains(stamp_key) || !j[stamp_key].is_number() ||
        !std::isfinite(j[stamp_key].get<double>()) || j[stamp_key].get<double>() < 0)
      throw Error(ErrorCode::parse_error,
                  fmt::format("{}: no time \"{}\" (a number, 0 or more)", where, stamp_key));
    row.at_s = j[stamp_key].get<double>() * c.timed_trace_sec_multiplier;
    row.input = integer(c.timed_trace_label_input_length, 1);
    row.output = integer(c.timed_trace_label_output_length, 1);
    if (const auto h = j.find(c.timed_trace_label_hash_ids); h != j.end() && !h->is_null()) {
      if (!h->is_array())
        throw Error(ErrorCode::parse_error, fmt::format("{}: \"{}\" must be an array", where,
                                                        c.timed_trace_label_hash_ids));
      for (const auto& id : *h) {
        if (!id.is_number_integer())
          throw Error(ErrorCode::parse_error,
                      fmt::format("{}: a hash id must be a whole number", where));
        row.hashes.push_back(id.get<std::uint64_t>());
      }
    }
    rows.push_back(std::move(row));
  });
  if (rows.empty())
    throw Error(ErrorCode::parse_error, fmt::format("'{}' holds no request", c.dataset_path));
  std::stable_sort(rows.begin(), rows.end(),
                   [](const Row& a, const Row& b) { return a.at_s < b.at_s; });
  if (static_cast<std::int64_t>(rows.size()) > c.num_prompts)
    rows.resize(static_cast<std::size_t>(c.num_prompts));
  std::string blocks;  // the current prompt's blocks; read by synthetic_prompts before the next
  auto prompts = synthetic_prompts(
      c, static_cast<std::int64_t>(rows.size()), counter, needed,
      [&](std::int64_t i, detail::Rng&) {
        const Row& row = rows[static_cast<std::size_t>(i)];
        blocks.clear();
        std::int64_t words = 0;
        for (const auto id : row.hashes) {
          if (words >= row.input) break;
          detail::Rng block_rng(c.seed ^ (0xD6E8FEB86659FD93ull * (id + 1)));
          const std::int64_t n = std::min(c.timed_trace_chunk_hash_size, row.input - words);
          append_words(blocks, n, block_rng);
          words += n;
        }
        return Shape{&blocks, words, row.input, row.output};
      });
  for (std::size_t i = 0; i < prompts.size(); ++i) prompts[i].arrival_s = rows[i].at_s;
  return prompts;
}

// The first user turn of a chat in the shapes that Hugging Face chat sets are exported in:
// "messages" or "conversation" as [{"role", "content"}] (OpenAI's form; UltraChat, LMSYS-Chat)
// and "conversations" as [{"from", "value"}] (ShareGPT's).
std::optional<std::string> first_user_turn(const nlohmann::json& j) {
  if (!j.is_object()) return std::nullopt;
  for (const char* key : {"messages", "conversation", "conversations"}) {
    const auto chat = j.find(key);
    if (chat == j.end() || !chat->is_array()) continue;
    for (const auto& turn : *chat) {
      if (!turn.is_object()) continue;
      const auto who = turn.contains("role") ? turn["role"] : turn.value("from", nlohmann::json());
      const auto text =
          turn.contains("content") ? turn["content"] : turn.value("value", nlohmann::json());
      if (who.is_string() && (who == "user" || who == "human") && text.is_string())
        return text.get<std::string>();
    }
  }
  return std::nullopt;
}

std::vector<Prompt> jsonl_prompts(const DatasetConfig& c, const TokenCounter& counter) {
  std::vector<Prompt> all;
  bool server_counts = static_cast<bool>(counter);
  for_each_record(c.dataset_path, [&](const nlohmann::json& j, const std::string& where) {
    Prompt p;
    p.output_tokens = c.custom_output_len.value_or(kCustomOutputLen);
    if (j.is_string()) {
      p.text = j.get<std::string>();
    } else if (j.is_object() && j.contains("prompt") && j["prompt"].is_string()) {
      p.text = j["prompt"].get<std::string>();
      for (const char* key : {"output_tokens", "output_len", "max_tokens"}) {
        if (c.custom_output_len) break;  // given for every prompt
        if (!j.contains(key) || !j[key].is_number_integer()) continue;
        p.output_tokens = j[key].get<std::int64_t>();
        if (p.output_tokens < 0 || p.output_tokens > 10'000'000)
          throw Error(
              ErrorCode::parse_error,
              fmt::format("{}: {} must be from 0 to 10000000 (got {})", where, key, j[key].dump()));
      }
    } else if (auto turn = first_user_turn(j)) {
      p.text = std::move(*turn);
    } else {
      throw Error(ErrorCode::parse_error,
                  fmt::format("{}: expected a string, an object with a \"prompt\" string, or "
                              "a chat (\"messages\", \"conversation\" or \"conversations\") "
                              "with a user turn",
                              where));
    }
    all.push_back(std::move(p));
  });
  if (!c.disable_shuffle) shuffle(all, c.seed);
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
  // Beyond these a run would exhaust memory building its prompts rather than fail clearly.
  if (num_prompts > 100'000'000)
    bad(fmt::format("num_prompts must be at most 100000000 (got {})", num_prompts));
  if (random_input_len > 10'000'000 || random_output_len > 10'000'000 ||
      random_prefix_len > 10'000'000)
    bad("random_input_len, random_output_len and random_prefix_len must be at most 10000000");
  if (dataset_name == DatasetKind::random) {
    if (random_input_len < 1)
      bad(fmt::format("random_input_len must be at least 1 (got {})", random_input_len));
    if (random_output_len < 1)
      bad(fmt::format("random_output_len must be at least 1 (got {})", random_output_len));
    if (!(random_range_ratio >= 0.0 && random_range_ratio < 1.0))
      bad(fmt::format("random_range_ratio must be in [0, 1) (got {})", random_range_ratio));
    if (random_output_range_ratio &&
        !(*random_output_range_ratio >= 0.0 && *random_output_range_ratio < 1.0))
      bad(fmt::format("random_output_range_ratio must be in [0, 1) (got {})",
                      *random_output_range_ratio));
    if (random_prefix_len < 0) bad("random_prefix_len must not be negative");
  } else if (dataset_name == DatasetKind::prefix_repetition) {
    auto in_range = [&](const char* name, std::int64_t v, std::int64_t lo) {
      if (v < lo || v > 10'000'000)
        bad(fmt::format("prefix_repetition_{} must be from {} to 10000000 (got {})", name, lo, v));
    };
    in_range("prefix_len", prefix_repetition_prefix_len, 0);
    in_range("suffix_len", prefix_repetition_suffix_len, 1);
    in_range("output_len", prefix_repetition_output_len, 1);
    in_range("num_prefixes", prefix_repetition_num_prefixes, 1);
    if (prefix_repetition_num_prefixes > num_prompts)
      bad(fmt::format("prefix_repetition_num_prefixes ({}) must not exceed num_prompts ({})",
                      prefix_repetition_num_prefixes, num_prompts));
  } else if (dataset_path.empty()) {
    bad(fmt::format("dataset '{}' needs a dataset_path",
                    nlohmann::json(dataset_name).get<std::string>()));
  }
  if (sharegpt_output_len < 0) bad("sharegpt_output_len must not be negative");
  if (timed_trace_chunk_hash_size < 1 || timed_trace_chunk_hash_size > 1'000'000)
    bad(fmt::format("timed_trace_chunk_hash_size must be from 1 to 1000000 (got {})",
                    timed_trace_chunk_hash_size));
  if (!(timed_trace_sec_multiplier > 0 && timed_trace_sec_multiplier <= 1e6))
    bad(fmt::format("timed_trace_sec_multiplier must be above 0 and at most 1e6 (got {})",
                    timed_trace_sec_multiplier));
  if (custom_output_len && (*custom_output_len < 0 || *custom_output_len > 10'000'000))
    bad(fmt::format("custom_output_len must be from 0 to 10000000 (got {})", *custom_output_len));
}

void to_json(nlohmann::json& j, const DatasetConfig& c) {
  j = nlohmann::json{
      {"dataset_name", c.dataset_name},
      {"dataset_path", c.dataset_path},
      {"num_prompts", c.num_prompts},
      {"random_input_len", c.random_input_len},
      {"random_output_len", c.random_output_len},
      {"random_range_ratio", c.random_range_ratio},
      {"random_output_range_ratio", detail::optional_to_json(c.random_output_range_ratio)},
      {"random_prefix_len", c.random_prefix_len},
      {"sharegpt_output_len", c.sharegpt_output_len},
      {"custom_output_len", detail::optional_to_json(c.custom_output_len)},
      {"prefix_repetition_prefix_len", c.prefix_repetition_prefix_len},
      {"prefix_repetition_suffix_len", c.prefix_repetition_suffix_len},
      {"prefix_repetition_num_prefixes", c.prefix_repetition_num_prefixes},
      {"prefix_repetition_output_len", c.prefix_repetition_output_len},
      {"timed_trace_chunk_hash_size", c.timed_trace_chunk_hash_size},
      {"timed_trace_sec_multiplier", c.timed_trace_sec_multiplier},
      {"timed_trace_label_timestamp", c.timed_trace_label_timestamp},
      {"timed_trace_label_input_length", c.timed_trace_label_input_length},
      {"timed_trace_label_output_length", c.timed_trace_label_output_length},
      {"timed_trace_label_hash_ids", c.timed_trace_label_hash_ids},
      {"disable_shuffle", c.disable_shuffle},
      {"no_oversample", c.no_oversample},
      {"seed", c.seed}};
}

void from_json(const nlohmann::json& j, DatasetConfig& c) {
  c = DatasetConfig{};
  c.dataset_name = j.value("dataset_name", c.dataset_name);
  c.dataset_path = j.value("dataset_path", c.dataset_path);
  c.num_prompts = j.value("num_prompts", c.num_prompts);
  c.random_input_len = j.value("random_input_len", c.random_input_len);
  c.random_output_len = j.value("random_output_len", c.random_output_len);
  c.random_range_ratio = j.value("random_range_ratio", c.random_range_ratio);
  detail::optional_from_json(j, "random_output_range_ratio", c.random_output_range_ratio);
  c.random_prefix_len = j.value("random_prefix_len", c.random_prefix_len);
  c.sharegpt_output_len = j.value("sharegpt_output_len", c.sharegpt_output_len);
  detail::optional_from_json(j, "custom_output_len", c.custom_output_len);
  for (const auto& [key, field] :
       {std::pair{"prefix_repetition_prefix_len", &c.prefix_repetition_prefix_len},
        std::pair{"prefix_repetition_suffix_len", &c.prefix_repetition_suffix_len},
        std::pair{"prefix_repetition_num_prefixes", &c.prefix_repetition_num_prefixes},
        std::pair{"prefix_repetition_output_len", &c.prefix_repetition_output_len}})
    *field = j.value(key, *field);
  c.timed_trace_chunk_hash_size =
      j.value("timed_trace_chunk_hash_size", c.timed_trace_chunk_hash_size);
  c.timed_trace_sec_multiplier =
      j.value("timed_trace_sec_multiplier", c.timed_trace_sec_multiplier);
  for (const auto& [key, field] :
       {std::pair{"timed_trace_label_timestamp", &c.timed_trace_label_timestamp},
        std::pair{"timed_trace_label_input_length", &c.timed_trace_label_input_length},
        std::pair{"timed_trace_label_output_length", &c.timed_trace_label_output_length},
        std::pair{"timed_trace_label_hash_ids", &c.timed_trace_label_hash_ids}})
    *field = j.value(key, *field);
  c.disable_shuffle = j.value("disable_shuffle", c.disable_shuffle);
  c.no_oversample = j.value("no_oversample", c.no_oversample);
  c.seed = j.value("seed", c.seed);
}

std::vector<Prompt> load_dataset(const DatasetConfig& config, const TokenCounter& counter) {
  return load_dataset(config, counter, {});
}

std::vector<Prompt> load_dataset(const DatasetConfig& config, const TokenCounter& counter,
                                 const PromptFilter& needed) {
  config.validate();
  switch (config.dataset_name) {
    case DatasetKind::random:
      return random_prompts(config, counter, needed);
    case DatasetKind::sharegpt:
      return sharegpt_prompts(config, counter);
    case DatasetKind::jsonl:
      return jsonl_prompts(config, counter);
    case DatasetKind::prefix_repetition:
      return prefix_repetition_prompts(config, counter, needed);
    case DatasetKind::burstgpt:
      return burstgpt_prompts(config, counter, needed);
    case DatasetKind::timed_trace:
      return timed_trace_prompts(config, counter, needed);
  }
  throw Error(ErrorCode::invalid_argument, "unknown dataset");
}

}  // namespace aifc
