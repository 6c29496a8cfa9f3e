// aifc._core: the compiled half of the `aifc` Python package. The pure-Python package
// (bindings/python/aifc) wraps it; users import `aifc`, not this module.
#include <pybind11/pybind11.h>

#include <aifc/benchmark.hpp>
#include <aifc/error.hpp>
#include <aifc/slurm.hpp>
#include <aifc/version.hpp>

#include "convert.hpp"

namespace py = pybind11;

PYBIND11_MODULE(_core, m) {
  m.doc() = "The compiled core of aifc; use the `aifc` package.";
  m.attr("__version__") = aifc::version();

  // AifcError is a RuntimeError carrying `.code`; bad arguments are also ValueErrors.
  static PyObject* aifc_error = PyErr_NewExceptionWithDoc(
      "aifc._core.AifcError", "An error of the aifc library; `.code` names its ErrorCode.",
      PyExc_RuntimeError, nullptr);
  py::tuple bases = py::make_tuple(py::handle(aifc_error), py::handle(PyExc_ValueError));
  static PyObject* invalid_argument = PyErr_NewExceptionWithDoc(
      "aifc._core.InvalidArgument", "A bad argument or configuration value.", bases.ptr(), nullptr);
  m.attr("AifcError") = py::handle(aifc_error);
  m.attr("InvalidArgument") = py::handle(invalid_argument);
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const aifc::Error& e) {
      PyObject* type =
          e.code() == aifc::ErrorCode::invalid_argument ? invalid_argument : aifc_error;
      py::object instance =
          py::reinterpret_steal<py::object>(PyObject_CallFunction(type, "s", e.what()));
      if (!instance) return;  // the call set a Python error already
      instance.attr("code") = std::string(aifc::to_string(e.code()));
      PyErr_SetObject(type, instance.ptr());
    }
  });

  // Every config's defaults, as the core has them: the Python dataclasses read theirs from here.
  m.def(
      "defaults",
      [] {
        return aifc::python::from_json(nlohmann::json{{"client", aifc::ClientConfig{}},
                                                      {"dataset", aifc::DatasetConfig{}},
                                                      {"load", aifc::LoadConfig{}},
                                                      {"summary", aifc::SummaryOptions{}},
                                                      {"simulator", aifc::SimulatorConfig{}},
                                                      {"job", aifc::JobSpec{}},
                                                      {"container", aifc::ContainerSpec{}}});
      },
      "The default of every configuration field, from the C++ core.");

  aifc::python::init_client(m);
  aifc::python::init_group(m);
  aifc::python::init_simulator(m);
  aifc::python::init_cli(m);
  aifc::python::init_slurm(m);
}
