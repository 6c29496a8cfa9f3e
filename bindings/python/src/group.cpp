// ClientGroup and `aifc bench` runs from Python: observers, background runs, Ctrl-C.
#include <pybind11/stl.h>

#include <aifc/benchmark.hpp>
#include <aifc/client_group.hpp>
#include <aifc/dataset_stats.hpp>
#include <aifc/error.hpp>
#include <aifc/options.hpp>
#include <aifc/server_metrics.hpp>
#include <aifc/timeline.hpp>
#include <chrono>
#include <condition_variable>
#include <exception>
#include <mutex>
#include <optional>
#include <stop_token>
#include <thread>

#include "convert.hpp"

namespace aifc::python {
namespace {

// Calls a Python observer on the group's observer thread, holding the GIL only for the call.
// A plain callable gets every finished request; an object gets the methods it has.
class PyObserver : public Observer {
 public:
  explicit PyObserver(py::object target) : target_(std::move(target)) {
    py::gil_scoped_acquire gil;
    const bool has_methods =
        py::hasattr(target_, "on_request_finished") || py::hasattr(target_, "on_progress") ||
        py::hasattr(target_, "on_run_started") || py::hasattr(target_, "on_run_finished");
    plain_callable_ = !has_methods && PyCallable_Check(target_.ptr());
  }
  ~PyObserver() override {
    py::gil_scoped_acquire gil;
    target_ = py::object();
  }

  void on_run_started(const ClockAnchor& anchor, std::uint64_t total) override {
    call("on_run_started", [&] {
      py::dict d;
      d["mono_ns"] = anchor.mono_ns;
      d["unix_ns"] = anchor.unix_ns;
      d["total"] = total;
      return d;
    });
  }
  void on_request_finished(const RequestRecord& r) override {
    call("on_request_finished", [&] { return record_to_dict(r); });
  }
  void on_progress(const ProgressSnapshot& s) override {
    call("on_progress", [&] { return progress_to_dict(s); });
  }
  void on_run_finished(const ProgressSnapshot& s) override {
    call("on_run_finished", [&] { return progress_to_dict(s); });
  }

 private:
  template <class MakeArg>
  void call(const char* method, MakeArg&& make_arg) {
    py::gil_scoped_acquire gil;
    try {
      if (plain_callable_) {
        if (std::string_view(method) == "on_request_finished") target_(make_arg());
      } else if (py::hasattr(target_, method)) {
        target_.attr(method)(make_arg());
      }
    } catch (py::error_already_set& e) {
      // Reported through the result (observer_errors); the run goes on.
      throw std::runtime_error(std::string(method) + ": " + e.what());
    }
  }

  py::object target_;
  bool plain_callable_ = false;
};

// Runs a benchmark on a thread of its own so that Python can wait for it in short slices,
// answer Ctrl-C, poll progress, or do other work meanwhile. Errors are carried back as values.
class Runner {
 public:
  virtual ~Runner() { join_quietly(); }

  void start() {
    std::lock_guard lock(mutex_);
    if (started_) throw Error(ErrorCode::invalid_state, "this benchmark was already started");
    started_ = true;
    thread_ = std::thread([this] {
      std::optional<BenchmarkResult> result;
      std::optional<Error> error;
      std::string other_error;
      try {
        result = run_body();
      } catch (const Error& e) {
        error = e;
      } catch (const std::exception& e) {
        other_error = e.what();
      }
      std::lock_guard lock(mutex_);
      result_ = std::move(result);
      error_ = std::move(error);
      other_error_ = std::move(other_error);
      done_ = true;
      cv_.notify_all();
    });
  }

  /// Waits up to `timeout_s` (None: until done). Returns whether the run is done. Ctrl-C stops
  /// the run, waits for its partial result, then raises KeyboardInterrupt.
  bool wait(std::optional<double> timeout_s) {
    const auto deadline = timeout_s
                              ? std::chrono::steady_clock::now() +
                                    std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                                        std::chrono::duration<double>(*timeout_s))
                              : std::chrono::steady_clock::time_point::max();
    for (;;) {
      {
        py::gil_scoped_release release;
        std::unique_lock lock(mutex_);
        const auto slice =
            std::min(deadline, std::chrono::steady_clock::now() + std::chrono::milliseconds(100));
        cv_.wait_until(lock, slice, [&] { return done_; });
        if (done_) break;
      }
      if (PyErr_CheckSignals() != 0) {
        stop();
        {
          py::gil_scoped_release release;
          std::unique_lock lock(mutex_);
          cv_.wait(lock, [&] { return done_; });
        }
        join_quietly();
        throw py::error_already_set();
      }
      if (std::chrono::steady_clock::now() >= deadline) return false;
    }
    join_quietly();
    return true;
  }

  bool done() {
    std::lock_guard lock(mutex_);
    return done_;
  }

  const BenchmarkResult& result() {
    std::lock_guard lock(mutex_);
    if (!done_)
      throw Error(ErrorCode::invalid_state, "the benchmark has not finished; wait() for it");
    if (error_) throw *error_;
    if (!other_error_.empty()) throw std::runtime_error(other_error_);
    return *result_;
  }

