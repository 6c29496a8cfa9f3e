// libFuzzer harness: the JSON documents aifc reads from others (a service's group body, the spec
// an agent receives, named options from Python or the service, a result file for `aifc merge`).
// The first byte chooses the reader. Checked: bad input is refused with aifc::Error, never
// another exception, and a spec that passes validate() survives a JSON round trip.
#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include "aifc/benchmark.hpp"
#include "aifc/error.hpp"
#include "aifc/merge.hpp"
#include "aifc/options.hpp"
#include "aifc/service.hpp"
#include "fuzz_check.hpp"

namespace {

void read(std::uint8_t which, const nlohmann::json& j) {
  switch (which % 4) {
    case 0: {
      auto spec = j.get<aifc::BenchmarkSpec>();
      spec.validate();
      const nlohmann::json again = spec;
      AIFC_FUZZ_CHECK(again.get<aifc::BenchmarkSpec>().label == spec.label);
      break;
    }
    case 1: {
      auto request = j.get<aifc::ClientGroupRequest>();
      request.validate();
      break;
    }
    case 2:
      aifc::benchmark_spec_from_options(j).validate();
      break;
    case 3:
      aifc::read_result_document(j);
      break;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  const std::string_view text(reinterpret_cast<const char*>(data) + 1, size - 1);
  const auto j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded()) return 0;
  try {
    read(data[0], j);
  } catch (const aifc::Error&) {
    // refused with a message: what is expected of bad input
  }
  return 0;
}
