// Does a slow observer move send lateness? Runs the same paced workload three times on each
// transport against the in-process simulator: without observers, with an observer that sleeps
// 1.5 s in every on_progress and 2 ms in every on_request_finished, and prints p50/p99/max send
// lateness and the events the slow observer missed. The controller never waits for observers,
// so the figures should not move beyond run-to-run noise.
#include <aifc/client_group.hpp>
#include <aifc/simulator.hpp>
#include <chrono>
#include <cstdio>
#include <thread>

namespace {

struct Sleeper : aifc::Observer {
  void on_request_finished(const aifc::RequestRecord&) override {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  void on_progress(const aifc::ProgressSnapshot&) override {
    std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  }
};

}  // namespace

int main() {
  aifc::SimulatorConfig sc;
  sc.port = 0;
  sc.ttft = aifc::DelaySpec::parse("20");
  sc.itl = aifc::DelaySpec::parse("5");
  aifc::Simulator sim(sc);
  sim.start();
  std::printf("%-11s %-16s %9s %9s %9s %8s\n", "transport", "observer", "p50 ms", "p99 ms",
              "max ms", "dropped");
  for (const auto transport : {aifc::Transport::threads, aifc::Transport::event_loop}) {
    for (const bool slow : {false, true}) {
      aifc::GroupConfig g;
      g.transport = transport;
      g.client.base_url = sim.base_url();
      g.load.num_requests = 400;
      g.load.request_rate = 100;
      g.load.seed = 1;
      g.progress_interval = std::chrono::milliseconds(100);
      g.summary.metric_percentiles = {50, 99};
      std::vector<aifc::Prompt> prompts(50, aifc::Prompt{"a b c d", 4, false, 8});
      aifc::ClientGroup group(g, prompts);
      if (slow) group.add_observer(std::make_shared<Sleeper>());
      const auto r = group.run();
      std::printf("%-11s %-16s %9.3f %9.3f %9.3f %8llu\n",
                  transport == aifc::Transport::threads ? "threads" : "event_loop",
                  slow ? "sleeps 1.5 s" : "none",
                  r.summary.metric("lateness")->percentiles.at(0).second,
                  r.summary.metric("lateness")->percentiles.at(1).second, r.summary.max_lateness_ms,
                  static_cast<unsigned long long>(r.observer_events_dropped));
    }
  }
  return 0;
}
