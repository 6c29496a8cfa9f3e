#pragma once
// Settings by name. One table of what a benchmark (and the simulator) can be told, named as
// `vllm bench serve` names its flags, in snake_case: `aifc bench --random-input-len 64`, Python's
// `run_benchmark(random_input_len=64)` and the client service's `{"random_input_len": 64}` all
// apply the same option through the same function, with the same help text and checks.

#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "aifc/benchmark.hpp"
#include "aifc/export.hpp"
#include "aifc/simulator.hpp"

namespace aifc {

/// The type of an option's value. On a command line: a `boolean` is a switch (`--ignore-eos`
/// sets it, `--no-ignore-eos` clears it), a `list` or `key_values` takes one or more words, every
/// other kind one word.
enum class OptionKind {
  boolean,
  integer,
  number,      ///< a number; "inf" where the option says so
  text,        ///< a string
  list,        ///< strings or numbers: a JSON array, or one string separated by commas or spaces
  key_values,  ///< a JSON object, or strings "KEY=VALUE"
  object,      ///< a JSON object (or its text)
};

/// One named setting of a `Target` (BenchmarkSpec or SimulatorConfig).
template <class Target>
struct Option {
  std::string name;  ///< snake_case, e.g. "random_input_len"
  OptionKind kind;
  std::string help;   ///< one line; says the default where default_value cannot
  std::string group;  ///< where --help lists it, as vLLM groups its flags ("sampling parameters")
  /// Sets the value on the target; throws Error(invalid_argument) with a message that does not
  /// name the option (the caller names it in its own vocabulary: a flag, a keyword, a key).
  std::function<void(Target&, const nlohmann::json&)> apply;
  /// The value a default target holds, read from its JSON where a field has the option's name
  /// (or the name with _s or _ms); null where none does or the default depends on other options.
  nlohmann::json default_value = nullptr;
};

/// A `vllm bench serve` setting aifc does not take, and why (e.g. multimodal datasets).
struct UnsupportedOption {
  std::string name;    ///< snake_case, as the options
  std::string reason;  ///< a sentence saying why and what to use instead
};

using BenchmarkOption = Option<BenchmarkSpec>;
using SimulatorOption = Option<SimulatorConfig>;

/// Every benchmark option, by name. Besides the spec's own settings: `host` and `port` (composed
/// into client.base_url when no base_url is given), `sim` (run against the built-in simulator)
/// and `sim_<name>` for each simulator option, which also turns the simulator on. The simulator a
/// benchmark starts this way listens on a free port with TTFT 20-60 ms and ITL 5-15 ms unless
/// told otherwise.
AIFC_API const std::vector<BenchmarkOption>& benchmark_options();
/// Every option of `aifc sim`: the SimulatorConfig fields, delays in ms.
AIFC_API const std::vector<SimulatorOption>& simulator_options();
/// The settings of `vllm bench serve` aifc refuses by name, with the reason: applying one is an
/// error that gives it, where an unknown name is only "unknown".
AIFC_API const std::vector<UnsupportedOption>& unsupported_vllm_options();
/// An option's default as --help shows it ("1000", "ttft,tpot,itl", "on"); empty where there is
/// none to show.
AIFC_API std::string shown_default(const nlohmann::json& default_value);
/// The option of that name, or nullptr.
AIFC_API const BenchmarkOption* find_benchmark_option(const std::string& name);
AIFC_API const SimulatorOption* find_simulator_option(const std::string& name);

/// Applies {name: value, ...} to the spec, in an order that does not matter. A JSON null leaves
/// the setting alone. Throws Error(invalid_argument) "name: what is wrong", or "unknown option
/// 'name'". Naming a server (base_url, host or port) together with the simulator is refused.
AIFC_API void apply_benchmark_options(BenchmarkSpec& spec, const nlohmann::json& options);
AIFC_API void apply_simulator_options(SimulatorConfig& config, const nlohmann::json& options);

/// A spec from the defaults and these options, as `aifc bench` and Python's run_benchmark build
/// it. As in `vllm bench serve`, no server named means http://127.0.0.1:8000; the built-in
/// simulator runs only when asked for (`sim`, or any `sim_*` option).
AIFC_API BenchmarkSpec benchmark_spec_from_options(const nlohmann::json& options);

/// The value of an option of this kind from command-line words (a switch: no words), as
/// apply() takes it. Throws Error(invalid_argument) without naming the option.
AIFC_API nlohmann::json option_value_from_words(OptionKind kind,
                                                const std::vector<std::string>& words);

/// The JSON schema of a value of this kind (for OpenAPI documents).
AIFC_API nlohmann::json option_schema(OptionKind kind, const std::string& help);

AIFC_API const char* to_string(OptionKind kind) noexcept;

}  // namespace aifc
