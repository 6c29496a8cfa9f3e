#pragma once

#include <cstdio>
#include <cstdlib>

// A property a harness checks: a failure aborts, which libFuzzer (and the replay driver) report
// with the input that caused it.
#define AIFC_FUZZ_CHECK(condition)                                                       \
  do {                                                                                   \
    if (!(condition)) {                                                                  \
      std::fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #condition); \
      std::abort();                                                                      \
    }                                                                                    \
  } while (0)
