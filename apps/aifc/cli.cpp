#include "cli.hpp"

#include <fmt/format.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <aifc/dataset_stats.hpp>
#include <aifc/error.hpp>
#include <aifc/options.hpp>
#include <aifc/version.hpp>
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <stop_token>
#include <thread>

#include "flags.hpp"

namespace aifc::cli {
namespace {

// A help line and the option's default, unless the line says it already.
std::string with_default(const std::string& help, const nlohmann::json& default_value) {
  const std::string shown = shown_default(default_value);
  if (shown.empty() || help.find("default") != std::string::npos) return help;
  return fmt::format("{} (default {})", help, shown);
}

// The flags of a table of library options (aifc/options.hpp): `--random-input-len 64` is the
// option random_input_len; a switch also has its `--no-` form. Each flag adds its value to
// `values` (a list given twice gets both), which the library applies in one go.
template <class OptionTable>
void add_option_flags(FlagTable& t, const OptionTable& options, nlohmann::json& values,
                      const std::string& prefix = "") {
  using A = Flag::Arity;
  for (const auto& option : options) {
    std::string flag = "--" + prefix + option.name;
    for (char& c : flag)
      if (c == '_') c = '-';
    const std::string name = option.name;
    const OptionKind kind = option.kind;
    const bool many = kind == OptionKind::list || kind == OptionKind::key_values;
    t[flag] = {kind == OptionKind::boolean ? A::none
               : many                      ? A::multi
                                           : A::one,
               [&values, name, kind, many](const std::vector<std::string>& words) {
                 nlohmann::json value = option_value_from_words(kind, words);
                 if (many && values.contains(name))
                   values[name].insert(values[name].end(), value.begin(), value.end());
                 else
                   values[name] = std::move(value);
               },
               with_default(option.help, option.default_value), option.group};
    if (kind == OptionKind::boolean && name.rfind("no_", 0) != 0)  // no --no-no-X
      t["--no-" + flag.substr(2)] = {
          A::none, [&values, name](const std::vector<std::string>&) { values[name] = false; },
          "the opposite of " + flag, option.group};
  }
}

// The flags of `vllm bench serve` that aifc refuses: each says why when given.
void add_refused_flags(FlagTable& t) {
  for (const auto& option : unsupported_vllm_options()) {
    std::string flag = "--" + option.name;
    std::replace(flag.begin(), flag.end(), '_', '-');
    const std::string reason = option.reason;
    t[flag] = {Flag::Arity::refused,
               [reason](const std::vector<std::string>&) {
                 throw Error(ErrorCode::invalid_argument, reason);
               },
               reason, "vLLM flags aifc refuses"};
  }
}

// The library names an option in its messages ("random_input_len: ..."); the program names the
// flag ("--random-input-len: ...").
std::string as_flag_message(std::string what) {
  const auto colon = what.find(": ");
  if (colon == std::string::npos || colon == 0) return what;
  const std::string name = what.substr(0, colon);
  if (name.find_first_not_of("abcdefghijklmnopqrstuvwxyz_") != std::string::npos) return what;
  std::string flag = "--" + name;
  std::replace(flag.begin(), flag.end(), '_', '-');
  return flag + what.substr(colon);
}

// What only the program has: where the result goes, the progress line.
FlagTable bench_flags(BenchOptions& o, nlohmann::json& values) {
  using A = Flag::Arity;
  FlagTable t;
  add_option_flags(t, benchmark_options(), values);
  add_refused_flags(t);
  auto one = [&](const std::string& name, std::function<void(const std::string&)> f,
                 std::string help) {
    t[name] = {A::one, [f](const std::vector<std::string>& v) { f(v[0]); }, std::move(help),
               "results"};
  };
  auto flag = [&](const std::string& name, std::function<void()> f, std::string help) {
    t[name] = {A::none, [f](const std::vector<std::string>&) { f(); }, std::move(help), "results"};
  };
  flag(
      "--save-result", [&] { o.save_result = true; }, "write the result JSON");
  flag(
      "--save-detailed", [&] { o.save_result = o.save_detailed = true; },
      "also write per-request data");
  flag(
      "--append-result", [&] { o.save_result = o.append_result = true; },
      "append the result as one line to the file instead of replacing it");
  one(
      "--result-indent",
      [&](const std::string& v) {
        o.result_indent = static_cast<int>(
            std::clamp<std::int64_t>(option_value_from_words(OptionKind::integer, {v}), -1, 16));
      },
      "indent the result JSON (default: one line, as vLLM writes it)");
  one(
      "--result-dir", [&](const std::string& v) { o.result_dir = v; },
      "directory of the result file");
  one(
      "--result-filename", [&](const std::string& v) { o.result_filename = v; },
      "name of the result file");
  flag(
      "--plot-timeline", [&] { o.plot_timeline = true; },
      "write an HTML timeline of the requests beside the result (<name>_timeline.html)");
  flag(
      "--plot-dataset-stats", [&] { o.plot_dataset_stats = true; },
      "write an HTML page of the prompts' token distributions beside the result "
      "(<name>_dataset_stats.html)");
  one(
      "--timeline-itl-thresholds",
      [&](const std::string& v) {
        const std::string title = o.timeline.title;
        o.timeline = TimelineOptions::from_thresholds(v);
        o.timeline.title = title;
      },
      "ITL in ms below which a timeline is green and above which red (default 25,50)");
  flag(
      "--disable-tqdm", [&] { o.progress = false; }, "no progress line");
  flag(
      "--no-progress", [&] { o.progress = false; }, "no progress line");
  t["--help"] = {A::none, [](const std::vector<std::string>&) {},
                 "this help (-h); the program prints it before parsing", ""};
  return t;
}

const char* kBenchHead =
    "usage: aifc bench [flags]\n"
    "Benchmarks an OpenAI-compatible server (default http://127.0.0.1:8000, as vLLM's; --sim\n"
    "for the built-in simulator).\n"
    "Flags (named as in `vllm bench serve`; --sim-* configure the built-in simulator; a switch\n"
    "--X also has --no-X):\n";

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

std::string spec_model(const Benchmark& b) { return b.spec().client.model; }

std::string rate_word(double rate) { return std::isinf(rate) ? "inf" : fmt::format("{}", rate); }

}  // namespace

BenchOptions parse_bench_args(const std::vector<std::string>& args) {
  BenchOptions o;
  nlohmann::json values = nlohmann::json::object();
  if (const char* key = std::getenv("OPENAI_API_KEY")) values["api_key"] = key;
  parse_flags(args, bench_flags(o, values), "bench");
  // vLLM's detailed result holds every answer's text: --save-detailed keeps them unless
  // --no-capture-text says otherwise.
  if (o.save_detailed && !values.contains("capture_text")) values["capture_text"] = true;
  try {
    o.spec = benchmark_spec_from_options(values);
  } catch (const Error& e) {
    usage_error("aifc bench: " + as_flag_message(e.what()));
  }
  o.spec.raise_fd_limit = true;  // a program of its own: every stream is a socket
  o.spec.validate();
  return o;
}

FlagTable sim_flags(nlohmann::json& values) {
  FlagTable t;
  add_option_flags(t, simulator_options(), values);
  t["--help"] = {Flag::Arity::none, [](const std::vector<std::string>&) {}, "this help", ""};
  return t;
}

SimulatorConfig parse_sim_args(const std::vector<std::string>& args) {
  nlohmann::json values = nlohmann::json::object();
  parse_flags(args, sim_flags(values), "sim");
  SimulatorConfig s;
  try {
    apply_simulator_options(s, values);
  } catch (const Error& e) {
    usage_error("aifc sim: " + as_flag_message(e.what()));
  }
  s.validate();
  return s;
}

std::string bench_help() {
  BenchOptions o;
  nlohmann::json values;
  return help_text(bench_flags(o, values), kBenchHead,
                   {"server", "requests", "sampling parameters", "dataset", "load", "timeouts",
                    "results", "transport"});
}

std::string sim_help() {
  nlohmann::json values;
  return help_text(sim_flags(values),
                   "usage: aifc sim [flags]\nA vLLM-compatible simulator on loopback.\n");
}

namespace {
// A rate as Python prints a float, which vLLM's file names use: 20.0, 12.5, inf.
std::string python_float(const nlohmann::json& v) {
  if (v.is_string()) return v.get<std::string>();
  const double d = v.get<double>();
  std::string s = fmt::format("{}", d);
  if (std::isfinite(d) && s.find_first_of(".e") == std::string::npos) s += ".0";
  return s;
}
// vLLM's ramp-up rates are integers.
std::string integer_text(const nlohmann::json& v) {
  return fmt::format("{}", static_cast<std::int64_t>(std::llround(v.get<double>())));
}
}  // namespace

std::string default_result_filename(const BenchOptions& o, const nlohmann::json& document) {
  // vLLM's pattern, from the document itself, so that the name and the file's "date" and
  // "model_id" agree.
  const std::string model = document.value("model_id", std::string("model"));
  const std::string label =
      o.spec.label.empty() ? document.value("backend", std::string("openai")) : o.spec.label;
  const auto& concurrency = document["max_concurrency"];
  const std::string limit =
      concurrency.is_number() ? fmt::format("-concurrency{}", concurrency.get<std::int64_t>()) : "";
  const std::string rates =
      document.contains("ramp_up_strategy") && document["ramp_up_strategy"].is_string()
          ? fmt::format("ramp-up-{}-{}qps-{}qps", document["ramp_up_strategy"].get<std::string>(),
                        integer_text(document["ramp_up_start_rps"]),
                        integer_text(document["ramp_up_end_rps"]))
          : python_float(document["request_rate"]) + "qps";
  return fmt::format("{}-{}{}-{}-{}.json", label, rates, limit, model.substr(model.rfind('/') + 1),
                     document.value("date", std::string()));
}

int bench_main(const std::vector<std::string>& args) {
  BenchOptions o;
  if (const auto code = parse_or_exit(o, parse_bench_args, args, bench_help)) return *code;
  std::unique_ptr<Benchmark> benchmark;
  std::atomic<bool> interrupted{false};
  std::stop_source setup_stop;  // Ctrl-C during the set-up (counting prompts) ends it too
  std::mutex benchmark_mutex;
  SignalWatcher signals([&](int) {
    interrupted.store(true);
    setup_stop.request_stop();
    std::lock_guard lock(benchmark_mutex);
    if (benchmark) benchmark->stop();
  });
  // Found before the run, not after it: a result that cannot be written.
  if (o.save_result) {
    std::error_code ec;
    std::filesystem::create_directories(o.result_dir, ec);
    const auto probe = std::filesystem::path(o.result_dir) / ".aifc-write-test";
    std::ofstream test(probe);
    if (!test) {
      std::cerr << fmt::format("error: --result-dir '{}' is not a writable directory\n",
                               o.result_dir);
      return 2;
    }
    test.close();
    std::filesystem::remove(probe, ec);
  }
  try {
    std::unique_ptr<Benchmark> created;
    try {
      created = std::make_unique<Benchmark>(o.spec, setup_stop.get_token());
    } catch (const Error& e) {
      if (e.code() != ErrorCode::interrupted) throw;
      std::cerr << "[aifc] interrupted during the set-up; nothing was measured\n";
      return 130;
    }
    const auto& spec = created->spec();
    if (o.verbose && spec.simulator)
      std::cerr << fmt::format(
          "[aifc] started the built-in simulator at {} (ttft {} ms, itl {} ms)\n",
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
    // The counts say how many failed; the first messages say why.
    if (!result.first_errors.empty()) {
      std::cout << fmt::format("First {} failed requests (of {}):\n", result.first_errors.size(),
                               result.summary.failed);
      for (const auto& e : result.first_errors) std::cout << "  " << e << "\n";
    }
    std::cout.flush();
    for (const auto& warning : result.warnings) std::cerr << "[aifc] warning: " << warning << "\n";
    if (result.observer_errors)
      std::cerr << "[aifc] an observer failed: " << result.first_observer_error << "\n";
    const nlohmann::json document =
        o.save_result || result.interrupted || o.plot_timeline || o.plot_dataset_stats
            ? benchmark->result_document(result, o.save_detailed, /*records=*/false)
            : nlohmann::json();
    const std::string name = document.is_null()          ? std::string()
                             : o.result_filename.empty() ? default_result_filename(o, document)
                                                         : o.result_filename;
    // Pages beside the result file, as vLLM's: its name without .json, then the page's suffix.
    auto write_page = [&](const char* suffix, const char* what, const std::string& html) {
      auto page = std::filesystem::path(o.result_dir) / name;
      page.replace_extension();
      page += suffix;
      std::error_code ec;
      std::filesystem::create_directories(o.result_dir, ec);
      std::ofstream out(page, std::ios::trunc);
      out << html;
      if (!out.good())
        throw Error(ErrorCode::io_error,
                    fmt::format("cannot write the {} to '{}'", what, page.string()));
      std::cerr << fmt::format("[aifc] {} written to {}\n", what, page.string());
    };
    const auto requests = result.summary.completed + result.summary.failed;
    if (o.plot_timeline) {
      TimelineOptions timeline = o.timeline;
      timeline.title =
          fmt::format("aifc timeline: {} requests to {}", requests, spec_model(*benchmark));
      write_page("_timeline.html", "timeline", timeline_html(result, timeline));
    }
    if (o.plot_dataset_stats)
      write_page(
          "_dataset_stats.html", "dataset statistics",
          dataset_stats_html(result, fmt::format("aifc dataset statistics: {} requests to {}",
                                                 requests, spec_model(*benchmark))));
    if (o.save_result || result.interrupted) {
      const auto path = std::filesystem::path(o.result_dir) / name;
      std::error_code ec;
      std::filesystem::create_directories(o.result_dir, ec);
      // Appended results are one per line (vLLM separates them by a newline).
      const bool append = o.append_result && std::filesystem::exists(path, ec) &&
                          std::filesystem::file_size(path, ec) > 0;
      bool needs_newline = false;  // a file vLLM wrote ends without one
      if (append) {
        std::ifstream existing(path, std::ios::binary | std::ios::ate);
        existing.seekg(-1, std::ios::end);
        needs_newline = existing && existing.get() != '\n';
      }
      std::ofstream out(path, append ? std::ios::app : std::ios::trunc);
      if (!out)
        throw Error(ErrorCode::io_error,
                    fmt::format("cannot write the result to '{}'", path.string()));
      if (needs_newline) out << '\n';
      const int indent = o.append_result ? -1 : o.result_indent;
      // The records of a detailed result are written straight from the result (see
      // result_document_text); the rest of the document as it is.
      out << (o.save_detailed
                  ? result_document_text(document, result, indent)
                  : document.dump(indent, ' ', false, nlohmann::json::error_handler_t::replace))
          << "\n";
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
