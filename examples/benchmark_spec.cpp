// A benchmark from C++: one typed spec (the same one `aifc bench`, Python and the service build),
// run against the built-in simulator, then the familiar summary table and the spec as JSON.
//
//   ./build/examples/aifc_example_benchmark            # or pass a server URL to measure it
#include <aifc/aifc.hpp>
#include <iostream>

int main(int argc, char** argv) {
  aifc::BenchmarkSpec spec;
  if (argc > 1) {
    spec.client.base_url = argv[1];
  } else {
    aifc::SimulatorConfig sim;
    sim.port = 0;
    sim.ttft = aifc::DelaySpec::parse("uniform:20:40");
    sim.itl = aifc::DelaySpec::parse("5");
    spec.simulator = sim;
  }
  spec.dataset.num_prompts = 100;
  spec.dataset.random_input_len = 128;
  spec.dataset.random_output_len = 32;
  spec.load.num_requests = 100;
  spec.load.request_rate = 50;
  spec.summary.percentile_metrics = {"ttft", "itl", "e2el"};
  spec.summary.metric_percentiles = {50, 99};
  try {
    aifc::Benchmark benchmark(spec);
    for (const auto& warning : benchmark.warnings()) std::cerr << "warning: " << warning << "\n";
    const aifc::BenchmarkResult result = benchmark.run();
    std::cout << benchmark.summary_table(result);
    std::cout << "spec: " << nlohmann::json(benchmark.spec()).dump() << "\n";
    return result.aggregate.failed == 0 ? 0 : 1;
  } catch (const aifc::Error& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
}
