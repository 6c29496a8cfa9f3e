#pragma once
// The `aifc` program's command line: flags named as `vllm bench serve` names them, parsed into a
// BenchmarkSpec plus what only a program has (where to write the result, a progress line).
// Not part of libaifc; the program and the Python module's `python -m aifc` link it.

#include <aifc/benchmark.hpp>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace aifc::cli {

/// Everything `aifc bench` takes: the benchmark itself, and what to do with its result.
struct BenchOptions {
  BenchmarkSpec spec;
  /// The built-in simulator's settings (--sim-*); spec.simulator is set to them when no server
  /// was named (no --base-url, --host or --port).
  SimulatorConfig simulator;
  bool base_url_given = false;
  bool save_result = false;
  bool save_detailed = false;
  std::string result_dir = ".";
  std::string result_filename;
  std::string label;
  std::vector<std::pair<std::string, std::string>> metadata;
  bool progress = true;
  bool verbose = true;  ///< set-up lines on stderr
};

/// The document `--save-result` writes: the benchmark's result document with the label and the
/// --metadata pairs.
nlohmann::json bench_document(const BenchOptions& options, const Benchmark& benchmark,
                              const BenchmarkResult& result);
/// The file name `--save-result` uses when none is given, from the result document:
/// `{label or aifc}-{rate}qps[-concurrency{N}]-{model}-{date}.json`.
std::string default_result_filename(const BenchOptions& options, const nlohmann::json& document);

/// Parses `aifc bench` arguments (without the subcommand). Throws Error(invalid_argument) with
/// one line naming the flag.
BenchOptions parse_bench_args(const std::vector<std::string>& args);
/// Parses `aifc sim` arguments.
SimulatorConfig parse_sim_args(const std::vector<std::string>& args);
/// The `--help` texts: every flag with its meaning.
std::string bench_help();
std::string sim_help();

/// One `aifc bench` flag, for front ends that offer the same options (Python's run_benchmark).
struct FlagInfo {
  std::string name;  ///< "--request-rate"
  int values = 0;    ///< 0: a switch, 1: one value, 2: one or more values
  std::string help;
};
std::vector<FlagInfo> bench_flag_list();

/// Runs `aifc bench`: returns the process exit code (0 ok, 1 failure, 2 usage, 130 interrupted).
int bench_main(const std::vector<std::string>& args);
/// Runs `aifc sim` until SIGINT or SIGTERM.
int sim_main(const std::vector<std::string>& args);
/// Runs `aifc service SERVER_URL ...` until SIGINT or SIGTERM.
int service_main(const std::vector<std::string>& args);
/// Runs `aifc agent` (inside a client group's Slurm job).
int agent_main(const std::vector<std::string>& args);
/// Runs `aifc merge RESULT...`: exit 0, or 1 when ranks are missing or a file is unreadable.
int merge_main(const std::vector<std::string>& args);
/// The `aifc` program: `aifc bench ...`, `aifc sim ...`, `aifc --version`.
int main(int argc, char** argv);

}  // namespace aifc::cli
