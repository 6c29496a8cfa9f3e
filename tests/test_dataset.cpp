#include <doctest/doctest.h>

#include <aifc/dataset.hpp>
#include <aifc/error.hpp>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>

namespace {

std::string temp_file(const std::string& name, const std::string& content) {
  const auto path = std::filesystem::temp_directory_path() / ("aifc_test_" + name);
  std::ofstream(path) << content;
  return path.string();
}

// A file of tests/data/ (the Parquet ones are written by pyarrow: make_parquet.py there).
std::string data_file(const std::string& name) {
  return std::string(AIFC_SOURCE_DIR) + "/tests/data/" + name;
}

std::int64_t words(const std::string& s) {
  std::int64_t n = 0;
  bool in = false;
  for (char c : s) {
    if (c != ' ' && !in) ++n;
    in = c != ' ';
  }
  return n;
}

}  // namespace

TEST_CASE("dataset: random prompts are deterministic and within the range") {
  aifc::DatasetConfig c;
  c.num_prompts = 200;
  c.random_input_len = 100;
  c.random_output_len = 20;
  c.random_range_ratio = 0.5;
  c.seed = 9;
  const auto a = aifc::load_dataset(c), b = aifc::load_dataset(c);
  REQUIRE(a.size() == 200);
  bool varied = false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    CHECK(a[i].text == b[i].text);
    CHECK(a[i].input_tokens >= 50);
    CHECK(a[i].input_tokens <= 150);
    CHECK(a[i].output_tokens >= 10);
    CHECK(a[i].output_tokens <= 30);
    CHECK_FALSE(a[i].input_tokens_exact);
    varied |= a[i].input_tokens != a[0].input_tokens;
  }
  CHECK(varied);
  c.seed = 10;
  CHECK(aifc::load_dataset(c)[0].text != a[0].text);
  // vLLM's {"input": 0.5, "output": 0}: output lengths fixed, input lengths still drawn.
  c.random_output_range_ratio = 0.0;
  for (const auto& p : aifc::load_dataset(c)) CHECK(p.output_tokens == 20);
  c.random_output_range_ratio = 1.0;
  CHECK_THROWS_WITH_AS(c.validate(), doctest::Contains("random_output_range_ratio"), aifc::Error);
}

TEST_CASE("dataset: a token counter makes random lengths exact") {
  aifc::DatasetConfig c;
  c.num_prompts = 20;
  c.random_input_len = 64;
  // A tokenizer that splits every word in two: the first guess is twice too long.
  aifc::TokenCounter doubled = [](const std::string& s) -> std::optional<std::int64_t> {
    return 2 * words(s);
  };
  for (const auto& p : aifc::load_dataset(c, doubled)) {
    CHECK(p.input_tokens_exact);
    CHECK(p.input_tokens == 64);
    CHECK(2 * words(p.text) == 64);
  }
  // A server without a tokenizer leaves lengths approximate.
  aifc::TokenCounter none = [](const std::string&) -> std::optional<std::int64_t> {
    return std::nullopt;
  };
  CHECK_FALSE(aifc::load_dataset(c, none)[0].input_tokens_exact);
}

TEST_CASE("dataset: prompts fit a tokenizer that splits words, in a few counts each") {
  // Each word is ceil(length / 3) tokens, as the simulator's --chars-per-token 3 counts.
  int calls = 0;
  aifc::TokenCounter split = [&calls](const std::string& s) -> std::optional<std::int64_t> {
    ++calls;
    std::int64_t n = 0, word = 0;
    for (char c : s + " ") {
      if (c != ' ') {
        ++word;
      } else if (word > 0) {
        n += (word + 2) / 3;
        word = 0;
      }
    }
    return n;
  };
  aifc::DatasetConfig c;
  c.num_prompts = 50;
  for (const std::int64_t len : {1, 16, 200, 1024}) {
    CAPTURE(len);
    c.random_input_len = len;
    calls = 0;
    const auto prompts = aifc::load_dataset(c, split);
    int on_target = 0;
    for (const auto& p : prompts) {
      CHECK(p.input_tokens_exact);
      CHECK(*split(p.text) == p.input_tokens);  // the length reported is the text's count
      // The target, or the nearest word boundary: at most one word (3 tokens here) away.
      CHECK(std::abs(p.input_tokens - len) <= 3);
      on_target += p.input_tokens == len;
    }
    CHECK(on_target == 50);  // the word search plus one top-up reaches every target
    // One count for the probe, then a handful per prompt (the 50 checks above aside).
    const int fitting = calls - 50 - 1;
    CHECK(fitting <= 7 * 50);
    CHECK(static_cast<double>(fitting) / 50 <= 4.0);
    MESSAGE("len ", len, ": ", on_target, "/50 on target, ", fitting / 50.0, " counts a prompt");
  }
}

