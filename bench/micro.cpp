// Pure CPU costs of aifc's own code on the hot paths, without sockets: per chunk (SSE parsing +
// chunk scan + record update) and per request (serializing its body, done before the run).
#include <aifc/record.hpp>
#include <aifc/vllm_client.hpp>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "stream/openai_stream.hpp"
#include "stream/sse.hpp"

namespace {

// VLLMClient::prepare as a run uses it (a template filled in), and the same body built as a JSON
// document (what a request with its own extra_body costs; a patch removing an absent key).
void prepare_cost() {
  aifc::ClientConfig config;
  config.model = "meta-llama/Llama-3.1-8B-Instruct";
  config.ignore_eos = true;
  aifc::VLLMClient client(config);
  aifc::RequestSpec spec{std::string(120, 'w'), 128, 32, false, nlohmann::json::object(), ""};
  aifc::RequestSpec patched = spec;
  patched.extra_body = {{"absent_key", nullptr}};
  const int n = 200'000;
  for (const auto* which : {&spec, &patched}) {
    std::size_t bytes = 0;
    const auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < n; ++i) bytes += client.prepare(*which).body.size();
    const double ns =
        std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - t0).count();
    std::printf("request body per request (%s): %.0f ns  (%zu-byte bodies)\n",
                which == &spec ? "template, as a run prepares" : "JSON document, own extra_body",
                ns / n, bytes / n);
  }
}

}  // namespace

int main() {
  prepare_cost();
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
