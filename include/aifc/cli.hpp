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
  bool base_url_given = false;      ///< false: start the built-in simulator
  SimulatorConfig simulator;        ///< for the built-in simulator
  bool use_server_tokenizer = true; ///< make prompt lengths exact through /tokenize
  bool save_result = false;
  bool save_detailed = false;
  std::string result_dir = ".";
  std::string result_filename;
  std::string label;
  std::vector<std::pair<std::string, std::string>> metadata;
  bool progress = true;
  std::int64_t max_clients = 4096;
};

/// Parses `aifc bench` arguments (without the subcommand). Throws Error(invalid_argument) with
/// one line naming the flag.
BenchOptions parse_bench_args(const std::vector<std::string>& args);
/// Parses `aifc sim` arguments.
SimulatorConfig parse_sim_args(const std::vector<std::string>& args);

/// The result document `vllm bench serve --save-result` writes, from a finished run.
nlohmann::json result_document(const BenchOptions& options, const BenchmarkResult& result);

/// Runs `aifc bench`: returns the process exit code (0 ok, 1 failure, 2 usage, 130 interrupted).
int bench_main(const std::vector<std::string>& args);
/// Runs `aifc sim` until SIGINT or SIGTERM.
int sim_main(const std::vector<std::string>& args);
/// The `aifc` program: `aifc bench ...`, `aifc sim ...`, `aifc --version`.
int main(int argc, char** argv);

}  // namespace aifc::cli