TEST_CASE("dataset: a tokenizer that counts nothing is not trusted") {
  // A server answering another request shape with 200 and no tokens must not be believed:
  // lengths stay the drawn ones (one word per token) and are not called exact.
  int calls = 0;
  aifc::TokenCounter zero = [&calls](const std::string&) -> std::optional<std::int64_t> {
    ++calls;
    return 0;
  };
  aifc::DatasetConfig c;
  c.num_prompts = 10;
  c.random_input_len = 16;
  for (const auto& p : aifc::load_dataset(c, zero)) {
    CHECK_FALSE(p.input_tokens_exact);
    CHECK(p.input_tokens == 16);
    CHECK(words(p.text) == 16);
  }
  CHECK(calls == 1);
}

TEST_CASE("dataset: random prefix is shared") {
  aifc::DatasetConfig c;
  c.num_prompts = 3;
  c.random_input_len = 10;
  c.random_prefix_len = 5;
  const auto p = aifc::load_dataset(c);
  const auto prefix = p[0].text.substr(0, p[0].text.find(' ', p[0].text.find(' ') + 1));
  for (const auto& x : p) CHECK(x.text.rfind(prefix, 0) == 0);
  CHECK(p[0].input_tokens == 15);
}

TEST_CASE("dataset: sharegpt file") {
  const auto path = temp_file("sharegpt.json", R"([
    {"id":"a","conversations":[{"from":"human","value":"Tell me a story about a very brave little fox"},{"from":"gpt","value":"Once upon a time there lived a fox who was brave beyond measure."}]},
    {"id":"b","conversations":[{"from":"human","value":"hi"}]},
    {"id":"c","conversations":[{"from":"human","value":"What is the capital city of France, and why?"},{"from":"gpt","value":"Paris is the capital of France for historical reasons."}]}
  ])");
  aifc::DatasetConfig c;
  c.dataset_name = aifc::DatasetKind::sharegpt;
  c.dataset_path = path;
  c.num_prompts = 5;
  const auto p = aifc::load_dataset(c);
  REQUIRE(p.size() == 5);  // two usable conversations, cycled
  for (const auto& x : p) {
    CHECK(x.text.find("hi") != 0);
    CHECK(x.output_tokens >= 4);
  }
  c.sharegpt_output_len = 7;
  CHECK(aifc::load_dataset(c)[0].output_tokens == 7);
  // A number beyond a double is an error naming the file (found by fuzz/fuzz_dataset.cpp).
  c.dataset_path = temp_file("overflow.json", R"([{"conversations":[], "n": 88e888}])");
  CHECK_THROWS_WITH_AS(aifc::load_dataset(c), doctest::Contains("overflow.json' is not valid JSON"),
                       aifc::Error);
}

