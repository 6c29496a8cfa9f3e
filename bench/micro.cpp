// Pure CPU cost of the per-chunk hot path (SSE parsing + chunk scan + record update), without
// sockets: the part of the per-chunk cost that is aifc's own code.
#include <aifc/record.hpp>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "stream/openai_stream.hpp"
#include "stream/sse.hpp"

int main() {
  const std::string chunk =
      "data: {\"id\":\"cmpl-123\",\"object\":\"text_completion\",\"created\":1732800000,"
      "\"model\":\"meta-llama/Llama-3.1-8B-Instruct\",\"choices\":[{\"index\":0,\"text\":\" the\","
      "\"logprobs\":null,\"finish_reason\":null,\"stop_reason\":null}],\"usage\":null}\n\n";
  const int chunks = 2'000'000;
  aifc::SseParser parser;
  std::vector<aifc::MonoNanos> token_ns;
  token_ns.reserve(1024);
  std::size_t tokens = 0;
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < chunks; ++i) {
    const aifc::MonoNanos now = aifc::mono_now();
    parser.feed(chunk, [&](const aifc::SseEvent& e) {
      aifc::StreamChunk c;
      if (aifc::scan_openai_chunk(e.data, c) && !c.text.empty()) {
        if (token_ns.size() == 1024) token_ns.clear();
        token_ns.push_back(now);
        ++tokens;
      }
    });
  }
  const double ns =
      std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - t0).count();
  std::printf(
      "hot path per chunk (clock read + SSE + scan + record): %.0f ns  (%zu tokens, %zu-byte "
      "chunks)\n",
      ns / chunks, tokens, chunk.size());
  return tokens == static_cast<std::size_t>(chunks) ? 0 : 1;
}
