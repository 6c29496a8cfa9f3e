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

py::dict record_to_dict(const RequestRecord& r) {
  py::dict d;
  d["index"] = r.index;
  d["warmup"] = r.warmup;
  d["scheduled_ns"] = r.scheduled_ns;
  d["send_ns"] = r.send_ns;
  d["first_byte_ns"] = r.first_byte_ns;
  d["first_token_ns"] = r.first_token_ns;
  d["first_reasoning_ns"] = r.first_reasoning_ns;
  d["first_answer_ns"] = r.first_answer_ns;
  d["end_ns"] = r.end_ns;
  d["token_ns"] = r.token_ns;
  d["server_token_ns"] = r.server_token_ns;
  d["input_tokens"] = r.input_tokens;
  d["input_tokens_exact"] = r.input_tokens_exact;
  d["output_tokens"] = r.output_tokens;
  d["output_token_source"] = std::string(to_string(r.output_token_source));
  d["requested_output_tokens"] = r.requested_output_tokens;
  d["retried"] = r.retried;
  d["http_status"] = r.http_status;
  d["error"] = std::string(to_string(r.error));
  d["error_message"] = r.error_message;
  d["generated_text"] = r.generated_text;
  d["ok"] = r.ok();
  d["ttft_ms"] = ms_or_nan(r.ttft_s());
  d["tpot_ms"] = ms_or_nan(r.tpot_s());
  d["e2el_ms"] = ms_or_nan(r.e2el_s());
  d["lateness_ms"] = ms_or_nan(r.lateness_s());
  return d;
}

py::dict records_to_columns(const std::vector<RequestRecord>& records) {
  const std::size_t n = records.size();
  py::list index(n), warmup(n), scheduled(n), send(n), first_byte(n), first_token(n), end(n),
      input(n), input_exact(n), output(n), source(n), status(n), error(n), message(n), ok(n),
      ttft(n), tpot(n), e2el(n), lateness(n), tokens(n), text(n), requested(n), retried(n);
  for (std::size_t i = 0; i < n; ++i) {
    const auto& r = records[i];
    index[i] = r.index;
    warmup[i] = r.warmup;
    scheduled[i] = r.scheduled_ns;
    send[i] = r.send_ns;
    first_byte[i] = r.first_byte_ns;
    first_token[i] = r.first_token_ns;
    end[i] = r.end_ns;
    input[i] = r.input_tokens;
    input_exact[i] = r.input_tokens_exact;
    output[i] = r.output_tokens;
    source[i] = std::string(to_string(r.output_token_source));
    requested[i] = r.requested_output_tokens;
    retried[i] = r.retried;
    status[i] = r.http_status;
    error[i] = std::string(to_string(r.error));
    message[i] = r.error_message;
    ok[i] = r.ok();
    ttft[i] = ms_or_nan(r.ttft_s());
    tpot[i] = ms_or_nan(r.tpot_s());
    e2el[i] = ms_or_nan(r.e2el_s());
    lateness[i] = ms_or_nan(r.lateness_s());
    tokens[i] = py::cast(r.token_ns);
    text[i] = r.generated_text;
  }
  py::dict d;
  d["index"] = index;
  d["warmup"] = warmup;
  d["ok"] = ok;
  d["error"] = error;
  d["error_message"] = message;
  d["http_status"] = status;
  d["scheduled_ns"] = scheduled;
  d["send_ns"] = send;
  d["first_byte_ns"] = first_byte;
  d["first_token_ns"] = first_token;
  d["end_ns"] = end;
  d["input_tokens"] = input;
  d["input_tokens_exact"] = input_exact;
  d["output_tokens"] = output;
  d["output_token_source"] = source;
  d["requested_output_tokens"] = requested;
  d["retried"] = retried;
  d["ttft_ms"] = ttft;
  d["tpot_ms"] = tpot;
  d["e2el_ms"] = e2el;
  d["lateness_ms"] = lateness;
  d["token_ns"] = tokens;
  d["generated_text"] = text;
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
