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
  const auto j = to_json(obj);
  JobSpec s;
  try {
    s.name = j.value("name", s.name);
    s.partition = j.value("partition", s.partition);
    s.account = j.value("account", s.account);
    s.qos = j.value("qos", s.qos);
    s.nodes = j.value("nodes", s.nodes);
    s.ntasks = j.value("ntasks", s.ntasks);
    s.ntasks_per_node = j.value("ntasks_per_node", s.ntasks_per_node);
    s.cpus_per_task = j.value("cpus_per_task", s.cpus_per_task);
    s.gpus_per_node = j.value("gpus_per_node", s.gpus_per_node);
    s.memory = j.value("memory", s.memory);
    s.time_limit = std::chrono::minutes(j.value("time_limit_min", 0));
    s.array = j.value("array", s.array);
    s.working_directory = j.value("working_directory", s.working_directory);
    s.output = j.value("output", s.output);
    s.error = j.value("error", s.error);
    if (j.contains("environment"))
      for (const auto& [k, v] : j["environment"].items())
        s.environment.emplace_back(k, v.get<std::string>());
    if (j.contains("extra_directives")) j["extra_directives"].get_to(s.extra_directives);
    if (j.contains("command")) j["command"].get_to(s.command);
    s.use_srun = j.value("use_srun", s.use_srun);
    if (j.contains("container") && !j["container"].is_null()) {
      const auto& c = j["container"];
      ContainerSpec cs;
      cs.image = c.value("image", std::string());
      if (c.contains("binds")) c["binds"].get_to(cs.binds);
      if (c.contains("gpu") && !c["gpu"].is_null()) cs.gpu = c["gpu"].get<bool>();
      if (c.contains("extra_args")) c["extra_args"].get_to(cs.extra_args);
      cs.apptainer = c.value("apptainer", cs.apptainer);
      s.container = cs;
    }
  } catch (const nlohmann::json::type_error& e) {
    throw py::type_error(std::string("job spec: ") + e.what());
  }
  return s;
}

py::dict job_info(const JobInfo& i) {
  py::dict d;
  d["job_id"] = i.job_id;
  d["state"] = std::string(to_string(i.state));
  d["state_text"] = i.state_text;
  d["reason"] = i.reason;
  d["exit_code"] = i.exit_code;
  d["nodes"] = i.nodes;
  d["terminal"] = is_terminal(i.state);
  return d;
}

std::unique_ptr<SlurmBackend> backend_from(const std::string& kind, const py::dict& config) {
  const auto j = to_json(config);
  if (kind == "rest") {
    RestConfig c = j.contains("config_file")
                       ? RestConfig::from_file(j["config_file"].get<std::string>())
                       : RestConfig{};
    if (j.contains("url")) c.url = j["url"].get<std::string>();
    if (j.contains("user_name")) c.user_name = j["user_name"].get<std::string>();
    if (j.contains("api_ver")) c.api_ver = j["api_ver"].get<std::string>();
    if (j.contains("account")) c.account = j["account"].get<std::string>();
    if (j.contains("jwt")) c.jwt = j["jwt"].get<std::string>();
    c.complete_from_environment();
    return make_rest_backend(c);
  }
  if (kind == "cli") {
    CliConfig c;
    c.slurm_conf = j.value("slurm_conf", std::string());
    return make_cli_backend(c);
  }
  if (kind == "ssh") {
    SshConfig c = SshConfig::from_environment(j.value("env_file", std::string(".env")));
    if (j.contains("host")) c.host = j["host"].get<std::string>();
    if (j.contains("port")) c.port = j["port"].get<int>();
    if (j.contains("user")) c.user = j["user"].get<std::string>();
    if (j.contains("key_path")) c.key_path = j["key_path"].get<std::string>();
    if (j.contains("known_hosts_path"))
      c.known_hosts_path = j["known_hosts_path"].get<std::string>();
    if (j.contains("remote_base_path"))
      c.remote_base_path = j["remote_base_path"].get<std::string>();
    c.accept_unknown_host = j.value("accept_unknown_host", c.accept_unknown_host);
    py::gil_scoped_release release;  // connects
    return make_ssh_backend(c);
  }
  throw Error(ErrorCode::invalid_argument,
              "backend must be 'rest', 'cli' or 'ssh', not '" + kind + "'");
}

}  // namespace

void init_slurm(py::module_& m) {
  m.def(
      "render_batch_script",
      [](const py::dict& spec) { return render_batch_script(job_spec_from(spec)); },
      py::arg("spec"));
  py::class_<SlurmDispatcher>(m, "SlurmDispatcher")
      .def(py::init([](const std::string& kind, const py::dict& config) {
             return std::make_unique<SlurmDispatcher>(backend_from(kind, config));
           }),
           py::arg("backend"), py::arg("config"))
      .def_property_readonly("backend", [](const SlurmDispatcher& d) { return d.backend().name(); })
      .def("on_state_change",
           [](SlurmDispatcher& d, py::function f) {
             auto holder = std::make_shared<py::function>(std::move(f));
             d.on_state_change([holder](const JobEvent& e) {
               py::gil_scoped_acquire gil;
               py::dict event;
               event["job_id"] = e.job_id;
               event["previous"] = std::string(to_string(e.previous));
               event["info"] = job_info(e.info);
               (*holder)(event);
             });
           })
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
