#include "convert.hpp"

#include <aifc/error.hpp>
#include <cmath>
#include <limits>

namespace aifc::python {

namespace {

// Python values as JSON, walked directly: NaN and infinity stay numbers (the core's checks name
// the field they are in; text JSON cannot carry them), and an integer beyond 64 bits is an
// error naming it.
nlohmann::json value_to_json(const py::handle& obj, int depth) {
  if (depth > 64) throw Error(ErrorCode::invalid_argument, "a value nested deeper than 64 levels");
  if (obj.is_none()) return nullptr;
  if (py::isinstance<py::bool_>(obj)) return obj.cast<bool>();
  if (py::isinstance<py::int_>(obj)) {
    try {
      return obj.cast<std::int64_t>();
    } catch (const py::cast_error&) {
    }
    try {
      return obj.cast<std::uint64_t>();
    } catch (const py::cast_error&) {
      throw Error(ErrorCode::invalid_argument,
                  "the integer " + py::str(obj).cast<std::string>() + " does not fit in 64 bits");
    }
  }
  if (py::isinstance<py::float_>(obj)) return obj.cast<double>();
  if (py::isinstance<py::str>(obj)) return obj.cast<std::string>();
  if (py::isinstance<py::dict>(obj)) {
    nlohmann::json out = nlohmann::json::object();
    for (const auto& [key, value] : obj.cast<py::dict>())
      out[py::str(key).cast<std::string>()] = value_to_json(value, depth + 1);
    return out;
  }
  if (py::isinstance<py::list>(obj) || py::isinstance<py::tuple>(obj)) {
    nlohmann::json out = nlohmann::json::array();
    for (const auto& item : obj) out.push_back(value_to_json(item, depth + 1));
    return out;
  }
  // Anything else JSON can say (a numpy number, say), through Python's own encoder.
  try {
    const auto text = py::module_::import("json").attr("dumps")(obj).cast<std::string>();
    return nlohmann::json::parse(text);
  } catch (const std::exception&) {
    throw Error(ErrorCode::invalid_argument,
                "a value of type " + py::str(obj.get_type().attr("__name__")).cast<std::string>() +
                    " is not JSON");
  }
}

}  // namespace

nlohmann::json to_json(const py::handle& obj) {
  if (obj.is_none()) return nlohmann::json::object();
  return value_to_json(obj, 0);
}

py::object from_json(const nlohmann::json& j) {
  return py::module_::import("json").attr("loads")(
      j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
}

namespace {
double ms_or_nan(double seconds) { return std::isnan(seconds) ? seconds : seconds * 1e3; }
}  // namespace

// A record's fields come from its own JSON mapping (record.cpp, the one list of them); only the
// derived latencies in ms are added here. Strings with bytes that are not UTF-8 are replaced
// on the way, so a server's odd bytes never cost the result.
py::dict record_to_dict(const RequestRecord& r) {
  py::dict d = from_json(nlohmann::json(r));
  d["ok"] = r.ok();
  d["ttft_ms"] = ms_or_nan(r.ttft_s());
  d["tpot_ms"] = ms_or_nan(r.tpot_s());
  d["e2el_ms"] = ms_or_nan(r.e2el_s());
  d["lateness_ms"] = ms_or_nan(r.lateness_s());
  return d;
}

py::dict records_to_columns(const std::vector<RequestRecord>& records) {
  nlohmann::json columns = nlohmann::json::object();
  const nlohmann::json fields = RequestRecord{};  // named: items() must not outlive it
  for (const auto& [key, value] : fields.items()) columns[key] = nlohmann::json::array();
  const std::size_t n = records.size();
  py::list ok(n), ttft(n), tpot(n), e2el(n), lateness(n);
  for (std::size_t i = 0; i < n; ++i) {
    const auto& r = records[i];
    nlohmann::json j = r;
    for (auto& [key, value] : j.items()) columns[key].push_back(std::move(value));
    ok[i] = r.ok();
    ttft[i] = ms_or_nan(r.ttft_s());
    tpot[i] = ms_or_nan(r.tpot_s());
    e2el[i] = ms_or_nan(r.e2el_s());
    lateness[i] = ms_or_nan(r.lateness_s());
  }
  py::dict d = from_json(columns);
  d["ok"] = ok;
  d["ttft_ms"] = ttft;
  d["tpot_ms"] = tpot;
  d["e2el_ms"] = e2el;
  d["lateness_ms"] = lateness;
  return d;
}

py::dict progress_to_dict(const ProgressSnapshot& s) {
  py::dict d;
  d["elapsed_s"] = s.elapsed_s;
  d["completed"] = s.completed;
  d["failed"] = s.failed;
  d["in_flight"] = s.in_flight;
  d["total"] = s.total;
  d["output_tokens"] = s.output_tokens;
  d["request_throughput"] = s.request_throughput;
  d["output_throughput"] = s.output_throughput;
  return d;
}

}  // namespace aifc::python
