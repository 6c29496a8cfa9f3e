#include "cli.hpp"

#include <fmt/format.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <aifc/error.hpp>
#include <aifc/version.hpp>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <thread>

#include "flags.hpp"

namespace aifc::cli {
namespace {

void add_sim_flags(FlagTable& t, SimulatorConfig& s, const std::string& prefix) {
  using A = Flag::Arity;
  auto one = [&](const std::string& name, std::function<void(const std::string&)> f,
                 std::string help) {
    t[prefix + name] = {A::one, [f](const std::vector<std::string>& v) { f(v[0]); },
                        std::move(help)};
  };
  one(
      "ttft-ms", [&s](const std::string& v) { s.ttft = DelaySpec::parse(v); },
      "time to first token: MS, uniform:LO:HI, exp:MEAN, normal:MEAN:SD");
  one(
      "itl-ms", [&s](const std::string& v) { s.itl = DelaySpec::parse(v); },
      "time between tokens, same forms");
  one(
      "model", [&s](const std::string& v) { s.model = v; }, "served model name");
  one(
      "max-tokens", [&s](const std::string& v) { s.default_max_tokens = to_int(v, "max tokens"); },
      "tokens when the request sets none");
  one(
      "tokens-per-chunk",
      [&s](const std::string& v) { s.tokens_per_chunk = to_int(v, "tokens per chunk"); },
      "tokens per streamed chunk");
  one(
      "reasoning-tokens",
      [&s](const std::string& v) { s.reasoning_tokens = to_int(v, "reasoning tokens"); },
      "chat: first N tokens as reasoning_content");
  one(
      "eos-probability",
      [&s](const std::string& v) { s.eos_probability = to_double(v, "probability"); },
      "chance per token to stop early unless ignore_eos");
  one(
      "error-rate", [&s](const std::string& v) { s.error_rate = to_double(v, "rate"); },
      "share of requests answered with --error-status");
  one(
      "error-status",
      [&s](const std::string& v) { s.error_status = static_cast<int>(to_int(v, "status")); },
      "HTTP status of injected errors (500, 429, ...)");
  one(
      "disconnect-rate", [&s](const std::string& v) { s.disconnect_rate = to_double(v, "rate"); },
      "share of streams cut mid-way");
  one(
      "stall-rate", [&s](const std::string& v) { s.stall_rate = to_double(v, "rate"); },
      "share of streams that stall");
  one(
      "stall-ms",
      [&s](const std::string& v) { s.stall = std::chrono::milliseconds(to_int(v, "stall ms")); },
      "length of a stall");
  one(
      "stream-error-rate",
      [&s](const std::string& v) { s.stream_error_rate = to_double(v, "rate"); },
      "share of streams that carry an error object");
  one(
      "stream-error-style",
      [&s](const std::string& v) {
        s.stream_error_style =
            enum_flag<StreamErrorStyle>(v, "stream error style", "data, event, error_field");
      },
      "how a stream error is written: data (vLLM), event (event: error), error_field "
      "(llama.cpp's error: line)");
  one(
      "malformed-rate", [&s](const std::string& v) { s.malformed_rate = to_double(v, "rate"); },
      "share of streams with a broken chunk");
  one(
      "empty-response-rate",
      [&s](const std::string& v) { s.empty_response_rate = to_double(v, "rate"); },
      "share of answers that are 200 with no content and no usage");
  one(
      "length-field",
      [&s](const std::string& v) {
        s.length_field =
            enum_flag<LengthField>(v, "length field", "both, max_tokens, max_completion_tokens");
      },
      "which request field sets the output length: both (vLLM), max_tokens (llama.cpp), "
      "max_completion_tokens");
  one(
      "tokenizer",
      [&s](const std::string& v) {
        s.tokenizer = enum_flag<SimTokenizer>(v, "tokenizer", "vllm, llama_cpp, none");
      },
      "/tokenize request shape: vllm, llama_cpp (empty answer to other shapes), none (404)");
  one(
      "chars-per-token",
      [&s](const std::string& v) { s.chars_per_token = to_int(v, "characters per token"); },
      "0: a word is a token; N: a word is ceil(length/N) tokens");
  one(
      "close-after-response",
      [&s](const std::string& v) {
        s.close_after_response = std::chrono::milliseconds(to_int(v, "milliseconds"));
      },
      "close every connection MS after its response while promising keep-alive (llama.cpp)");
  one(
      "max-requests-per-connection",
      [&s](const std::string& v) {
        s.max_requests_per_connection = to_int(v, "requests per connection");
      },
      "close a connection after N requests (Keep-Alive max); 0: never");
  one(
      "fault-after-tokens",
      [&s](const std::string& v) { s.fault_after_tokens = to_int(v, "tokens"); },
      "mid-stream faults come after this many tokens");
  one(
      "threads", [&s](const std::string& v) { s.threads = to_int(v, "threads"); },
      "connections served at once");
}

// `base_url`, `host` and `port` are composed into the client's URL after parsing, so that the
// flags' order does not matter.
FlagTable bench_flags(BenchOptions& o, std::string& base_url, std::string& host,
                      std::int64_t& port) {
  using A = Flag::Arity;
  FlagTable t;
  auto one = [&](const std::string& name, std::function<void(const std::string&)> f,
                 std::string help) {
    t[name] = {A::one, [f](const std::vector<std::string>& v) { f(v[0]); }, std::move(help)};
  };
  auto flag = [&](const std::string& name, std::function<void()> f, std::string help) {
    t[name] = {A::none, [f](const std::vector<std::string>&) { f(); }, std::move(help)};
  };
  auto& c = o.spec.client;
  auto& d = o.spec.dataset;
  auto& l = o.spec.load;
  one(
      "--base-url",
      [&](const std::string& v) {
        base_url = v;
        o.base_url_given = true;
      },
      "server URL; absent: start the built-in simulator");
  one(
      "--host",
      [&](const std::string& v) {
        host = v;
        o.base_url_given = true;
      },
      "server host (default 127.0.0.1, with --port), if no --base-url");
  one(
      "--port",
      [&](const std::string& v) {
        port = to_int(v, "port");
        if (port < 1 || port > 65535) usage_error(fmt::format("--port {} is out of range", port));
        o.base_url_given = true;
      },
      "server port (default 8000), if no --base-url");
  one(
      "--endpoint", [&](const std::string& v) { c.endpoint = v; },
      "/v1/completions (default) or /v1/chat/completions");
  one(
      "--backend",
      [&](const std::string& v) {
        if (v == "openai-chat")
          c.endpoint = "/v1/chat/completions";
        else if (v == "openai" || v == "vllm")
          c.endpoint = "/v1/completions";
        else
          usage_error(fmt::format("backend '{}' is not one of vllm, openai, openai-chat", v));
      },
      "vllm | openai | openai-chat (sets the endpoint)");
  one(
      "--model", [&](const std::string& v) { c.model = v; },
      "model name; default: the server's first model");
  one(
      "--api-key", [&](const std::string& v) { c.api_key = v; },
      "bearer token (default: $OPENAI_API_KEY)");
  t["--header"] = {A::multi,
                   [&](const std::vector<std::string>& v) {
                     for (const auto& h : v) c.headers.push_back(key_value(h));
                   },
                   "extra request headers KEY=VALUE"};
  one(
      "--extra-body",
      [&](const std::string& v) {
        try {
          c.extra_body = nlohmann::json::parse(v);
        } catch (const nlohmann::json::exception&) {
          usage_error("--extra-body must be a JSON object");
        }
        if (!c.extra_body.is_object()) usage_error("--extra-body must be a JSON object");
      },
      "JSON object merged into every request body");
  flag(
      "--ignore-eos", [&] { c.ignore_eos = true; }, "ask the server to ignore EOS");
  flag(
      "--no-stream", [&] { c.stream = false; }, "send non-streaming requests");
  flag(
      "--insecure", [&] { c.verify_tls = false; }, "https: skip certificate verification");
  one(
      "--ca-cert", [&](const std::string& v) { c.ca_cert_path = v; }, "https: CA bundle file");
  one(
      "--request-timeout",
      [&](const std::string& v) { c.request_timeout = seconds_flag(v, "seconds"); },
      "seconds per request (default 21600)");
  one(
      "--first-token-timeout",
      [&](const std::string& v) { c.first_token_timeout = seconds_flag(v, "seconds"); },
      "seconds to the first token (default none)");
  one(
      "--connect-timeout",
      [&](const std::string& v) { c.connect_timeout = seconds_flag(v, "seconds"); },
      "seconds to connect (default 10)");
  one(
      "--read-timeout", [&](const std::string& v) { c.read_timeout = seconds_flag(v, "seconds"); },
      "longest silence within a response (default 300)");
  one(
      "--dataset-name",
      [&](const std::string& v) {
        if (v == "random")
          d.dataset_name = DatasetKind::random;
        else if (v == "sharegpt")
          d.dataset_name = DatasetKind::sharegpt;
        else if (v == "jsonl" || v == "custom")
          d.dataset_name = DatasetKind::jsonl;
        else
          usage_error(fmt::format("dataset '{}' is not one of random, sharegpt, jsonl", v));
      },
      "random | sharegpt | jsonl");
  one(
      "--dataset-path", [&](const std::string& v) { d.dataset_path = v; },
      "file for sharegpt / jsonl");
  one(
      "--num-prompts",
      [&](const std::string& v) { d.num_prompts = l.num_requests = to_int(v, "prompts"); },
      "requests to send (default 1000)");
  one(
      "--random-input-len", [&](const std::string& v) { d.random_input_len = to_int(v, "tokens"); },
      "random: input tokens (default 1024)");
  one(
      "--random-output-len",
      [&](const std::string& v) { d.random_output_len = to_int(v, "tokens"); },
      "random: output tokens (default 128)");
  one(
      "--random-range-ratio",
      [&](const std::string& v) { d.random_range_ratio = to_double(v, "ratio"); },
      "random: lengths in [len*(1-r), len*(1+r)]");
  one(
      "--random-prefix-len",
      [&](const std::string& v) { d.random_prefix_len = to_int(v, "tokens"); },
      "random: shared prefix tokens");
  one(
      "--sharegpt-output-len",
      [&](const std::string& v) { d.sharegpt_output_len = to_int(v, "tokens"); },
      "sharegpt: fixed output length");
  flag(
      "--no-server-tokenizer", [&] { o.spec.use_server_tokenizer = false; },
      "do not use /tokenize for exact lengths");
  one(
      "--request-rate", [&](const std::string& v) { l.request_rate = to_double(v, "requests/s"); },
      "requests per second or inf (default inf)");
  one(
      "--burstiness", [&](const std::string& v) { l.burstiness = to_double(v, "burstiness"); },
      "gamma shape of arrivals; 1 = Poisson");
  one(
      "--max-concurrency", [&](const std::string& v) { l.max_concurrency = to_int(v, "requests"); },
      "most requests in flight");
  one(
      "--duration", [&](const std::string& v) { l.duration = seconds_flag(v, "seconds"); },
      "send for this many seconds instead of --num-prompts");
  one(
      "--num-warmups", [&](const std::string& v) { l.num_warmups = to_int(v, "requests"); },
      "uncounted warm-up requests");
  one(
      "--ramp-up-strategy",
      [&](const std::string& v) {
        if (v == "linear")
          l.ramp_up_strategy = RampUp::linear;
        else if (v == "exponential")
          l.ramp_up_strategy = RampUp::exponential;
        else
          usage_error(fmt::format("ramp-up '{}' is not linear or exponential", v));
      },
      "linear | exponential");
  one(
      "--ramp-up-start-rps",
      [&](const std::string& v) { l.ramp_up_start_rps = to_double(v, "rps"); },
      "ramp-up start rate");
  one(
      "--ramp-up-end-rps", [&](const std::string& v) { l.ramp_up_end_rps = to_double(v, "rps"); },
      "ramp-up end rate");
  one(
      "--seed",
      [&](const std::string& v) {
        d.seed = l.seed = static_cast<std::uint64_t>(to_int(v, "seed"));
      },
      "seed of prompts and arrivals (default 0)");
  one(
      "--rank",
      [&](const std::string& v) {
        o.spec.shard.rank = static_cast<std::uint32_t>(to_int(v, "rank"));
      },
      "this process's part of a distributed run");
  one(
      "--nranks",
      [&](const std::string& v) {
        o.spec.shard.nranks = static_cast<std::uint32_t>(to_int(v, "ranks"));
      },
      "number of parts of a distributed run");
  one(
      "--transport",
      [&](const std::string& v) {
        if (v == "auto" || v == "automatic")
          o.spec.transport = Transport::automatic;
        else if (v == "event-loop" || v == "event_loop")
          o.spec.transport = Transport::event_loop;
        else if (v == "threads")
          o.spec.transport = Transport::threads;
        else
          usage_error(fmt::format("transport '{}' is not auto, event-loop or threads", v));
      },
      "auto (default) | event-loop | threads");
  one(
      "--max-clients", [&](const std::string& v) { o.spec.max_clients = to_int(v, "clients"); },
      "most connections when concurrency is unbounded");
  t["--percentile-metrics"] = {
      A::multi,
      [&](const std::vector<std::string>& v) { o.spec.summary.percentile_metrics = split_list(v); },
      "ttft,tpot,itl,e2el (default ttft,tpot,itl)"};
  t["--metric-percentiles"] = {
      A::multi,
      [&](const std::vector<std::string>& v) {
        o.spec.summary.metric_percentiles.clear();
        for (const auto& p : split_list(v))
          o.spec.summary.metric_percentiles.push_back(to_double(p, "percentile"));
      },
      "percentiles to report (default 99)"};
  t["--goodput"] = {A::multi,
                    [&](const std::vector<std::string>& v) {
                      std::string joined;
                      for (const auto& s : v) joined += s + " ";
                      o.spec.summary.goodput = GoodputSlo::parse(joined);
                    },
                    "SLOs: ttft:MS tpot:MS e2el:MS"};
  flag(
      "--save-result", [&] { o.save_result = true; }, "write the result JSON");
  flag(
      "--save-detailed", [&] { o.save_result = o.save_detailed = true; },
      "also write per-request data");
  one(
      "--result-dir", [&](const std::string& v) { o.result_dir = v; },
      "directory of the result file");
  one(
      "--result-filename", [&](const std::string& v) { o.result_filename = v; },
      "name of the result file");
  one(
      "--label", [&](const std::string& v) { o.label = v; }, "label of the run in the result");
  t["--metadata"] = {A::multi,
                     [&](const std::vector<std::string>& v) {
                       for (const auto& m : v) o.metadata.push_back(key_value(m));
                     },
                     "KEY=VALUE pairs stored in the result"};
  flag(
      "--disable-tqdm", [&] { o.progress = false; }, "no progress line");
  flag(
      "--no-progress", [&] { o.progress = false; }, "no progress line");
  flag(
      "--help", [] {}, "this help (-h); the program prints it before parsing");
  add_sim_flags(t, o.simulator, "--sim-");
  return t;
}

const char* kBenchHead =
    "usage: aifc bench [flags]\n"
    "Benchmarks an OpenAI-compatible server (the built-in simulator when no --base-url is given).\n"
    "Flags (named as in `vllm bench serve`; --sim-* configure the built-in simulator):\n";

// Prints progress on stderr from the dispatcher thread: a rewritten line on a terminal, a line
// every few seconds elsewhere (logs).
class ProgressPrinter : public Observer {
 public:
  ProgressPrinter() : tty_(isatty(STDERR_FILENO) != 0) {}
  void on_progress(const ProgressSnapshot& s) override {
    if (!tty_ && s.elapsed_s - last_line_s_ < 5.0) return;
    last_line_s_ = s.elapsed_s;
    const std::string total = s.total ? fmt::format("/{}", s.total) : std::string();
    std::fprintf(
        stderr,
        "%s[aifc] %6.1fs  done %llu%s  failed %llu  in flight %llu  %.1f req/s  %.1f tok/s%s",
        tty_ ? "\r" : "", s.elapsed_s, static_cast<unsigned long long>(s.completed), total.c_str(),
        static_cast<unsigned long long>(s.failed), static_cast<unsigned long long>(s.in_flight),
        s.request_throughput, s.output_throughput, tty_ ? "   " : "\n");
    std::fflush(stderr);
    printed_ = true;
  }
  void on_run_finished(const ProgressSnapshot&) override {
    if (tty_ && printed_) std::fputs("\n", stderr);
  }