TEST_CASE("dataset: jsonl file, with errors that name the line") {
  const auto good = temp_file(
      "good.jsonl", "{\"prompt\":\"one two three\",\"output_len\":5}\n\n\"just a string\"\n");
  aifc::DatasetConfig c;
  c.dataset_name = aifc::DatasetKind::jsonl;
  c.dataset_path = good;
  c.num_prompts = 2;
  const auto p = aifc::load_dataset(c);
  REQUIRE(p.size() == 2);
  bool saw_output = false;
  for (const auto& x : p) saw_output |= x.output_tokens == 5;
  CHECK(saw_output);

  c.dataset_path = temp_file("bad.jsonl", "{\"prompt\":\"ok\"}\n{\"prompt\": 3}\n");
  CHECK_THROWS_WITH_AS(aifc::load_dataset(c), doctest::Contains("bad.jsonl:2"), aifc::Error);
  c.dataset_path = temp_file("broken.jsonl", "{\"prompt\":\"ok\"}\n{oops\n");
  CHECK_THROWS_WITH_AS(aifc::load_dataset(c), doctest::Contains("broken.jsonl:2"), aifc::Error);
  // A length no server can mean names its line and key (found by fuzz/fuzz_dataset.cpp).
  c.dataset_path =
      temp_file("negative.jsonl", "{\"prompt\":\"ok\"}\n{\"prompt\":\"x\",\"max_tokens\":-7}\n");
  CHECK_THROWS_WITH_AS(aifc::load_dataset(c), doctest::Contains("negative.jsonl:2: max_tokens"),
                       aifc::Error);
  c.dataset_path = temp_file("overflow.jsonl", "{\"prompt\":\"x\",\"output_len\":1e999}\n");
  CHECK_THROWS_WITH_AS(aifc::load_dataset(c), doctest::Contains("overflow.jsonl:1: not valid JSON"),
                       aifc::Error);
  c.dataset_path =
      temp_file("huge.jsonl", "{\"prompt\":\"x\",\"output_len\":18446744073709551615}\n");
  CHECK_THROWS_WITH_AS(aifc::load_dataset(c), doctest::Contains("huge.jsonl:1: output_len"),
                       aifc::Error);
  c.dataset_path = "/nonexistent/file.jsonl";
  CHECK_THROWS_WITH_AS(aifc::load_dataset(c), doctest::Contains("cannot open"), aifc::Error);
}

TEST_CASE("dataset: jsonl as vLLM's custom: 256 tokens unless told, order and oversampling") {
  aifc::DatasetConfig c;
  c.dataset_name = aifc::DatasetKind::jsonl;
  c.dataset_path =
      temp_file("custom.jsonl", "\"p0\"\n\"p1\"\n{\"prompt\":\"p2\",\"output_len\":7}\n\"p3\"\n");
  c.num_prompts = 4;
  c.disable_shuffle = true;
  auto p = aifc::load_dataset(c);
  REQUIRE(p.size() == 4);
  for (int i = 0; i < 4; ++i) CHECK(p[static_cast<std::size_t>(i)].text == "p" + std::to_string(i));
  CHECK(p[0].output_tokens == aifc::kCustomOutputLen);  // vLLM's default for custom prompts
  CHECK(p[2].output_tokens == 7);                       // the line's own
  c.custom_output_len = 3;                              // given: for every prompt
  p = aifc::load_dataset(c);
  for (const auto& x : p) CHECK(x.output_tokens == 3);
  c.custom_output_len = 0;  // no limit: the server decides
  CHECK(aifc::load_dataset(c)[1].output_tokens == 0);
  // Shuffled by the seed unless disabled; the same seed, the same order.
  c.disable_shuffle = false;
  c.num_prompts = 10;
  const auto shuffled = aifc::load_dataset(c);
  REQUIRE(shuffled.size() == 10);  // four prompts, cycled (vLLM oversamples)
  CHECK(shuffled[4].text == shuffled[0].text);
  std::vector<std::string> order;
  for (int i = 0; i < 4; ++i) order.push_back(shuffled[static_cast<std::size_t>(i)].text);
  CHECK(order != std::vector<std::string>{"p0", "p1", "p2", "p3"});  // seed 0 moves them
  CHECK(aifc::load_dataset(c)[0].text == shuffled[0].text);
  c.no_oversample = true;
  CHECK(aifc::load_dataset(c).size() == 4);
  // Round trip, with the unset length as null.
  const auto j = nlohmann::json(c);
  CHECK(j["custom_output_len"] == 0);
  CHECK(j.get<aifc::DatasetConfig>().no_oversample);
  CHECK_FALSE(nlohmann::json(aifc::DatasetConfig{}).get<aifc::DatasetConfig>().custom_output_len);
}

TEST_CASE("dataset: config validation") {
  aifc::DatasetConfig c;
  c.num_prompts = 0;
  CHECK_THROWS_WITH_AS(c.validate(), doctest::Contains("num_prompts"), aifc::Error);
  c = {};
  c.random_range_ratio = 1.5;
  CHECK_THROWS_WITH_AS(c.validate(), doctest::Contains("random_range_ratio"), aifc::Error);
  c = {};
  c.dataset_name = aifc::DatasetKind::sharegpt;
  CHECK_THROWS_WITH_AS(c.validate(), doctest::Contains("dataset_path"), aifc::Error);
  // JSON mapping
  const auto j = nlohmann::json(aifc::DatasetConfig{});
  CHECK(j.at("dataset_name") == "random");
  CHECK(j.get<aifc::DatasetConfig>().random_input_len == 1024);
}

