#include "stream/openai_stream.hpp"

#include <cctype>
#include <cstring>

namespace aifc {
namespace {

// A minimal JSON reader that validates the payload while pulling out the few fields a
// benchmark needs. Parsing every chunk with a general JSON library costs microseconds and
// allocations per token; this costs a single pass over the bytes.
class Scanner {
 public:
  explicit Scanner(std::string_view s) : p_(s.data()), end_(s.data() + s.size()) {}

  bool at_end() {
    skip_ws();
    return p_ == end_;
  }

  void skip_ws() {
    while (p_ != end_ && (*p_ == ' ' || *p_ == '\n' || *p_ == '\r' || *p_ == '\t')) ++p_;
  }

  bool consume(char c) {
    skip_ws();
    if (p_ != end_ && *p_ == c) {
      ++p_;
      return true;
    }
    return false;
  }

  char peek() {
    skip_ws();
    return p_ == end_ ? '\0' : *p_;
  }

  // Reads a string and returns its raw body (escapes kept).
  // At the character after a backslash: one of JSON's escapes (\uXXXX with four hex digits).
  // Leaves p_ at the escape's last character.
  bool escape() {
    switch (*p_) {
      case '"':
      case '\\':
      case '/':
      case 'b':
      case 'f':
      case 'n':
      case 'r':
      case 't':
        return true;
      case 'u':
        for (int i = 0; i < 4; ++i) {
          if (++p_ == end_ || !std::isxdigit(static_cast<unsigned char>(*p_))) return false;
        }
        return true;
      default:
        return false;
    }
  }

  bool string(std::string_view& out) {
    if (!consume('"')) return false;
    const char* start = p_;
    while (p_ != end_) {
      const char c = *p_;
      if (c == '"') {
        out = std::string_view(start, static_cast<std::size_t>(p_ - start));
        ++p_;
        return true;
      }
      if (c == '\\') {
        if (++p_ == end_) return false;
        if (!escape()) return false;
      } else if (static_cast<unsigned char>(c) < 0x20) {
        return false;
      }
      ++p_;
    }
    return false;
  }

  // A JSON number that must be a whole number in range and not negative (every integer read
  // here is a count or a timestamp): anything else (a fraction, an exponent, more digits than an
  // int64 holds, a minus sign) is valid JSON but no usable value, and comes out as -1, so that
  // the caller treats it as absent instead of trusting a wrapped or negative count.
  bool integer(std::int64_t& out) {
    skip_ws();
    const char* start = p_;
    if (!number()) return false;
    std::int64_t v = 0;
    bool neg = false;
    const char* q = start;
    if (*q == '-') {
      neg = true;
      ++q;
    }
    const char* digits = q;
    for (; q != p_ && *q >= '0' && *q <= '9'; ++q) {
      if (q - digits >= 18) {  // 18 digits always fit; more might not
        out = -1;
        return true;
      }
      v = v * 10 + (*q - '0');
    }
    out = q != p_ || neg ? -1 : v;  // q stopped early: a fraction or an exponent
    return true;
  }

  bool number() {
    skip_ws();
    const char* start = p_;
    if (p_ != end_ && *p_ == '-') ++p_;
    const char* digits = p_;
    while (p_ != end_ && *p_ >= '0' && *p_ <= '9') ++p_;
    if (p_ == digits) return false;
    if (*digits == '0' && p_ - digits > 1) return false;  // JSON has no leading zeros
    if (p_ != end_ && *p_ == '.') {
      ++p_;
      const char* frac = p_;
      while (p_ != end_ && *p_ >= '0' && *p_ <= '9') ++p_;
      if (p_ == frac) return false;
    }
    if (p_ != end_ && (*p_ == 'e' || *p_ == 'E')) {
      ++p_;
      if (p_ != end_ && (*p_ == '+' || *p_ == '-')) ++p_;
      const char* exp = p_;
      while (p_ != end_ && *p_ >= '0' && *p_ <= '9') ++p_;
      if (p_ == exp) return false;
    }
    return p_ != start;
  }

  bool literal(const char* word) {
    skip_ws();
    const std::size_t n = std::strlen(word);
    if (static_cast<std::size_t>(end_ - p_) < n || std::memcmp(p_, word, n) != 0) return false;
    p_ += n;
    return true;
  }

  bool skip_value(int depth = 0) {
    if (depth > 64) return false;
    switch (peek()) {
      case '"': {
        std::string_view ignored;
        return string(ignored);
      }
      case '{': {
        ++p_;
        if (consume('}')) return true;
        do {
          std::string_view key;
          if (!string(key) || !consume(':') || !skip_value(depth + 1)) return false;
        } while (consume(','));
        return consume('}');
      }
      case '[': {
        ++p_;
        if (consume(']')) return true;
        do {
          if (!skip_value(depth + 1)) return false;
        } while (consume(','));
        return consume(']');
      }
      case 't':
        return literal("true");
      case 'f':
        return literal("false");
      case 'n':
        return literal("null");
      default:
        return number();
    }
  }

  // Iterates an object's members: on_member(key) must consume the value and return success.
  template <class OnMember>
  bool object(OnMember&& on_member) {
    if (!consume('{')) return false;
    if (consume('}')) return true;
    do {
      std::string_view key;
      if (!string(key) || !consume(':') || !on_member(key)) return false;
    } while (consume(','));
    return consume('}');
  }

