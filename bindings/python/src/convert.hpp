#pragma once

#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <aifc/client_group.hpp>
#include <aifc/record.hpp>
#include <nlohmann/json.hpp>
#include <vector>

namespace aifc::python {

namespace py = pybind11;

/// Python object (dict, list, numbers, strings) to JSON, through the json module: configs cross
/// once per call, so clarity beats speed here.
nlohmann::json to_json(const py::handle& obj);
py::object from_json(const nlohmann::json& j);

py::dict record_to_dict(const RequestRecord& r);
/// Records as columns: one list per field (and derived ms latencies), ready for pandas.
py::dict records_to_columns(const std::vector<RequestRecord>& records);
py::dict progress_to_dict(const ProgressSnapshot& s);

/// Parses a config from JSON, turning nlohmann's type errors into TypeError and unknown
/// values into aifc::Error(invalid_argument).
template <class T>
T config_from(const py::handle& obj, const char* what) {
  try {
    return to_json(obj).get<T>();
  } catch (const nlohmann::json::type_error& e) {
    throw py::type_error(std::string(what) + ": " + e.what());
  } catch (const nlohmann::json::out_of_range& e) {
    throw py::value_error(std::string(what) + ": " + e.what());
  }
}

void init_client(py::module_& m);
void init_group(py::module_& m);
void init_simulator(py::module_& m);
void init_cli(py::module_& m);
void init_slurm(py::module_& m);

}  // namespace aifc::python
