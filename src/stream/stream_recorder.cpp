#include "stream/stream_recorder.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "stream/openai_stream.hpp"
#include "util/durations.hpp"

namespace aifc::detail {
namespace {

constexpr std::size_t kMaxErrorBody = 4096;
constexpr std::size_t kMaxPlainBody = 64u << 20;
constexpr const char* kEmptyAnswer = "the server answered 200 with no content and no usage";

MonoNanos ns(std::chrono::milliseconds ms) { return detail::nanos_of(ms); }

}  // namespace

std::string_view utf8_prefix(std::string_view text, std::size_t max_bytes) noexcept {
  if (text.size() <= max_bytes) return text;
  std::size_t n = max_bytes;
  // Back up over continuation bytes (10xxxxxx) to the start of the character that was cut.
  while (n > 0 && (static_cast<unsigned char>(text[n]) & 0xC0) == 0x80) --n;
  return text.substr(0, n);
}

std::string error_body_message(std::string_view body) {
  // Error paths are rare: a full JSON parse is fine here.
  const auto doc = nlohmann::json::parse(body, nullptr, false);
  if (doc.is_object()) {
    if (const auto e = doc.find("error"); e != doc.end()) {
      if (e->is_string()) return e->get<std::string>();
      if (e->is_object() && e->contains("message") && (*e)["message"].is_string())
        return (*e)["message"].get<std::string>();
    }
    for (const char* key : {"message", "detail"})
      if (const auto m = doc.find(key); m != doc.end() && m->is_string())
        return m->get<std::string>();
  }
  std::string raw(utf8_prefix(body, 300));
  for (char& ch : raw)
    if (ch == '\n' || ch == '\r') ch = ' ';
  return raw;
}

StreamRecorder::StreamRecorder(const ClientConfig& config) : config_(config) {
  if (config.first_token_timeout.count() > 0) first_token_budget_ = ns(config.first_token_timeout);
  total_budget_ = ns(config.request_timeout);
  read_budget_ = ns(config.read_timeout);
  plain_body_.reserve(1024);
}

void StreamRecorder::begin(RequestRecord& rec, const PreparedRequest& request,
                           MonoNanos scheduled_ns, MonoNanos send_ns) {
  rec_ = &rec;
  rec.requested_output_tokens = request.max_tokens;
  rec.input_tokens = request.input_tokens;
  rec.input_tokens_exact = request.input_tokens_exact;
  rec.send_ns = send_ns;
  rec.scheduled_ns = scheduled_ns >= 0 ? scheduled_ns : send_ns;
  sse_.reset();
  event_stream_ = saw_done_ = saw_finish_ = false;
  plain_body_.clear();
  last_byte_ns_ = -1;
}

void StreamRecorder::on_headers(int status, bool event_stream, MonoNanos now) {
  rec_->first_byte_ns = last_byte_ns_ = now;
  rec_->http_status = status;
  event_stream_ = event_stream;
}

std::string StreamRecorder::timeout_message(RequestError e) const {
  switch (e) {
    case RequestError::timeout_first_token:
      return fmt::format("no token within {} ms", config_.first_token_timeout.count());
    case RequestError::timeout_total:
      return fmt::format("request took longer than {} ms", config_.request_timeout.count());
    case RequestError::timeout_read:
      return fmt::format("no data for {} ms", config_.read_timeout.count());
    case RequestError::timeout_connect:
      return fmt::format("connecting took longer than {} ms", config_.connect_timeout.count());
    default:
      return std::string(to_string(e));
  }
}

void StreamRecorder::fail(RequestError error, std::string message) {
  if (rec_->error != RequestError::none) return;
  rec_->error = error;
  rec_->error_message = std::move(message);
}

void StreamRecorder::take_usage(const StreamChunk& chunk) {
  if (chunk.prompt_tokens >= 0) {
    rec_->input_tokens = chunk.prompt_tokens;
    rec_->input_tokens_exact = true;
  }
  if (chunk.completion_tokens >= 0) {
    rec_->output_tokens = chunk.completion_tokens;
    rec_->output_token_source = TokenSource::usage;
  }
}

bool StreamRecorder::on_event(const SseEvent& ev, MonoNanos now) {
  RequestRecord& rec = *rec_;
  if (ev.event == "error") {  // `event: error` + data, or llama.cpp's bare `error:` line
    const std::string m = error_body_message(ev.data);
    fail(RequestError::server_error, m.empty() ? "error event in stream" : m);
    return false;
  }
  if (ev.data == "[DONE]") {
    saw_done_ = true;
    return true;
  }
  StreamChunk chunk;
  if (!scan_openai_chunk(ev.data, chunk)) {
    fail(RequestError::malformed_stream,
         fmt::format("malformed stream chunk: {}", utf8_prefix(ev.data, 200)));
    return false;
  }
  if (chunk.is_error) {
    std::string m;
    append_json_unescaped(m, chunk.error_message);
    fail(RequestError::server_error, m.empty() ? "error object in stream" : m);
    return false;
  }
  if (!chunk.text.empty() || !chunk.reasoning.empty()) {
    if (rec.first_token_ns < 0) rec.first_token_ns = now;
    if (!chunk.reasoning.empty() && rec.first_reasoning_ns < 0) rec.first_reasoning_ns = now;
    if (!chunk.text.empty() && rec.first_answer_ns < 0) rec.first_answer_ns = now;
    rec.token_ns.push_back(now);
    if (chunk.server_sent_ns >= 0) rec.server_token_ns.push_back(chunk.server_sent_ns);
    if (config_.capture_text) append_json_unescaped(rec.generated_text, chunk.text);
  }
  if (!chunk.finish_reason.empty()) saw_finish_ = true;
  take_usage(chunk);
  return true;
}

bool StreamRecorder::on_body(const char* data, std::size_t len, MonoNanos now) {
  last_byte_ns_ = now;
  RequestRecord& rec = *rec_;
  if (rec.http_status < 200 || rec.http_status >= 300) {
    if (plain_body_.size() < kMaxErrorBody) plain_body_.append(data, std::min(len, kMaxErrorBody));
    return true;
  }
  if (!event_stream_) {
    if (plain_body_.size() + len > kMaxPlainBody) {
      fail(RequestError::malformed_stream, "response body larger than 64 MiB");
      return false;
    }
    plain_body_.append(data, len);
    return true;
  }
  bool keep_going = true;
  sse_.feed(std::string_view(data, len), [&](const SseEvent& ev) {
    if (keep_going) keep_going = on_event(ev, now);
  });
  if (!keep_going) return false;
  if (sse_.overflowed()) {
    fail(RequestError::malformed_stream,
         fmt::format("a server-sent event or line longer than {} MiB",
                     sse_.max_event_bytes() >> 20));
    return false;
  }
  if (const auto late = overdue(now);
      late != RequestError::none && late != RequestError::timeout_read) {
    fail(late, timeout_message(late));
    return false;
  }
  return true;
}

RequestError StreamRecorder::overdue(MonoNanos now) const noexcept {
  const RequestRecord& rec = *rec_;
  if (rec.first_token_ns < 0 && first_token_budget_ >= 0 && now - rec.send_ns > first_token_budget_)
    return RequestError::timeout_first_token;
  if (now - rec.send_ns > total_budget_) return RequestError::timeout_total;
  const MonoNanos quiet_since = last_byte_ns_ >= 0 ? last_byte_ns_ : rec.send_ns;
  if (now - quiet_since > read_budget_) return RequestError::timeout_read;
  return RequestError::none;
}

MonoNanos StreamRecorder::next_deadline() const noexcept {
  const RequestRecord& rec = *rec_;
  MonoNanos d = rec.send_ns + total_budget_;
  d = std::min(d, (last_byte_ns_ >= 0 ? last_byte_ns_ : rec.send_ns) + read_budget_);
  if (rec.first_token_ns < 0 && first_token_budget_ >= 0)
    d = std::min(d, rec.send_ns + first_token_budget_);
  return d + 1;
}

void StreamRecorder::finish(TransportEnd end, MonoNanos now, const std::string& transport_message) {
  RequestRecord& rec = *rec_;
  rec.end_ns = now;
  if (rec.error == RequestError::none) {
    switch (end) {
      case TransportEnd::complete:
        break;
      case TransportEnd::connect_failed:
        fail(RequestError::connect, transport_message);
        break;
      case TransportEnd::connect_timeout:
        fail(RequestError::timeout_connect, transport_message);
        break;
      case TransportEnd::tls_failed:
        fail(RequestError::tls, transport_message);
        break;
      case TransportEnd::write_failed:
        fail(RequestError::io, transport_message);
        break;
      case TransportEnd::aborted:
        fail(RequestError::cancelled, "cancelled");
        break;
      case TransportEnd::read_failed: {
        // A blocking transport's read timeout is the smallest of the limits: tell which ran out.
        const MonoNanos elapsed = now - rec.send_ns;
        const MonoNanos quiet = now - (last_byte_ns_ >= 0 ? last_byte_ns_ : rec.send_ns);
        const auto near = [](MonoNanos value, MonoNanos limit) {
          return value >= limit / 100 * 95;
        };
        if (first_token_budget_ >= 0 && rec.first_token_ns < 0 &&
            near(elapsed, first_token_budget_)) {
          fail(RequestError::timeout_first_token,
               timeout_message(RequestError::timeout_first_token));
        } else if (near(elapsed, total_budget_)) {
          fail(RequestError::timeout_total, timeout_message(RequestError::timeout_total));
        } else if (near(quiet, std::min(read_budget_, first_token_budget_ >= 0 ? first_token_budget_
                                                                               : read_budget_))) {
          fail(RequestError::timeout_read, fmt::format("no data for {} ms", quiet / 1'000'000));
        } else {
          fail(RequestError::connection_closed,
               rec.first_byte_ns < 0 ? "connection closed before the response"
                                     : "connection closed in the middle of the response");
        }
        break;
      }
    }
  }
  if (rec.error == RequestError::none) {
    if (rec.http_status < 200 || rec.http_status >= 300) {
      fail(RequestError::http_status,
           fmt::format("HTTP {}: {}", rec.http_status, error_body_message(plain_body_)));
    } else if (!event_stream_) {
      // A plain JSON answer (stream=false, or a server that does not stream).
      rec.first_token_ns = rec.end_ns;
      StreamChunk chunk;
      if (!scan_openai_chunk(plain_body_, chunk)) {
        fail(RequestError::malformed_stream,
             fmt::format("response is not JSON: {}", utf8_prefix(plain_body_, 200)));
      } else if (chunk.is_error) {
        fail(RequestError::server_error, error_body_message(plain_body_));
      } else if (chunk.text.empty() && chunk.reasoning.empty() && chunk.completion_tokens < 0) {
        fail(RequestError::server_error, kEmptyAnswer);
      } else {
        rec.token_ns.push_back(rec.end_ns);
        rec.first_answer_ns = rec.end_ns;
        if (config_.capture_text) append_json_unescaped(rec.generated_text, chunk.text);
        take_usage(chunk);
      }
    } else if (!saw_done_ && !saw_finish_) {
      fail(RequestError::connection_closed, "stream ended before [DONE]");
    } else if (rec.token_ns.empty() && rec.output_token_source != TokenSource::usage) {
      // A 200 stream that carried nothing: vLLM's client counts it failed, and so does aifc.
      fail(RequestError::server_error, kEmptyAnswer);
    }
  }
  if (rec.ok() && rec.output_token_source == TokenSource::none) {
    rec.output_tokens = static_cast<std::int64_t>(rec.token_ns.size());
    rec.output_token_source = TokenSource::chunks;
  }
}

}  // namespace aifc::detail