  // A string or null; null leaves `out` empty.
  bool nullable_string(std::string_view& out) {
    if (peek() == 'n') return literal("null");
    return string(out);
  }

 private:
  const char* p_;
  const char* end_;
};

bool scan_delta(Scanner& s, StreamChunk& out) {
  if (s.peek() == 'n') return s.literal("null");
  return s.object([&](std::string_view key) {
    if (key == "content") return s.nullable_string(out.text);
    if (key == "reasoning_content" || key == "reasoning") return s.nullable_string(out.reasoning);
    return s.skip_value();
  });
}

bool scan_choice(Scanner& s, StreamChunk& out) {
  return s.object([&](std::string_view key) {
    if (key == "text") return s.nullable_string(out.text);
    if (key == "delta" || key == "message") return scan_delta(s, out);
    if (key == "finish_reason") return s.nullable_string(out.finish_reason);
    return s.skip_value();
  });
}

bool scan_choices(Scanner& s, StreamChunk& out) {
  if (s.peek() == 'n') return s.literal("null");
  if (!s.consume('[')) return false;
  if (s.consume(']')) return true;
  out.has_choices = true;
  if (!scan_choice(s, out)) return false;  // only the first choice is timed, as vLLM does
  while (s.consume(',')) {
    if (!s.skip_value()) return false;
  }
  return s.consume(']');
}

bool scan_usage(Scanner& s, StreamChunk& out) {
  if (s.peek() == 'n') return s.literal("null");
  return s.object([&](std::string_view key) {
    if (key == "prompt_tokens")
      return s.peek() == 'n' ? s.literal("null") : s.integer(out.prompt_tokens);
    if (key == "completion_tokens")
      return s.peek() == 'n' ? s.literal("null") : s.integer(out.completion_tokens);
    return s.skip_value();
  });
}

bool scan_error(Scanner& s, StreamChunk& out) {
  if (s.peek() == 'n') return s.literal("null");
  out.is_error = true;
  if (s.peek() == '"') return s.string(out.error_message);
  return s.object([&](std::string_view key) {
    if (key == "message") return s.nullable_string(out.error_message);
    return s.skip_value();
  });
}

}  // namespace

bool scan_openai_chunk(std::string_view json, StreamChunk& out) noexcept {
  out = StreamChunk{};
  Scanner s(json);
  bool object_is_error = false;
  std::string_view top_message;
  const bool ok = s.object([&](std::string_view key) {
    if (key == "choices") return scan_choices(s, out);
    if (key == "usage") return scan_usage(s, out);
    if (key == "error") return scan_error(s, out);
    if (key == "aifc_sent_ns") return s.integer(out.server_sent_ns);
    if (key == "object") {
      std::string_view type;
      if (!s.string(type)) return false;
      object_is_error = type == "error";
      return true;
    }
    if (key == "message") return s.nullable_string(top_message);
    return s.skip_value();
  });
  if (!ok || !s.at_end()) return false;
  if (object_is_error) {  // vLLM's ErrorResponse: {"object":"error","message":...}
    out.is_error = true;
    if (out.error_message.empty()) out.error_message = top_message;
  }
  return true;
}

void append_json_unescaped(std::string& out, std::string_view raw) {
  out.reserve(out.size() + raw.size());
  for (std::size_t i = 0; i < raw.size(); ++i) {
    const char c = raw[i];
    if (c != '\\' || i + 1 == raw.size()) {
      out.push_back(c);
      continue;
    }
    const char e = raw[++i];
    switch (e) {
      case 'n':
        out.push_back('\n');
        break;
      case 't':
        out.push_back('\t');
        break;
      case 'r':
        out.push_back('\r');
        break;
      case 'b':
        out.push_back('\b');
        break;
      case 'f':
        out.push_back('\f');
        break;
      case 'u': {
        if (i + 4 >= raw.size()) {  // truncated escape
          out.push_back('?');
          i = raw.size();
          break;
        }
        auto hex = [&](std::size_t at) -> unsigned {
          unsigned v = 0;
          for (std::size_t k = 0; k < 4; ++k) {
            const char h = raw[at + k];
            v <<= 4;
            if (h >= '0' && h <= '9')
              v |= static_cast<unsigned>(h - '0');
            else if (h >= 'a' && h <= 'f')
              v |= static_cast<unsigned>(h - 'a' + 10);
            else if (h >= 'A' && h <= 'F')
              v |= static_cast<unsigned>(h - 'A' + 10);
          }
          return v;
        };
        unsigned cp = hex(i + 1);
        i += 4;
        if (cp >= 0xD800 && cp <= 0xDBFF && i + 6 < raw.size() && raw[i + 1] == '\\' &&
            raw[i + 2] == 'u') {
          const unsigned low = hex(i + 3);
          if (low >= 0xDC00 && low <= 0xDFFF) {
            cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
            i += 6;
          }
        }
        // A surrogate without its partner has no UTF-8 form: the replacement character.
        if (cp >= 0xD800 && cp <= 0xDFFF) cp = 0xFFFD;
        if (cp < 0x80) {
          out.push_back(static_cast<char>(cp));
        } else if (cp < 0x800) {
          out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
          out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
        } else if (cp < 0x10000) {
          out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
          out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
          out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
        } else {
          out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
          out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
          out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
          out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
        }
        break;
      }
      default:
        out.push_back(e);
        break;  // \" \\ \/
    }
  }
}

}  // namespace aifc
