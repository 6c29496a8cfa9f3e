// SlurmDispatcher and JobSpec: submit and follow client jobs from Python.
#include <pybind11/functional.h>
#include <pybind11/stl.h>

#include <aifc/error.hpp>
#include <aifc/slurm.hpp>
#include <aifc/ssh.hpp>

#include "convert.hpp"

namespace aifc::python {
namespace {

JobSpec job_spec_from(const py::handle& obj) {
  try {
    return to_json(obj).get<JobSpec>();
  } catch (const nlohmann::json::type_error& e) {
    throw py::type_error(std::string("job spec: ") + e.what());
  }
}

py::object job_info(const JobInfo& i) { return from_json(nlohmann::json(i)); }

// The settings from a file or the environment, with the keys the caller gave on top, through
// the configs' own JSON mappings. `extra` names keys that only choose the file.
template <class Config>
Config overlay(nlohmann::json base, nlohmann::json given, const char* extra) {
  given.erase(extra);
  base.merge_patch(given);
  return base.get<Config>();
}

std::unique_ptr<SlurmBackend> backend_from(const std::string& kind, const py::dict& config) {
  const auto j = to_json(config);
  if (kind == "rest") {
    const RestConfig file = j.contains("config_file")
                                ? RestConfig::from_file(j["config_file"].get<std::string>())
                                : RestConfig{};
    nlohmann::json base = file;
    base["jwt"] = file.jwt;  // the mapping never writes the token; carry it across here
    auto c = overlay<RestConfig>(base, j, "config_file");
    c.complete_from_environment();
    return make_rest_backend(c);
  }
  if (kind == "cli") return make_cli_backend(overlay<CliConfig>(CliConfig{}, j, ""));
  if (kind == "ssh") {
    const auto env = SshConfig::from_environment(j.value("env_file", std::string(".env")));
    auto c = overlay<SshConfig>(env, j, "env_file");
    py::gil_scoped_release release;  // connects
    return make_ssh_backend(c);
  }
  throw Error(ErrorCode::invalid_argument,
              "backend must be 'rest', 'cli' or 'ssh', not '" + kind + "'");
}

// The dispatcher calls observers on its own thread, which takes the GIL: destroying it (which
// delivers what is queued and joins that thread) must not hold the GIL.
struct ReleaseGilDelete {
  void operator()(SlurmDispatcher* d) const {
    py::gil_scoped_release release;
    delete d;
  }
};

}  // namespace

void init_slurm(py::module_& m) {
  m.def(
      "render_batch_script",
      [](const py::dict& spec) { return render_batch_script(job_spec_from(spec)); },
      py::arg("spec"));
  py::class_<SlurmDispatcher, std::unique_ptr<SlurmDispatcher, ReleaseGilDelete>>(m,
                                                                                  "SlurmDispatcher")
      .def(py::init([](const std::string& kind, const py::dict& config) {
             return std::unique_ptr<SlurmDispatcher, ReleaseGilDelete>(
                 new SlurmDispatcher(backend_from(kind, config)));
           }),
           py::arg("backend"), py::arg("config"))
      .def_property_readonly("backend", [](const SlurmDispatcher& d) { return d.backend().name(); })
      .def("on_state_change",
           [](SlurmDispatcher& d, py::function f) {
             // Dropped on whichever thread lets go last: with the GIL.
             std::shared_ptr<py::function> holder(new py::function(std::move(f)),
                                                  [](py::function* p) {
                                                    py::gil_scoped_acquire gil;
                                                    delete p;
                                                  });
             return d.on_state_change([holder](const JobEvent& e) {
               py::gil_scoped_acquire gil;
               py::dict event;
               event["job_id"] = e.job_id;
               event["previous"] = std::string(to_string(e.previous));
               event["info"] = job_info(e.info);
               try {
                 (*holder)(event);
               } catch (py::error_already_set& error) {
                 throw std::runtime_error(error.what());  // counted by the dispatcher
               }
             });
           })
      .def("remove_observer", &SlurmDispatcher::remove_observer, py::arg("handle"),
           py::call_guard<py::gil_scoped_release>())
      .def_property_readonly("observer_errors", &SlurmDispatcher::observer_errors)
      .def_property_readonly("observer_events_dropped", &SlurmDispatcher::observer_events_dropped)
      .def("flush_observers", &SlurmDispatcher::flush_observers,
           py::call_guard<py::gil_scoped_release>())
      .def("submit",
           [](SlurmDispatcher& d, const py::dict& spec) {
             const auto s = job_spec_from(spec);
             py::gil_scoped_release release;
             return d.submit(s);
           })
      .def("state",
           [](SlurmDispatcher& d, const std::string& id) {
             JobInfo i;
             {
               py::gil_scoped_release release;
               i = d.state(id);
             }
             return job_info(i);
           })
      .def(
          "wait",
          [](SlurmDispatcher& d, const std::string& id, double timeout_s, double poll_s) {
            JobInfo i;
            {
              py::gil_scoped_release release;
              i = d.wait(id, std::chrono::milliseconds(static_cast<std::int64_t>(timeout_s * 1000)),
                         std::chrono::milliseconds(static_cast<std::int64_t>(poll_s * 1000)));
            }
            return job_info(i);
          },
          py::arg("job_id"), py::arg("timeout_s") = 3600.0, py::arg("poll_s") = 0.25)
      .def("cancel", &SlurmDispatcher::cancel, py::call_guard<py::gil_scoped_release>());
}

}  // namespace aifc::python
