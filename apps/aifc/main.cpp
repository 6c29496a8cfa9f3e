// The `aifc` program: `aifc bench` (vllm bench serve-style) and `aifc sim` (the simulator).
#include "cli.hpp"

int main(int argc, char** argv) { return aifc::cli::main(argc, argv); }
