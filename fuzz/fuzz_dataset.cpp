// libFuzzer harness: the dataset loaders (ShareGPT JSON, JSON lines) on a file with the input's
// bytes. The first byte chooses the format and the number of prompts. Checked: a bad file is
// refused with aifc::Error, never another exception, and every prompt has sane lengths.
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
  config.dataset_name = data[0] % 2 ? aifc::DatasetKind::jsonl : aifc::DatasetKind::sharegpt;
  config.dataset_path = "/proc/self/fd/" + std::to_string(fd);
  config.num_prompts = 1 + (data[0] >> 1) % 16;
  try {
    config.validate();
    for (const auto& p : aifc::load_dataset(config)) {
      AIFC_FUZZ_CHECK(p.input_tokens >= 0);
      AIFC_FUZZ_CHECK(p.output_tokens >= 0);
    }
  } catch (const aifc::Error&) {
  }
  return 0;
}
