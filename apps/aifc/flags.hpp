#pragma once
// The small flag parser and the signal watcher that every `aifc` subcommand shares.

#include <fmt/format.h>
#include <pthread.h>
#include <signal.h>

#include <aifc/error.hpp>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <functional>
#include <iostream>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace aifc::cli {

[[noreturn]] inline void usage_error(const std::string& message) {
  throw Error(ErrorCode::invalid_argument, message);
}

// A small flag table: "--name value", "--name=value", underscores accepted as in vLLM's parser;
// flags with `multi` take every following word up to the next flag (argparse's nargs='+').
struct Flag {
  /// `refused`: a flag known to be unsupported; apply() throws the reason whatever follows.
  enum class Arity { none, one, multi, refused };
  Arity arity;
  std::function<void(const std::vector<std::string>&)> apply;
  std::string help;
  std::string group;  ///< the --help section; empty: the last one
};

using FlagTable = std::map<std::string, Flag>;

inline void parse_flags(const std::vector<std::string>& args, const FlagTable& table,
                        const char* command) {
  for (std::size_t i = 0; i < args.size(); ++i) {
    std::string name = args[i];
    if (name.rfind("--", 0) != 0)
      usage_error(fmt::format("aifc {}: unexpected argument '{}'", command, name));
    std::optional<std::string> inline_value;
    if (const auto eq = name.find('='); eq != std::string::npos) {
      inline_value = name.substr(eq + 1);
      name.resize(eq);
    }
    for (char& c : name)
      if (c == '_') c = '-';
    const auto it = table.find(name);
    if (it == table.end())
      usage_error(
          fmt::format("aifc {}: unknown flag '{}' (see aifc {} --help)", command, name, command));
    const Flag& flag = it->second;
    std::vector<std::string> values;
    if (flag.arity == Flag::Arity::refused) {
      try {
        flag.apply(values);
      } catch (const Error& e) {
        usage_error(fmt::format("aifc {}: {} is not supported: {}", command, name, e.what()));
      }
    }
    if (inline_value) {
      if (flag.arity == Flag::Arity::none)
        usage_error(fmt::format("aifc {}: {} takes no value", command, name));
      values.push_back(*inline_value);
    } else if (flag.arity == Flag::Arity::one) {
      if (i + 1 >= args.size())
        usage_error(fmt::format("aifc {}: {} needs a value", command, name));
      values.push_back(args[++i]);
    } else if (flag.arity == Flag::Arity::multi) {
      while (i + 1 < args.size() && args[i + 1].rfind("--", 0) != 0) values.push_back(args[++i]);
      if (values.empty())
        usage_error(fmt::format("aifc {}: {} needs at least one value", command, name));
    }
    try {
      flag.apply(values);
    } catch (const Error& e) {
      usage_error(fmt::format("aifc {}: {}: {}", command, name, e.what()));
    }
  }
}

inline std::int64_t to_int(const std::string& s, const char* what) {
  try {
    std::size_t used = 0;
    const auto v = std::stoll(s, &used);
    if (used == s.size()) return v;
  } catch (const std::exception&) {
  }
  usage_error(fmt::format("'{}' is not a whole number ({})", s, what));
}

inline double to_double(const std::string& s, const char* what) {
  if (s == "inf" || s == "infinity") return std::numeric_limits<double>::infinity();
  try {
    std::size_t used = 0;
    const auto v = std::stod(s, &used);
    if (used == s.size()) return v;
  } catch (const std::exception&) {
  }
  usage_error(fmt::format("'{}' is not a number ({})", s, what));
}

inline std::chrono::milliseconds seconds_flag(const std::string& s, const char* what) {
  return std::chrono::milliseconds(
      static_cast<std::int64_t>(std::llround(to_double(s, what) * 1000.0)));
}

// The flags by group, in `group_order` (others after them, in name order), each group's flags
// in name order. A switch's --no- form is left out: the head says that every switch has one.
inline std::string help_text(const FlagTable& t, const std::string& head,
                             std::vector<std::string> group_order = {}) {
  for (const auto& [name, flag] : t)
    if (std::find(group_order.begin(), group_order.end(), flag.group) == group_order.end())
      group_order.push_back(flag.group);
  std::string out = head;
  for (const auto& group : group_order) {
    out += fmt::format("\n{}:\n", group.empty() ? "other" : group);
    for (const auto& [name, flag] : t) {
      if (flag.group != group || flag.help.rfind("the opposite of --", 0) == 0) continue;
      const char* arg = flag.arity == Flag::Arity::one     ? " V"
                        : flag.arity == Flag::Arity::multi ? " V..."
                                                           : "";
      out += fmt::format("  {:<34} {}\n", name + arg, flag.help);
    }
  }
  return out;
}

// Turns SIGINT/SIGTERM into a call on a normal thread: stop() takes locks, which a signal
// handler must not.
class SignalWatcher {
 public:
  explicit SignalWatcher(std::function<void(int)> on_signal) : on_signal_(std::move(on_signal)) {
    sigemptyset(&set_);
    sigaddset(&set_, SIGINT);
    sigaddset(&set_, SIGTERM);
    sigaddset(&set_, SIGUSR1);  // used to end the watcher itself
    pthread_sigmask(SIG_BLOCK, &set_, &old_);
    thread_ = std::thread([this] {
      for (;;) {
        int sig = 0;
        if (sigwait(&set_, &sig) != 0) continue;
        if (sig == SIGUSR1 && done_.load()) return;
        if (sig != SIGUSR1) on_signal_(sig);
      }
    });
  }
  ~SignalWatcher() {
    done_.store(true);
    pthread_kill(thread_.native_handle(), SIGUSR1);
    thread_.join();
    pthread_sigmask(SIG_SETMASK, &old_, nullptr);
  }

 private:
  sigset_t set_{}, old_{};
  std::function<void(int)> on_signal_;
  std::atomic<bool> done_{false};
  std::thread thread_;
};

// Parses a subcommand's flags: --help prints and exits 0, a bad flag prints one line and exits 2.
template <class Options, class Parse>
std::optional<int> parse_or_exit(Options& options, Parse&& parse,
                                 const std::vector<std::string>& args, std::string (*help)()) {
  if (std::find(args.begin(), args.end(), "--help") != args.end() ||
      std::find(args.begin(), args.end(), "-h") != args.end()) {
    std::cout << help();
    return 0;
  }
  try {
    options = parse(args);
    return std::nullopt;
  } catch (const Error& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 2;
  }
}

}  // namespace aifc::cli
