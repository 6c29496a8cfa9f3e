// The `aifc` command line, so that `python -m aifc bench ...` needs no separate C++ build.
#include "cli.hpp"

#include <pybind11/stl.h>

#include "convert.hpp"

namespace aifc::python {

void init_cli(py::module_& m) {
  m.def(
      "cli_main",
      [](std::vector<std::string> args) {
        std::vector<char*> argv;
        for (auto& a : args) argv.push_back(a.data());
        argv.push_back(nullptr);
        // The CLI blocks SIGINT in this thread and waits for it on one of its own, so Ctrl-C
        // reaches it (and writes the partial result) while Python waits.
        py::gil_scoped_release release;
        return cli::main(static_cast<int>(args.size()), argv.data());
      },
      py::arg("argv"),
      "Runs the aifc program with argv (argv[0] is the program name); returns its exit code.");
}

}  // namespace aifc::python
