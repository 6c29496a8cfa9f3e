#pragma once

#include <optional>
#include <string>
#include <vector>

#include "aifc/client_group.hpp"
#include "aifc/dataset.hpp"
#include "aifc/metrics.hpp"
#include "aifc/schedule.hpp"
#include "aifc/simulator.hpp"
#include "aifc/vllm_client.hpp"

namespace aifc::cli {

/// Everything `aifc bench` takes, parsed from flags named as `vllm bench serve` names them.
struct BenchOptions {
  ClientConfig client;
  DatasetConfig dataset;
  LoadConfig load;
  Shard shard;
  SummaryOptions summary;
  bool base_url_given = false;       ///< false: start the built-in simulator
  SimulatorConfig simulator;         ///< for the built-in simulator
  bool use_server_tokenizer = true;  ///< make prompt lengths exact through /tokenize
  bool save_result = false;
  bool save_detailed = false;
  std::string result_dir = ".";
  std::string result_filename;
  std::string label;
  std::vector<std::pair<std::string, std::string>> metadata;
  bool progress = true;
  bool verbose = true;  ///< set-up lines on stderr
  std::int64_t max_clients = 4096;
  Transport transport = Transport::automatic;
};

/// The result document `vllm bench serve --save-result` writes, from a finished run.
nlohmann::json result_document(const BenchOptions& options, const BenchmarkResult& result);

/// One `aifc bench` run as a library object, shared by the CLI and the Python bindings: the
/// constructor starts the built-in simulator when no base URL was given, asks the server for
/// its model when none was named, and builds the prompts (exact through /tokenize when it can).
class BenchSession {
 public:
  /// Throws aifc::Error (connection_failed when the server is unreachable, ...).
  explicit BenchSession(BenchOptions options);
  ~BenchSession();
  BenchSession(const BenchSession&) = delete;
  BenchSession& operator=(const BenchSession&) = delete;

  /// The options as resolved (base URL of the simulator, model name).
  const BenchOptions& options() const noexcept { return options_; }
  ClientGroup& group() noexcept { return *group_; }
  /// Runs the benchmark; stop() from another thread ends it early with a partial result.
  BenchmarkResult run();
  void stop() noexcept;
  /// The document `--save-result` writes.
  nlohmann::json document(const BenchmarkResult& result) const {
    return result_document(options_, result);
  }
  /// The summary table, with the configured rate and concurrency lines.
  std::string summary_table(const BenchmarkResult& result) const;
  /// The file name `--save-result` uses when none is given.
  std::string default_result_filename() const;

 private:
  BenchOptions options_;
  std::unique_ptr<Simulator> simulator_;
  std::unique_ptr<ClientGroup> group_;
};

/// Parses `aifc bench` arguments (without the subcommand). Throws Error(invalid_argument) with
/// one line naming the flag.
BenchOptions parse_bench_args(const std::vector<std::string>& args);
/// Parses `aifc sim` arguments.
SimulatorConfig parse_sim_args(const std::vector<std::string>& args);

/// Runs `aifc bench`: returns the process exit code (0 ok, 1 failure, 2 usage, 130 interrupted).
int bench_main(const std::vector<std::string>& args);
/// Runs `aifc sim` until SIGINT or SIGTERM.
int sim_main(const std::vector<std::string>& args);
/// The `aifc` program: `aifc bench ...`, `aifc sim ...`, `aifc --version`.
int main(int argc, char** argv);

}  // namespace aifc::cli
