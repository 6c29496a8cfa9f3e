// Runs a libFuzzer harness over saved inputs without libFuzzer (any compiler): every file named,
// and every file in every directory named. This is how the corpus and the inputs fuzzing once
// found run as regression tests in the ordinary build.
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);

namespace {

void run_file(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  const std::vector<char> bytes((std::istreambuf_iterator<char>(in)),
                                std::istreambuf_iterator<char>());
  LLVMFuzzerTestOneInput(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size());
}

}  // namespace

int main(int argc, char** argv) {
  std::size_t inputs = 0;
  for (int i = 1; i < argc; ++i) {
    const std::filesystem::path path(argv[i]);
    if (std::filesystem::is_directory(path)) {
      for (const auto& entry : std::filesystem::directory_iterator(path))
        // Dot files (.keep holds an empty directory in git) are not inputs.
        if (entry.is_regular_file() && entry.path().filename().string().front() != '.')
          run_file(entry.path()), ++inputs;
    } else if (std::filesystem::exists(path)) {
      run_file(path), ++inputs;
    } else {
      std::fprintf(stderr, "%s: no such file or directory\n", argv[i]);
      return 2;
    }
  }
  std::printf("%zu inputs ran without a failed check\n", inputs);
  return inputs > 0 ? 0 : 1;
}
