// libFuzzer harness: the dataset loaders of files (ShareGPT JSON, JSON lines, BurstGPT CSV, a
// timed trace) on a file with the input's bytes. The first byte chooses the format and the
// number of prompts. Checked: a bad file is refused with aifc::Error, never another exception,
// and every prompt has sane lengths (a trace's prompts also their times).
#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "aifc/dataset.hpp"
#include "aifc/error.hpp"
#include "fuzz_check.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  // An in-memory file, named by its /proc path as a user's file would be.
  static const int fd = memfd_create("aifc-fuzz-dataset", 0);
  AIFC_FUZZ_CHECK(fd >= 0);
  AIFC_FUZZ_CHECK(ftruncate(fd, 0) == 0);
  AIFC_FUZZ_CHECK(pwrite(fd, data + 1, size - 1, 0) == static_cast<ssize_t>(size - 1));
  aifc::DatasetConfig config;
  constexpr aifc::DatasetKind kinds[] = {aifc::DatasetKind::sharegpt, aifc::DatasetKind::jsonl,
                                         aifc::DatasetKind::burstgpt,
                                         aifc::DatasetKind::timed_trace};
  config.dataset_name = kinds[data[0] % 4];
  config.dataset_path = "/proc/self/fd/" + std::to_string(fd);
  // Few prompts: a trace line may ask for 10 million tokens, which are then built.
  config.num_prompts = 1 + (data[0] >> 2) % 4;
  try {
    config.validate();
    for (const auto& p : aifc::load_dataset(config)) {
      AIFC_FUZZ_CHECK(p.input_tokens >= 0);
      AIFC_FUZZ_CHECK(p.output_tokens >= 0);
      AIFC_FUZZ_CHECK(config.dataset_name != aifc::DatasetKind::timed_trace || p.arrival_s >= 0);
    }
  } catch (const aifc::Error&) {
  }
  return 0;
}
