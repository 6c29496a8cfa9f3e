// Built against an installed aifc: runs one request against an in-process simulator.
#include <aifc/aifc.hpp>
#include <iostream>

int main() {
  aifc::SimulatorConfig sim_config;
  sim_config.port = 0;
  sim_config.threads = 4;
  aifc::Simulator sim(sim_config);
  sim.start();
  aifc::ClientConfig client_config;
  client_config.base_url = sim.base_url();
  aifc::VLLMClient client(client_config);
  const auto record = client.send(aifc::RequestSpec{"hello there", 4, 2, false, {}, ""});
  std::cout << "aifc " << aifc::version() << ": " << record.output_tokens << " tokens, "
            << aifc::to_string(record.error) << "\n";
  // A whole benchmark from named options, its typed summary and its table.
  aifc::Benchmark benchmark(aifc::benchmark_spec_from_options({{"num_prompts", 10},
                                                               {"random_input_len", 8},
                                                               {"random_output_len", 4},
                                                               {"sim_ttft_ms", 1},
                                                               {"sim_itl_ms", 1},
                                                               {"sim_threads", 4}}));
  const aifc::BenchmarkResult result = benchmark.run();
  std::cout << benchmark.summary_table(result);
  return record.ok() && record.output_tokens == 4 && result.summary.completed == 10 ? 0 : 1;
}
