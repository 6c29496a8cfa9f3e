#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace aifc {

/// One server-sent event: the joined `data:` lines and the `event:` type (empty if none).
/// An `error:` line (llama.cpp's server reports a failure mid-stream that way, outside the
/// standard fields) arrives as an event of type "error" carrying the line's value.
struct SseEvent {
  std::string_view event;
  std::string_view data;
};

/// Incremental parser for a text/event-stream body (WHATWG "server-sent events").
///
/// Bytes may be fed in pieces split anywhere, including inside a `\r\n` pair. Lines end in
/// `\r\n`, `\n` or `\r`; comment lines (starting with ':') are skipped; several `data:` lines
/// of one event are joined with '\n'; an event is dispatched at the blank line that ends it.
/// The views passed to the callback are valid only during the call.
class SseParser {
 public:
  SseParser() {
    line_.reserve(256);
    data_.reserve(256);
  }

  /// Feeds bytes; calls `on_event(const SseEvent&)` for every completed event.
  template <class OnEvent>
  void feed(std::string_view bytes, OnEvent&& on_event) {
    const char* p = bytes.data();
    const char* const end = p + bytes.size();
    if (skip_lf_ && p != end) {
      skip_lf_ = false;
      if (*p == '\n') ++p;
    }
    while (p != end) {
      const char* eol = p;
      while (eol != end && *eol != '\n' && *eol != '\r') ++eol;
      if (eol == end) {
        line_.append(p, static_cast<std::size_t>(end - p));
        return;
      }
      if (line_.empty()) {
        handle_line(std::string_view(p, static_cast<std::size_t>(eol - p)), on_event);
      } else {
        line_.append(p, static_cast<std::size_t>(eol - p));
        handle_line(std::string_view(line_), on_event);
        line_.clear();
      }
      if (*eol == '\r') {
        if (eol + 1 == end) {
          skip_lf_ = true;  // the '\n' of a "\r\n" may come with the next piece
          return;
        }
        if (eol[1] == '\n') ++eol;
      }
      p = eol + 1;
    }
  }

  /// True when bytes of an unfinished event are buffered: a stream that ends now was cut short.
  bool has_partial_event() const noexcept { return !line_.empty() || has_data_ || !event_.empty(); }

  /// Forgets any partial event (for reuse on a new stream).
  void reset() noexcept {
    line_.clear();
    data_.clear();
    event_.clear();
    has_data_ = false;
    skip_lf_ = false;
  }

 private:
  template <class OnEvent>
  void handle_line(std::string_view line, OnEvent& on_event) {
    if (line.empty()) {
      if (has_data_) on_event(SseEvent{std::string_view(event_), std::string_view(data_)});
      data_.clear();
      event_.clear();
      has_data_ = false;
      return;
    }
    if (line.front() == ':') return;  // comment, e.g. a keep-alive ping
    std::string_view field = line;
    std::string_view value;
    if (const auto colon = line.find(':'); colon != std::string_view::npos) {
      field = line.substr(0, colon);
      value = line.substr(colon + 1);
      if (!value.empty() && value.front() == ' ') value.remove_prefix(1);
    }
    if (field == "data") {
      if (has_data_) data_.push_back('\n');
      data_.append(value);
      has_data_ = true;
    } else if (field == "event") {
      event_.assign(value);
    } else if (field == "error") {
      event_.assign("error");
      if (has_data_) data_.push_back('\n');
      data_.append(value);
      has_data_ = true;
    }
    // "id" and "retry" carry nothing a benchmark needs; unknown fields are ignored per the spec.
  }

  std::string line_;
  std::string data_;
  std::string event_;
  bool has_data_ = false;
  bool skip_lf_ = false;
};

}  // namespace aifc
