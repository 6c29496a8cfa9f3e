// VLLMClient: one request at a time, every chunk timed.
#include <pybind11/stl.h>

#include <aifc/vllm_client.hpp>

#include "convert.hpp"

namespace aifc::python {

void init_client(py::module_& m) {
  py::class_<VLLMClient>(m, "VLLMClient")
      .def(py::init([](const py::dict& config) {
             return VLLMClient(config_from<ClientConfig>(config, "client config"));
           }),
           py::arg("config"))
      .def("config", [](const VLLMClient& c) { return from_json(nlohmann::json(c.config())); })
      .def(
          "send",
          [](VLLMClient& c, const std::string& prompt, std::int64_t max_tokens,
             std::int64_t input_tokens, const py::object& extra_body) {
            RequestSpec spec{prompt, max_tokens, input_tokens, false, to_json(extra_body), ""};
            PreparedRequest prepared = c.prepare(spec);
            RequestRecord rec;
            {
              py::gil_scoped_release release;
              rec = c.send(prepared);
            }
            return record_to_dict(rec);
          },
          py::arg("prompt"), py::arg("max_tokens") = 0, py::arg("input_tokens") = 0,
          py::arg("extra_body") = py::none())
      .def("cancel", &VLLMClient::cancel, py::call_guard<py::gil_scoped_release>())
      .def("resume", &VLLMClient::resume)
      .def("list_models", &VLLMClient::list_models, py::call_guard<py::gil_scoped_release>())
      .def("health", &VLLMClient::health, py::call_guard<py::gil_scoped_release>())
      .def("count_tokens", &VLLMClient::count_tokens, py::arg("text"),
           py::call_guard<py::gil_scoped_release>());

  m.def(
      "load_dataset",
      [](const py::dict& config) {
        const auto c = config_from<DatasetConfig>(config, "dataset config");
        std::vector<Prompt> prompts;
        {
          py::gil_scoped_release release;
          prompts = load_dataset(c);
        }
        return from_json(nlohmann::json(prompts));
      },
      py::arg("config"));
}

}  // namespace aifc::python
