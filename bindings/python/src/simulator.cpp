// Simulator: the vLLM-compatible test server, in this process.
#include <pybind11/stl.h>

#include <aifc/simulator.hpp>

#include "convert.hpp"

namespace aifc::python {

void init_simulator(py::module_& m) {
  py::class_<Simulator>(m, "Simulator")
      .def(py::init([](const py::dict& config) {
             return std::make_unique<Simulator>(
                 config_from<SimulatorConfig>(config, "simulator config"));
           }),
           py::arg("config"))
      .def("start", &Simulator::start, py::call_guard<py::gil_scoped_release>())
      .def("stop", &Simulator::stop, py::call_guard<py::gil_scoped_release>())
      .def_property_readonly("port", &Simulator::port)
      .def_property_readonly("base_url", &Simulator::base_url)
      .def("stats", [](const Simulator& s) { return from_json(s.stats()); });
}

}  // namespace aifc::python