TEST_CASE("dataset: a rank builds only the random prompts it needs, the same as the whole set's") {
  aifc::DatasetConfig c;
  c.num_prompts = 40;
  c.random_input_len = 30;
  c.random_output_len = 10;
  c.random_range_ratio = 0.5;
  c.random_prefix_len = 5;
  c.seed = 11;
  std::int64_t counted = 0;
  // Not additive (a word is ceil(length / 3) tokens), so every prompt is fitted by counting.
  const aifc::TokenCounter words = [&](const std::string& text) -> std::optional<std::int64_t> {
    ++counted;
    std::int64_t n = 0, length = 0;
    for (char ch : text + " ") {
      if (ch == ' ') {
        n += (length + 2) / 3;
        length = 0;
      } else {
        ++length;
      }
    }
    return n;
  };
  const auto all = aifc::load_dataset(c, words);
  const std::int64_t counted_all = counted;
  counted = 0;
  const auto mine =
      aifc::load_dataset(c, words, [](std::int64_t i) { return i % 4 == 1; });  // rank 1 of 4
  REQUIRE(mine.size() == all.size());
  for (std::size_t i = 0; i < all.size(); ++i) {
    CAPTURE(i);
    if (i % 4 == 1) {
      CHECK(mine[i].text == all[i].text);
      CHECK(mine[i].input_tokens == all[i].input_tokens);
      CHECK(mine[i].output_tokens == all[i].output_tokens);
    } else {
      CHECK(mine[i].text.empty());
    }
  }
  CHECK(counted < counted_all);  // the other ranks' prompts were neither built nor counted
}

TEST_CASE("dataset: prefix_repetition shares each prefix among an equal share of the prompts") {
  aifc::DatasetConfig c;
  c.dataset_name = aifc::DatasetKind::prefix_repetition;
  c.num_prompts = 20;
  c.prefix_repetition_num_prefixes = 4;
  c.prefix_repetition_prefix_len = 8;
  c.prefix_repetition_suffix_len = 5;
  c.prefix_repetition_output_len = 7;
  const auto prompts = aifc::load_dataset(c);
  REQUIRE(prompts.size() == 20);
  std::map<std::string, int> uses;  // the first 8 words of each prompt
  for (const auto& p : prompts) {
    CHECK(p.input_tokens == 13);
    CHECK(words(p.text) == 13);
    CHECK(p.output_tokens == 7);
    std::string prefix;
    std::size_t at = 0;
    for (int w = 0; w < 8; ++w) at = p.text.find(' ', at + 1);
    uses[p.text.substr(0, at)]++;
  }
  REQUIRE(uses.size() == 4);
  for (const auto& [prefix, n] : uses) CHECK(n == 5);
  // Shuffled by the seed; with disable_shuffle each prefix's prompts come together.
  auto prefix_of = [](const aifc::Prompt& p) { return p.text.substr(0, p.text.find(' ', 20)); };
  c.disable_shuffle = true;
  const auto ordered = aifc::load_dataset(c);
  for (int i = 0; i < 20; ++i) CHECK((prefix_of(ordered[i]) == prefix_of(ordered[i / 5 * 5])));
  // With the server's tokenizer the whole prompt is fitted (here every word is two tokens).
  aifc::TokenCounter doubled = [](const std::string& s) -> std::optional<std::int64_t> {
    return 2 * words(s);
  };
  c.prefix_repetition_suffix_len = 6;
  for (const auto& p : aifc::load_dataset(c, doubled)) CHECK(p.input_tokens == 14);
  c.prefix_repetition_num_prefixes = 21;
  CHECK_THROWS_WITH_AS(c.validate(), doctest::Contains("must not exceed num_prompts"), aifc::Error);
}

