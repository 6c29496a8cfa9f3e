#include "aifc/record.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>
#include <type_traits>

#include "metrics/record_json.hpp"
#include "util/json_text.hpp"

namespace aifc {

ClockAnchor ClockAnchor::now() noexcept {
  ClockAnchor a;
  a.mono_ns = mono_now();
  a.unix_ns = unix_now_ns();
  return a;
}

namespace {
constexpr std::string_view kErrorNames[] = {"none",
                                            "connect",
                                            "tls",
                                            "http_status",
                                            "server_error",
                                            "malformed_stream",
                                            "connection_closed",
                                            "timeout_connect",
                                            "timeout_first_token",
                                            "timeout_total",
                                            "timeout_read",
                                            "cancelled",
                                            "io"};
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
}  // namespace

std::string_view to_string(RequestError e) noexcept {
  const auto i = static_cast<std::size_t>(e);
  return i < std::size(kErrorNames) ? kErrorNames[i] : "unknown";
}

RequestError request_error_from_string(std::string_view s) noexcept {
  for (std::size_t i = 0; i < std::size(kErrorNames); ++i)
    if (kErrorNames[i] == s) return static_cast<RequestError>(i);
  return RequestError::io;
}

std::string_view to_string(TokenSource s) noexcept {
  switch (s) {
    case TokenSource::usage:
      return "usage";
    case TokenSource::chunks:
      return "chunks";
    case TokenSource::none:
      return "none";
  }
  return "none";
}

double RequestRecord::ttft_s() const noexcept {
  if (first_token_ns < 0 || send_ns < 0) return kNaN;
  return static_cast<double>(first_token_ns - send_ns) * 1e-9;
}

double RequestRecord::e2el_s() const noexcept {
  if (end_ns < 0 || send_ns < 0) return kNaN;
  return static_cast<double>(end_ns - send_ns) * 1e-9;
}

double RequestRecord::tpot_s() const noexcept {
  if (output_tokens < 2 || first_token_ns < 0 || end_ns < 0) return kNaN;
  return static_cast<double>(end_ns - first_token_ns) * 1e-9 /
         static_cast<double>(output_tokens - 1);
}

double RequestRecord::lateness_s() const noexcept {
  if (send_ns < 0 || scheduled_ns < 0) return kNaN;
  return static_cast<double>(send_ns - scheduled_ns) * 1e-9;
}

namespace {

// The fields of a record's JSON form, in one place for both ways of writing it. Alphabetical:
// nlohmann's order, so that append_record_json writes the text that dumping to_json's value does.
template <class OnField>
void for_each_field(const RequestRecord& r, OnField&& field) {
  field("end_ns", r.end_ns);
  field("error", to_string(r.error));
  field("error_message", std::string_view(r.error_message));
  field("first_answer_ns", r.first_answer_ns);
  field("first_byte_ns", r.first_byte_ns);
  field("first_reasoning_ns", r.first_reasoning_ns);
  field("first_token_ns", r.first_token_ns);
  field("generated_text", std::string_view(r.generated_text));
  field("http_status", r.http_status);
  field("index", r.index);
  field("input_tokens", r.input_tokens);
  field("input_tokens_exact", r.input_tokens_exact);
  field("output_token_source", to_string(r.output_token_source));
  field("output_tokens", r.output_tokens);
  field("requested_output_tokens", r.requested_output_tokens);
  field("retried", r.retried);
  field("scheduled_ns", r.scheduled_ns);
  field("send_ns", r.send_ns);
  field("server_token_ns", r.server_token_ns);
  field("token_ns", r.token_ns);
  field("warmup", r.warmup);
}

}  // namespace

void to_json(nlohmann::json& j, const RequestRecord& r) {
  j = nlohmann::json::object();
  for_each_field(r, [&](const char* name, const auto& value) {
    if constexpr (std::is_same_v<std::decay_t<decltype(value)>, std::string_view>)
      j[name] = std::string(value);
    else
      j[name] = value;
  });
}

void append_record_json(std::string& out, const RequestRecord& r) {
  char separator = '{';
  for_each_field(r, [&](const char* name, const auto& value) {
    using T = std::decay_t<decltype(value)>;
    out += separator;
    separator = ',';
    out += '"';
    out += name;
    out += "\":";
    if constexpr (std::is_same_v<T, bool>) {
      out += value ? "true" : "false";
    } else if constexpr (std::is_same_v<T, std::string_view>) {
      detail::append_json_string(out, value);
    } else if constexpr (std::is_same_v<T, std::vector<MonoNanos>>) {
      out += '[';
      for (std::size_t i = 0; i < value.size(); ++i) {
        if (i > 0) out += ',';
        out += std::to_string(value[i]);
      }
      out += ']';
    } else {
      out += std::to_string(value);
    }
  });
  out += '}';
}

void from_json(const nlohmann::json& j, RequestRecord& r) {
  r = RequestRecord{};
  j.at("index").get_to(r.index);
  r.warmup = j.value("warmup", false);
  r.scheduled_ns = j.value("scheduled_ns", MonoNanos{-1});
  r.send_ns = j.value("send_ns", MonoNanos{-1});
  r.first_byte_ns = j.value("first_byte_ns", MonoNanos{-1});
  r.first_token_ns = j.value("first_token_ns", MonoNanos{-1});
  r.first_reasoning_ns = j.value("first_reasoning_ns", MonoNanos{-1});
  r.first_answer_ns = j.value("first_answer_ns", MonoNanos{-1});
  r.end_ns = j.value("end_ns", MonoNanos{-1});
  if (j.contains("token_ns")) j.at("token_ns").get_to(r.token_ns);
  if (j.contains("server_token_ns")) j.at("server_token_ns").get_to(r.server_token_ns);
  r.input_tokens = j.value("input_tokens", std::int64_t{0});
  r.input_tokens_exact = j.value("input_tokens_exact", false);
  r.output_tokens = j.value("output_tokens", std::int64_t{0});
  const auto source = j.value("output_token_source", std::string("none"));
  r.output_token_source = source == "usage"    ? TokenSource::usage
                          : source == "chunks" ? TokenSource::chunks
                                               : TokenSource::none;
  r.requested_output_tokens = j.value("requested_output_tokens", std::int64_t{0});
  r.retried = j.value("retried", false);
  r.http_status = j.value("http_status", 0);
  r.error = request_error_from_string(j.value("error", std::string("none")));
  r.error_message = j.value("error_message", std::string());
  r.generated_text = j.value("generated_text", std::string());
}

}  // namespace aifc
