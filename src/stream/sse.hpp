#pragma once

#include <algorithm>
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
///
/// Memory is bounded whatever a server sends: a line or an event larger than `max_event_bytes`
/// stops the parser (overflowed()), with what it held released.
class SseParser {
 public:
  static constexpr std::size_t kDefaultMaxEventBytes = std::size_t{16} << 20;

  explicit SseParser(std::size_t max_event_bytes = kDefaultMaxEventBytes)
      : max_event_bytes_(max_event_bytes) {
    line_.reserve(256);
    data_.reserve(256);
  }

  /// Feeds bytes; calls `on_event(const SseEvent&)` for every completed event. Does nothing
  /// once overflowed().
  template <class OnEvent>
  void feed(std::string_view bytes, OnEvent&& on_event) {
    if (overflowed_) return;
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
        if (!hold(line_.size() + static_cast<std::size_t>(end - p))) return;
        line_.append(p, static_cast<std::size_t>(end - p));
        return;
      }
      if (line_.empty()) {
        handle_line(std::string_view(p, static_cast<std::size_t>(eol - p)), on_event);
      } else {
        if (!hold(line_.size() + static_cast<std::size_t>(eol - p))) return;
        line_.append(p, static_cast<std::size_t>(eol - p));
        handle_line(std::string_view(line_), on_event);
        line_.clear();
      }
      if (overflowed_) return;
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

  /// True when a line or an event was larger than max_event_bytes: the stream is malformed.
  bool overflowed() const noexcept { return overflowed_; }
  std::size_t max_event_bytes() const noexcept { return max_event_bytes_; }

  /// Forgets any partial event (for reuse on a new stream).
  void reset() noexcept {
    line_.clear();
    data_.clear();
    event_.clear();
    has_data_ = false;
    skip_lf_ = false;
    overflowed_ = false;
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
    if (field == "data" || field == "error") {
      if (!hold(data_.size() + value.size() + 1)) return;
      if (field == "error") event_.assign("error");
      if (has_data_) data_.push_back('\n');
      data_.append(value);
      has_data_ = true;
    } else if (field == "event") {
      event_.assign(value.substr(0, std::min<std::size_t>(value.size(), 256)));
    }
    // "id" and "retry" carry nothing a benchmark needs; unknown fields are ignored per the spec.
  }

  // False, with everything held released, when `bytes` would pass the limit.
  bool hold(std::size_t bytes) {
    if (bytes <= max_event_bytes_) return true;
    overflowed_ = true;
    std::string().swap(line_);
    std::string().swap(data_);
    event_.clear();
    has_data_ = false;
    return false;
  }

  std::size_t max_event_bytes_;
  std::string line_;
  std::string data_;
  std::string event_;
  bool has_data_ = false;
  bool skip_lf_ = false;
  bool overflowed_ = false;
};

}  // namespace aifc