TEST_CASE("dataset: burstgpt takes the GPT-4 rows with a response, as vLLM") {
  const auto path =
      temp_file("burst.csv",
                "Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type\n"
                "5,ChatGPT,100,50,150,Conversation log\n"
                "7,GPT-4,30,12,42,Conversation log\n"
                "9,GPT-4,40,0,40,Conversation log\n"  // failed: no response
                "11,GPT-4,20,6,26,API log\r\n");
  aifc::DatasetConfig c;
  c.dataset_name = aifc::DatasetKind::burstgpt;
  c.dataset_path = path;
  c.num_prompts = 6;
  const auto prompts = aifc::load_dataset(c);
  REQUIRE(prompts.size() == 6);  // two rows, oversampled
  std::set<std::pair<std::int64_t, std::int64_t>> seen;
  for (const auto& p : prompts) {
    seen.emplace(p.input_tokens, p.output_tokens);
    CHECK(words(p.text) == p.input_tokens);
  }
  CHECK(seen == std::set<std::pair<std::int64_t, std::int64_t>>{{30, 12}, {20, 6}});
  c.no_oversample = true;
  CHECK(aifc::load_dataset(c).size() == 2);
  // A bad row is named by its line.
  c.dataset_path = temp_file("burst_bad.csv",
                             "Timestamp,Model,Request tokens,Response tokens,Total tokens\n"
                             "1,GPT-4,12,3,15\n"
                             "2,GPT-4,many,3,15\n");
  CHECK_THROWS_WITH_AS(aifc::load_dataset(c), doctest::Contains("burst_bad.csv:3: 'many'"),
                       aifc::Error);
  c.dataset_path = temp_file("burst_other.csv", "a,b\n1,2\n");
  CHECK_THROWS_WITH_AS(aifc::load_dataset(c), doctest::Contains("no 'Model' column"), aifc::Error);
}

TEST_CASE("dataset: a timed trace keeps its times and shares the blocks of equal hash ids") {
  const auto path = temp_file(
      "trace.jsonl",
      "{\"timestamp\": 3000, \"input_length\": 40, \"output_length\": 5, \"hash_ids\": [1, 2, 9]}\n"
      "{\"timestamp\": 1000, \"input_length\": 20, \"output_length\": 7, \"hash_ids\": [1, 2]}\n"
      "{\"timestamp\": 1500, \"input_length\": 12, \"output_length\": 3}\n");
  aifc::DatasetConfig c;
  c.dataset_name = aifc::DatasetKind::timed_trace;
  c.dataset_path = path;
  c.num_prompts = 100;  // a trace is not repeated: three prompts
  c.timed_trace_sec_multiplier = 0.001;
  c.timed_trace_chunk_hash_size = 8;
  const auto prompts = aifc::load_dataset(c);
  REQUIRE(prompts.size() == 3);
  CHECK(prompts[0].arrival_s == doctest::Approx(1.0));  // in time order
  CHECK(prompts[1].arrival_s == doctest::Approx(1.5));
  CHECK(prompts[2].arrival_s == doctest::Approx(3.0));
  CHECK(prompts[0].input_tokens == 20);
  CHECK(words(prompts[0].text) == 20);
  CHECK(prompts[2].input_tokens == 40);
  CHECK(prompts[2].output_tokens == 5);
  // Hash ids 1 and 2 are the same 16 words at the start of both prompts.
  auto first_words = [](const std::string& text, int n) {
    std::size_t at = 0;
    for (int i = 0; i < n; ++i) at = text.find(' ', at + 1);
    return text.substr(0, at);
  };
  CHECK(first_words(prompts[0].text, 16) == first_words(prompts[2].text, 16));
  CHECK(first_words(prompts[1].text, 8) != first_words(prompts[0].text, 8));
  c.num_prompts = 2;
  CHECK(aifc::load_dataset(c).size() == 2);
  c.dataset_path = temp_file("trace_bad.jsonl",
                             "{\"timestamp\": 1, \"input_length\": 4, \"output_length\": 2}\n"
                             "{\"timestamp\": 2, \"input_length\": 4}\n");
  CHECK_THROWS_WITH_AS(aifc::load_dataset(c),
                       doctest::Contains("trace_bad.jsonl:2: no whole number \"output_length\""),
                       aifc::Error);
}