 private:
  bool tty_;
  bool printed_ = false;
  double last_line_s_ = -1e9;
};

std::string rate_word(double rate) { return std::isinf(rate) ? "inf" : fmt::format("{}", rate); }

}  // namespace

BenchOptions parse_bench_args(const std::vector<std::string>& args) {
  BenchOptions o;
  o.simulator.port = 0;
  o.simulator.ttft = DelaySpec::parse("uniform:20:60");
  o.simulator.itl = DelaySpec::parse("uniform:5:15");
  o.spec.raise_fd_limit = true;  // a program of its own: every stream is a socket
  if (const char* key = std::getenv("OPENAI_API_KEY")) o.spec.client.api_key = key;
  std::string base_url, host = "127.0.0.1";
  std::int64_t port = 8000;
  const auto table = bench_flags(o, base_url, host, port);
  parse_flags(args, table, "bench");
  if (!base_url.empty())
    o.spec.client.base_url = base_url;
  else if (o.base_url_given)
    o.spec.client.base_url = fmt::format(
        "http://{}:{}", host.find(':') != std::string::npos ? "[" + host + "]" : host, port);
  o.spec.load.seed = o.spec.dataset.seed;
  if (!o.base_url_given) o.spec.simulator = o.simulator;
  o.spec.validate();
  return o;
}

FlagTable sim_flags(SimulatorConfig& s) {
  FlagTable t;
  add_sim_flags(t, s, "--");
  t["--host"] = {Flag::Arity::one, [&](const std::vector<std::string>& v) { s.host = v[0]; },
                 "address to listen on (default 127.0.0.1)"};
  t["--port"] = {
      Flag::Arity::one,
      [&](const std::vector<std::string>& v) { s.port = static_cast<int>(to_int(v[0], "port")); },
      "port (default 8000; 0 = any free)"};
  t["--seed"] = {Flag::Arity::one,
                 [&](const std::vector<std::string>& v) {
                   s.seed = static_cast<std::uint64_t>(to_int(v[0], "seed"));
                 },
                 "seed of delays and faults"};
  t["--api-key"] = {Flag::Arity::one, [&](const std::vector<std::string>& v) { s.api_key = v[0]; },
                    "require this bearer token"};
  t["--help"] = {Flag::Arity::none, [](const std::vector<std::string>&) {}, "this help"};
  return t;
}

SimulatorConfig parse_sim_args(const std::vector<std::string>& args) {
  SimulatorConfig s;
  const FlagTable t = sim_flags(s);
  parse_flags(args, t, "sim");
  s.validate();
  return s;
}

std::string bench_help() {
  BenchOptions o;
  std::string base_url, host;
  std::int64_t port = 0;
  return help_text(bench_flags(o, base_url, host, port), kBenchHead);
}

std::vector<FlagInfo> bench_flag_list() {
  BenchOptions o;
  std::string base_url, host;
  std::int64_t port = 0;
  std::vector<FlagInfo> out;
  for (const auto& [name, flag] : bench_flags(o, base_url, host, port))
    out.push_back({name,
                   flag.arity == Flag::Arity::none  ? 0
                   : flag.arity == Flag::Arity::one ? 1
                                                    : 2,
                   flag.help});
  return out;
}

std::string sim_help() {
  SimulatorConfig s;
  return help_text(sim_flags(s),
                   "usage: aifc sim [flags]\nA vLLM-compatible simulator on loopback.\n");
}

nlohmann::json bench_document(const BenchOptions& o, const Benchmark& benchmark,
                              const BenchmarkResult& result) {
  nlohmann::json doc = benchmark.result_document(result, o.save_detailed);
  doc["label"] = o.label.empty() ? nlohmann::json(nullptr) : nlohmann::json(o.label);
  for (const auto& [k, v] : o.metadata) doc[k] = v;
  return doc;
}

std::string default_result_filename(const BenchOptions& o, const nlohmann::json& document) {
  // From the document itself, so that the name and the file's "date" and "model_id" agree.
  const std::string model = document.value("model_id", std::string("model"));
  const auto& rate = document["request_rate"];
  const auto& concurrency = document["max_concurrency"];
  return fmt::format(
      "{}-{}qps{}-{}-{}.json", o.label.empty() ? "aifc" : o.label,
      rate.is_string() ? rate.get<std::string>() : fmt::format("{}", rate.get<double>()),
      concurrency.is_number() ? fmt::format("-concurrency{}", concurrency.get<std::int64_t>()) : "",
      model.substr(model.rfind('/') + 1), document.value("date", std::string()));
}

int bench_main(const std::vector<std::string>& args) {
  BenchOptions o;
  if (const auto code = parse_or_exit(o, parse_bench_args, args, bench_help)) return *code;
  std::unique_ptr<Benchmark> benchmark;
  std::atomic<bool> interrupted{false};
  std::mutex benchmark_mutex;
  SignalWatcher signals([&](int) {
    interrupted.store(true);
    std::lock_guard lock(benchmark_mutex);
    if (benchmark) benchmark->stop();
  });
  try {
    auto created = std::make_unique<Benchmark>(o.spec);
    const auto& spec = created->spec();
    if (o.verbose && spec.simulator)
      std::cerr << fmt::format(
          "[aifc] no --base-url: started the built-in simulator at {} (ttft {} ms, itl {} ms)\n",
          spec.client.base_url, spec.simulator->ttft.to_string(), spec.simulator->itl.to_string());
    if (o.verbose && created->tokenizer() != TokenizerApi::none)
      std::cerr << fmt::format("[aifc] counting prompt tokens with the server's /tokenize ({})\n",
                               to_string(created->tokenizer()));
    for (const auto& warning : created->warnings())
      std::cerr << "[aifc] warning: " << warning << "\n";
    if (interrupted.load()) {
      std::cerr << "[aifc] interrupted before the run started; nothing was measured\n";
      return 130;
    }
    if (o.progress) created->add_observer(std::make_shared<ProgressPrinter>());
    if (o.verbose)
      std::cerr << fmt::format(
          "[aifc] {} -> {}{}  model {}  rate {}  burstiness {}  max concurrency {}\n",
          spec.load.duration.count() > 0 ? fmt::format("{} s", spec.load.duration.count() / 1000.0)
                                         : fmt::format("{} requests", spec.load.num_requests),
          spec.client.base_url, spec.client.endpoint, spec.client.model,
          rate_word(spec.load.request_rate), spec.load.burstiness,
          spec.load.max_concurrency > 0 ? std::to_string(spec.load.max_concurrency) : "unbounded");
    {
      std::lock_guard lock(benchmark_mutex);
      benchmark = std::move(created);
    }
    BenchmarkResult result = benchmark->run();
    std::cout << benchmark->summary_table(result);
    std::cout.flush();
    if (result.observer_errors)
      std::cerr << "[aifc] an observer failed: " << result.first_observer_error << "\n";
    if (o.save_result || result.interrupted) {
      const nlohmann::json document = bench_document(o, *benchmark, result);
      const std::string name =
          o.result_filename.empty() ? default_result_filename(o, document) : o.result_filename;
      const auto path = std::filesystem::path(o.result_dir) / name;
      std::error_code ec;
      std::filesystem::create_directories(o.result_dir, ec);
      std::ofstream out(path);
      if (!out)
        throw Error(ErrorCode::io_error,
                    fmt::format("cannot write the result to '{}'", path.string()));
      out << document.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
      if (!out.good())
        throw Error(ErrorCode::io_error,
                    fmt::format("cannot write the result to '{}'", path.string()));
      std::cerr << fmt::format("[aifc] {}result written to {}\n",
                               result.interrupted ? "interrupted; partial " : "", path.string());
    }
    {
      std::lock_guard lock(benchmark_mutex);
      benchmark.reset();
    }
    if (result.interrupted) return 130;
    return result.aggregate.completed > 0 ? 0 : 1;
  } catch (const Error& e) {
    std::cerr << "error: " << e.what() << "\n";
    return e.code() == ErrorCode::invalid_argument ? 2 : 1;
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
}

int sim_main(const std::vector<std::string>& args) {
  SimulatorConfig config;
  if (const auto code = parse_or_exit(config, parse_sim_args, args, sim_help)) return *code;
  try {
    Simulator sim(config);
    SignalWatcher signals([&](int) { sim.stop(); });
    sim.start();
    std::cout << fmt::format("aifc sim listening on {} (model {}, ttft {} ms, itl {} ms)\n",
                             sim.base_url(), config.model, config.ttft.to_string(),
                             config.itl.to_string());
    std::cout.flush();
    sim.wait();
    return 0;
  } catch (const Error& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
}

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  const char* usage =
      "usage: aifc <command> [flags]\n"
      "  bench   benchmark an OpenAI-compatible server (vllm bench serve flags)\n"
      "  sim     run the vLLM-compatible simulator\n"
      "  service run the client service (client groups as Slurm jobs of agents)\n"
      "  agent   one agent of a client group (started by its Slurm job)\n"
      "  merge   merge the result files of `aifc bench --rank i --nranks n` shards\n"
      "  --version\n";
  if (args.empty()) {
    std::cerr << usage;
    return 2;
  }
  const std::string command = args.front();
  args.erase(args.begin());
  if (command == "bench") return bench_main(args);
  if (command == "sim") return sim_main(args);
  if (command == "service") return service_main(args);
  if (command == "agent") return agent_main(args);
  if (command == "merge") return merge_main(args);
  if (command == "--version" || command == "version") {
    std::cout << "aifc " << version() << "\n";
    return 0;
  }
  if (command == "--help" || command == "-h" || command == "help") {
    std::cout << usage;
    return 0;
  }
  std::cerr << "error: unknown command '" << command << "'\n" << usage;
  return 2;
}

}  // namespace aifc::cli
