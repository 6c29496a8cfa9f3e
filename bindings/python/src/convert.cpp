#include "convert.hpp"

#include <cmath>
#include <limits>

namespace aifc::python {

nlohmann::json to_json(const py::handle& obj) {
  if (obj.is_none()) return nlohmann::json::object();
  const auto text = py::module_::import("json").attr("dumps")(obj).cast<std::string>();
  return nlohmann::json::parse(text);
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