TEST_CASE("dataset: jsonl also reads the chat shapes of exported Hugging Face sets") {
  const auto path = temp_file(
      "chats.jsonl",
      R"({"messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "first question"}]})"
      "\n"
      R"({"conversations": [{"from": "human", "value": "second question"}, {"from": "gpt", "value": "an answer"}]})"
      "\n"
      R"({"conversation": [{"role": "user", "content": "third question"}]})"
      "\n");
  aifc::DatasetConfig c;
  c.dataset_name = aifc::DatasetKind::jsonl;
  c.dataset_path = path;
  c.num_prompts = 3;
  c.disable_shuffle = true;
  const auto prompts = aifc::load_dataset(c);
  REQUIRE(prompts.size() == 3);
  CHECK(prompts[0].text == "first question");
  CHECK(prompts[1].text == "second question");
  CHECK(prompts[2].text == "third question");
  CHECK(prompts[0].output_tokens == aifc::kCustomOutputLen);
  c.dataset_path =
      temp_file("chats_bad.jsonl", R"({"messages": [{"role": "assistant", "content": "hi"}]})");
  CHECK_THROWS_WITH_AS(aifc::load_dataset(c), doctest::Contains("with a user turn"), aifc::Error);
}

TEST_CASE("dataset: Parquet files as the Hub stores them feed custom, sharegpt and timed_trace") {
  aifc::DatasetConfig c;
  c.dataset_name = aifc::DatasetKind::jsonl;
  c.disable_shuffle = true;
  c.num_prompts = 3;
  c.dataset_path = data_file("chat.parquet");  // "messages" chats, pyarrow's defaults
  auto prompts = aifc::load_dataset(c);
  REQUIRE(prompts.size() == 3);
  CHECK(prompts[0].text == "Name a prime.");
  CHECK(prompts[1].text == "Zähle bis drei.");
  CHECK(prompts[0].output_tokens == aifc::kCustomOutputLen);
  c.dataset_path = data_file("prompts_v2.parquet");  // a "prompt" column and output_tokens
  c.num_prompts = 7;
  prompts = aifc::load_dataset(c);
  REQUIRE(prompts.size() == 7);
  CHECK(prompts[3].text == "prompt number 3 " + std::string(120, 'x'));
  CHECK(prompts[3].output_tokens == 8);
  CHECK(prompts[2].output_tokens == aifc::kCustomOutputLen);  // null there: the default

  c.dataset_name = aifc::DatasetKind::sharegpt;
  c.dataset_path = data_file("sharegpt.parquet");
  c.num_prompts = 2;
  prompts = aifc::load_dataset(c);
  REQUIRE(prompts.size() == 2);
  CHECK(prompts[0].text == "What is the capital of France, please?");

  c.dataset_name = aifc::DatasetKind::timed_trace;
  c.dataset_path = data_file("trace.parquet");
  c.timed_trace_sec_multiplier = 0.001;
  c.num_prompts = 3;
  prompts = aifc::load_dataset(c);
  REQUIRE(prompts.size() == 3);
  CHECK(prompts[1].arrival_s == doctest::Approx(0.25));
  CHECK(prompts[1].output_tokens == 8);
}

TEST_CASE("dataset: a Parquet file aifc cannot read is refused with the file and the reason") {
  aifc::DatasetConfig c;
  c.dataset_name = aifc::DatasetKind::jsonl;
  c.num_prompts = 1;
  c.dataset_path = temp_file("set.parquet", std::string("PAR1\x15\x04rest of a file"));
  CHECK_THROWS_WITH_AS(aifc::load_dataset(c),
                       doctest::Contains("set.parquet' (Parquet): not a Parquet file"),
                       aifc::Error);
  c.dataset_path = data_file("prompts_brotli.parquet");
  CHECK_THROWS_WITH_AS(aifc::load_dataset(c), doctest::Contains("compressed with BROTLI"),
                       aifc::Error);
  c.dataset_name = aifc::DatasetKind::burstgpt;
  c.dataset_path = data_file("chat.parquet");
  CHECK_THROWS_WITH_AS(aifc::load_dataset(c), doctest::Contains("burstgpt reads BurstGPT's CSV"),
                       aifc::Error);
  // A row without a user turn is named by its row number.
  c.dataset_name = aifc::DatasetKind::jsonl;
  c.dataset_path = data_file("trace.parquet");
  CHECK_THROWS_WITH_AS(aifc::load_dataset(c), doctest::Contains("trace.parquet: row 1: expected"),
                       aifc::Error);
  // Three bytes are too short to be anything but JSON lines.
  c.dataset_path = temp_file("tiny.jsonl", "\"a\"");
  CHECK(aifc::load_dataset(c).at(0).text == "a");
}
