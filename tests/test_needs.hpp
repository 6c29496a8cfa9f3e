#pragma once
// What a test case needs from outside the process, as doctest decorators. A case whose need is
// missing is skipped and reported as skipped (CTest too: each need is a CTest test of its own),
// unless the test command requires it (AIFC_REQUIRE_CLUSTER, AIFC_REQUIRE_APPTAINER): then the
// case runs and fails with a message saying what is missing.
#include <doctest/doctest.h>

#include <cstdlib>
#include <string_view>

namespace aifc_test {

inline bool set(const char* name) { return std::getenv(name) != nullptr; }

inline bool skip_cluster() { return !set("AIFC_CLUSTER_STATE") && !set("AIFC_REQUIRE_CLUSTER"); }

inline bool skip_memory_limits() {
  // Enforced only where the host has a cgroup-v1 memory controller (tests/cluster/start.sh).
  const char* limits = std::getenv("AIFC_CLUSTER_MEMORY_LIMITS");
  return skip_cluster() ||
         (set("AIFC_CLUSTER_STATE") && (!limits || std::string_view(limits) != "1"));
}

inline bool skip_apptainer() {
  return skip_cluster() || (!set("AIFC_TEST_APPTAINER_IMAGE") && !set("AIFC_REQUIRE_APPTAINER"));
}

}  // namespace aifc_test

#define AIFC_NEEDS_CLUSTER doctest::test_suite("cluster") * doctest::skip(aifc_test::skip_cluster())
#define AIFC_NEEDS_MEMORY_LIMITS \
  doctest::test_suite("cluster_memory") * doctest::skip(aifc_test::skip_memory_limits())
#define AIFC_NEEDS_APPTAINER \
  doctest::test_suite("container") * doctest::skip(aifc_test::skip_apptainer())