  virtual void stop() noexcept = 0;

 protected:
  virtual BenchmarkResult run_body() = 0;

  void join_quietly() {
    if (thread_.joinable() && std::this_thread::get_id() != thread_.get_id()) {
      py::gil_scoped_release release;
      thread_.join();
    }
  }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  std::thread thread_;
  bool started_ = false;
  bool done_ = false;
  std::optional<BenchmarkResult> result_;
  std::optional<Error> error_;
  std::string other_error_;
};

class PyGroup : public Runner {
 public:
  PyGroup(const py::dict& config, const py::list& prompts)
      : group_(config_from<GroupConfig>(config, "group config"),
               config_from<std::vector<Prompt>>(prompts, "prompts")) {}
  ~PyGroup() override {
    stop();
    join_quietly();
  }
  ObserverHandle add_observer(py::object o) {
    return group_.add_observer(std::make_shared<PyObserver>(std::move(o)));
  }
  bool remove_observer(ObserverHandle handle) { return group_.remove_observer(handle); }
  void stop() noexcept override { group_.stop(); }
  ProgressSnapshot progress() const { return group_.progress(); }

 private:
  BenchmarkResult run_body() override { return group_.run(); }
  ClientGroup group_;
};

// One Benchmark from Python: from run_benchmark's keywords (the library's named options) or
// from a BenchmarkSpec's JSON form.
class PyBench : public Runner {
 public:
  // The set-up (asking the server for its model, building and counting the prompts) runs on a
  // thread of its own while this one waits for it without the GIL: Ctrl-C then stops it through
  // Benchmark's stop token (KeyboardInterrupt, nothing measured) instead of being ignored until
  // it is over. Its exception, if any, is rethrown here.
  explicit PyBench(BenchmarkSpec spec) {
    std::stop_source stop;
    std::unique_ptr<Benchmark> made;
    std::exception_ptr failure;
    std::mutex mutex;
    std::condition_variable cv;
    bool done = false;
    std::thread setup([&] {
      try {
        made = std::make_unique<Benchmark>(std::move(spec), stop.get_token());
      } catch (...) {
        failure = std::current_exception();
      }
      std::lock_guard lock(mutex);
      done = true;
      cv.notify_all();
    });
    bool interrupted = false;
    for (;;) {
      {
        py::gil_scoped_release release;
        std::unique_lock lock(mutex);
        if (cv.wait_for(lock, std::chrono::milliseconds(100), [&] { return done; })) break;
      }
      if (!interrupted && PyErr_CheckSignals() != 0) {
        interrupted = true;  // the KeyboardInterrupt stays set until it is raised below
        stop.request_stop();
      }
    }
    {
      py::gil_scoped_release release;
      setup.join();
      if (interrupted) made.reset();
    }
    if (interrupted) throw py::error_already_set();
    if (failure) std::rethrow_exception(failure);
    benchmark_ = std::move(made);
  }
  static std::unique_ptr<PyBench> from_options(const py::dict& options) {
    return std::make_unique<PyBench>(benchmark_spec_from_options(to_json(options)));
  }
  static std::unique_ptr<PyBench> from_spec(const py::dict& spec) {
    return std::make_unique<PyBench>(config_from<BenchmarkSpec>(spec, "benchmark spec"));
  }
  ~PyBench() override {
    stop();
    join_quietly();
    py::gil_scoped_release release;
    benchmark_.reset();
  }
  ObserverHandle add_observer(py::object o) {
    return benchmark_->add_observer(std::make_shared<PyObserver>(std::move(o)));
  }
  bool remove_observer(ObserverHandle handle) { return benchmark_->remove_observer(handle); }
  void stop() noexcept override {
    if (benchmark_) benchmark_->stop();
  }
  ProgressSnapshot progress() { return benchmark_->progress(); }
  const Benchmark& benchmark() const { return *benchmark_; }

 private:
  BenchmarkResult run_body() override { return benchmark_->run(); }
  std::unique_ptr<Benchmark> benchmark_;
};

template <class T, class Class>
void bind_runner_methods(Class& c) {
  c.def("add_observer", &T::add_observer, py::arg("observer"))
      // Without the GIL: removal waits for a call under way, which may be waiting for the GIL.
      .def("remove_observer", &T::remove_observer, py::arg("handle"),
           py::call_guard<py::gil_scoped_release>())
      .def("start", &T::start)
      .def("wait", &T::wait, py::arg("timeout_s") = py::none())
      .def("stop", &T::stop, py::call_guard<py::gil_scoped_release>())
      .def_property_readonly("done", &T::done)
      .def("progress", [](T& t) { return progress_to_dict(t.progress()); })
      .def("result", &T::result, py::return_value_policy::reference_internal);
}

}  // namespace

