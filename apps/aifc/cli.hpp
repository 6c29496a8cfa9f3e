#pragma once
// The `aifc` program's command line: flags named as `vllm bench serve` names them, parsed into a
// BenchmarkSpec plus what only a program has (where to write the result, a progress line).
// Not part of libaifc; the program and the Python module's `python -m aifc` link it.

#include <aifc/benchmark.hpp>
#include <aifc/timeline.hpp>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace aifc::cli {

/// Everything `aifc bench` takes: the benchmark itself, and what to do with its result.
struct BenchOptions {
  BenchmarkSpec spec;
  bool save_result = false;
  bool save_detailed = false;
  bool append_result = false;  ///< add the result as a line to an existing file
  int result_indent = -1;      ///< -1: one line, as vLLM writes it
  std::string result_dir = ".";
  std::string result_filename;
  bool progress = true;
  bool verbose = true;  ///< set-up lines on stderr
  /// --plot-timeline: an HTML timeline beside the result file (<name>_timeline.html).
  bool plot_timeline = false;
  /// --plot-dataset-stats: the prompts' length distributions beside the result file
  /// (<name>_dataset_stats.html).
  bool plot_dataset_stats = false;
  TimelineOptions timeline;
};

/// The file name `--save-result` uses when none is given, from the result document:
/// vLLM's `{label or backend}-{rate}qps[-concurrency{N}]-{model}-{date}.json` (with ramp-up:
/// `{label}-ramp-up-{strategy}-{start}qps-{end}qps...`).
std::string default_result_filename(const BenchOptions& options, const nlohmann::json& document);

/// Parses `aifc bench` arguments (without the subcommand). Throws Error(invalid_argument) with
/// one line naming the flag.
BenchOptions parse_bench_args(const std::vector<std::string>& args);
/// Parses `aifc sim` arguments.
SimulatorConfig parse_sim_args(const std::vector<std::string>& args);
/// The `--help` texts: every flag with its meaning.
std::string bench_help();
std::string sim_help();

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
