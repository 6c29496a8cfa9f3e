#pragma once

#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <stop_token>
#include <string>
#include <vector>

#include "aifc/client_group.hpp"
#include "aifc/dataset.hpp"
#include "aifc/export.hpp"
#include "aifc/metrics.hpp"
#include "aifc/observer.hpp"
#include "aifc/schedule.hpp"
#include "aifc/simulator.hpp"
#include "aifc/vllm_client.hpp"

namespace aifc {

/// One benchmark, typed: what `aifc bench`'s flags, Python, the service and its agents all build
/// and run (nothing travels as command-line words). Its JSON form, with the sections' own
/// mappings, is what the service stores and sends; the API key is never written.
struct AIFC_API BenchmarkSpec {
  ClientConfig client;    ///< the server and what to ask of it
  DatasetConfig dataset;  ///< the prompts
  LoadConfig load;        ///< arrivals, concurrency, count or duration
  Shard shard;            ///< this process's part of a distributed run
  SummaryOptions summary;
  Transport transport = Transport::automatic;
  std::int64_t io_threads = 1;
  std::int64_t max_clients = 4096;
  bool keep_records = true;
  /// Fit random prompts to their lengths and count file prompts with the server's /tokenize.
  bool use_server_tokenizer = true;
  /// Raise this process's open-file limit to its hard limit (every stream is a socket). A
  /// process-wide change, so only on request; the `aifc` program asks for it.
  bool raise_fd_limit = false;
  /// Wait this long for the server to answer (GET /v1/models) before the set-up, as
  /// `vllm bench serve --ready-check-timeout-sec`; 0: do not wait.
  std::chrono::seconds ready_check_timeout{0};
  /// POST /start_profile before the run and /stop_profile after it, as `vllm bench serve
  /// --profile` (a vLLM started with a profiler config traces what the run made it do; the
  /// trace covers the warm-ups too, which aifc sends inside the run). A refusal is a warning of
  /// the result, never a failed run.
  bool profile = false;
  /// `vllm bench serve --probe-request-rate`: beside the workload, one request of a one-word
  /// prompt and one output token every 1/rate seconds (each after the last answered), outside
  /// max_concurrency and the metrics, to show how the workload stalls an unrelated request.
  /// 0: none.
  double probe_request_rate = 0;
  /// `vllm bench serve --tokenizer`: only recorded (the result's tokenizer_id; default the
  /// model). aifc counts tokens with the server's own /tokenize, so it needs no local copy.
  std::string tokenizer;
  /// The schedule's time zero on this machine's system clock (see GroupConfig::start_at).
  std::optional<std::chrono::system_clock::time_point> start_at;
  /// Run against a simulator started in this process; client.base_url becomes its address.
  std::optional<SimulatorConfig> simulator;
  /// The result's "label" and extra top-level keys (`vllm bench serve --label / --metadata`).
  std::string label;
  std::map<std::string, std::string> metadata;

  /// Throws Error(invalid_argument) naming the section and the field ("load: request_rate ...").
  void validate() const;
  /// The client group this benchmark runs.
  GroupConfig group_config() const;
};

AIFC_API void to_json(nlohmann::json& j, const BenchmarkSpec& s);
AIFC_API void from_json(const nlohmann::json& j, BenchmarkSpec& s);

/// Runs one BenchmarkSpec. The constructor does the set-up: it validates the spec, starts the
/// simulator when the spec asks for one, asks the server for its model when none is named
/// (GET /v1/models), probes its tokenizer and builds the prompts. run() measures; stop() from
/// any thread ends the run early and keeps what was measured. The destructor stops and joins.
class AIFC_API Benchmark {
 public:
  /// Throws aifc::Error: invalid_argument for a bad spec, connection_failed for an unreachable
  /// server, server_error when it serves no model, io_error / parse_error for dataset files,
  /// interrupted when `stop` was requested during the set-up (counting a large dataset's
  /// prompts with the server's tokenizer can take a while).
  explicit Benchmark(BenchmarkSpec spec, std::stop_token stop = {});
  ~Benchmark();
  Benchmark(const Benchmark&) = delete;
  Benchmark& operator=(const Benchmark&) = delete;

  /// The spec as resolved: the simulator's address, the model the server named.
  const BenchmarkSpec& spec() const noexcept;
  /// The tokenizer endpoint used for prompt lengths (none: lengths are estimates).
  TokenizerApi tokenizer() const noexcept;
  /// What the set-up noticed and a user should hear (e.g. no tokenizer), one line each.
  const std::vector<std::string>& warnings() const noexcept;

  /// Before run(); see ClientGroup.
  ObserverHandle add_observer(std::shared_ptr<Observer> observer);
  bool remove_observer(ObserverHandle handle);

  /// Measures (once). Returns the partial result when stop() ended it.
  BenchmarkResult run();
  /// Measures with the schedule's time zero at `start` (this machine's system clock).
  BenchmarkResult run_at(std::chrono::system_clock::time_point start);
  void stop() noexcept;
  ProgressSnapshot progress() const;

  /// The result as `vllm bench serve --save-result` writes it (its keys, plus aifc's: the spec,
  /// the aggregate, the clock anchor); `detailed` adds the per-request arrays and, unless
  /// `records` is false, every record ("records"; see result_document_text).
  nlohmann::json result_document(const BenchmarkResult& result, bool detailed = false,
                                 bool records = true) const;
  /// The summary table `vllm bench serve` prints, with the configured rate and concurrency.
  std::string summary_table(const BenchmarkResult& result) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// What the summary table shows of a load: its rate and concurrency when they are bounded.
AIFC_API TableConfig table_config(const LoadConfig& load);

/// vLLM's "Probe Requests" table section from a result document's (or summary's) probe_* keys;
/// empty when it has none (no probe was answered).
AIFC_API std::string format_probe_table(const nlohmann::json& document);

/// The result document of a run of `spec` (what Benchmark::result_document returns), for results
/// that did not come from a Benchmark object in this process (a merged run, a read-back file).
AIFC_API nlohmann::json result_document(const BenchmarkSpec& spec, TokenizerApi tokenizer,
                                        const BenchmarkResult& result, bool detailed = false,
                                        bool records = true);

/// A detailed result document as JSON text (`indent` < 0: one line), its "records" written
/// straight from `result` instead of held as JSON values, which costs a fraction as much: what
/// `aifc bench --save-detailed` saves. `document` is the result_document of `result` with
/// `detailed` and without `records`; the text is that of the whole document, "records" last.
AIFC_API std::string result_document_text(const nlohmann::json& document,
                                          const BenchmarkResult& result, int indent = -1);

}  // namespace aifc