void init_group(py::module_& m) {
  py::class_<BenchmarkResult>(m, "BenchmarkResult")
      .def_property_readonly(
          "summary", [](const BenchmarkResult& r) { return from_json(nlohmann::json(r.summary)); })
      .def_property_readonly("records",
                             [](const BenchmarkResult& r) { return records_to_columns(r.records); })
      .def("record",
           [](const BenchmarkResult& r, std::size_t i) {
             if (i >= r.records.size()) throw py::index_error("record index out of range");
             return record_to_dict(r.records[i]);
           })
      .def("__len__", [](const BenchmarkResult& r) { return r.records.size(); })
      .def_property_readonly(
          "aggregate", [](const BenchmarkResult& r) { return from_json(r.aggregate.to_json()); })
      .def_readonly("duration_s", &BenchmarkResult::duration_s)
      .def_readonly("interrupted", &BenchmarkResult::interrupted)
      .def_readonly("start_ns", &BenchmarkResult::start_ns)
      .def_readonly("observer_errors", &BenchmarkResult::observer_errors)
      .def_readonly("first_observer_error", &BenchmarkResult::first_observer_error)
      // Through JSON: a server's bytes that are not UTF-8 are replaced, never an exception.
      .def_property_readonly(
          "first_errors",
          [](const BenchmarkResult& r) { return from_json(nlohmann::json(r.first_errors)); },
          "The first failed requests' 'kind: message' (at most 10)")
      .def_readonly("observer_events_dropped", &BenchmarkResult::observer_events_dropped)
      .def_property_readonly("anchor", [](const BenchmarkResult& r) {
        py::dict d;
        d["mono_ns"] = r.anchor.mono_ns;
        d["unix_ns"] = r.anchor.unix_ns;
        return d;
      });

  py::class_<PyGroup> group(m, "ClientGroup");
  group.def(py::init<const py::dict&, const py::list&>(), py::arg("config"), py::arg("prompts"));
  bind_runner_methods<PyGroup>(group);

  py::class_<PyBench> bench(m, "BenchRun");
  bench
      .def_static("from_options", &PyBench::from_options, py::arg("options"),
                  "A run of the named options of `aifc bench` (aifc.benchmark_options()).")
      .def_static("from_spec", &PyBench::from_spec, py::arg("spec"),
                  "A run of a BenchmarkSpec's JSON form (see aifc.default_spec()).");
  bind_runner_methods<PyBench>(bench);
  bench
      .def("options",
           [](PyBench& b) {
             const auto& s = b.benchmark().spec();
             return from_json(
                 nlohmann::json{{"client", s.client}, {"dataset", s.dataset}, {"load", s.load}});
           })
      .def("spec", [](PyBench& b) { return from_json(b.benchmark().spec()); })
      .def("warnings", [](PyBench& b) { return b.benchmark().warnings(); })
      .def("tokenizer",
           [](PyBench& b) { return std::string(to_string(b.benchmark().tokenizer())); })
      .def("document",
           [](PyBench& b) { return from_json(b.benchmark().result_document(b.result())); })
      .def("summary_table", [](PyBench& b) { return b.benchmark().summary_table(b.result()); })
      .def(
          "timeline_html",
          [](PyBench& b, const std::string& thresholds) {
            TimelineOptions options = TimelineOptions::from_thresholds(thresholds);
            options.title = "aifc timeline: " + b.benchmark().spec().client.model;
            return timeline_html(b.result(), options);
          },
          py::arg("itl_thresholds_ms") = "25,50")
      .def("dataset_stats_html", [](PyBench& b) {
        return dataset_stats_html(b.result(),
                                  "aifc dataset statistics: " + b.benchmark().spec().client.model);
      });
  m.def(
      "benchmark_options",
      [] {
        py::list out;
        for (const auto& o : benchmark_options())
          out.append(py::make_tuple(o.name, to_string(o.kind), o.help));
        return out;
      },
      "Every named option of a benchmark as (name, kind, help): run_benchmark's keywords, "
      "`aifc bench`'s flags, the service's body keys.");
  m.def(
      "default_spec", [] { return from_json(BenchmarkSpec{}); },
      "The default BenchmarkSpec as a dict: every field with the core's default.");

  m.def(
      "format_summary_table",
      [](const py::dict& summary, const py::dict& options) {
        // A result document carries the configured rate and concurrency beside the summary.
        const nlohmann::json j = to_json(summary);
        TableConfig table;
        if (j.contains("request_rate") && j["request_rate"].is_number())
          table.request_rate = j["request_rate"].get<double>();
        if (j.contains("max_concurrency") && j["max_concurrency"].is_number())
          table.max_concurrency = j["max_concurrency"].get<std::int64_t>();
        // A document's probe_* and spec_decode_* keys add vLLM's probe and speculative-decoding
        // sections, as `aifc bench` prints them.
        return format_summary_table(config_from<Summary>(summary, "summary"),
                                    config_from<SummaryOptions>(options, "summary options"),
                                    table) +
               format_probe_table(j) + format_spec_decode_table(j);
      },
      py::arg("summary"), py::arg("options") = py::dict());
  m.def(
      "summarize_records",
      [](const py::list& records, double duration_s, const py::dict& options) {
        auto recs = config_from<std::vector<RequestRecord>>(records, "records");
        return from_json(nlohmann::json(
            summarize(recs, duration_s, config_from<SummaryOptions>(options, "summary options"))));
      },
      py::arg("records"), py::arg("duration_s"), py::arg("options") = py::dict());
}

}  // namespace aifc::python
