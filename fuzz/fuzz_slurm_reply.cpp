// libFuzzer harness: what aifc reads from slurmrestd (any status and body, a job query's reply,
// a submit's job id). The first byte chooses the API version and the status. Checked: whatever
// slurmrestd sends is a JobInfo, an id or an aifc::Error, never another exception or a crash.
#include <cstddef>
#include <cstdint>
#include <string>

#include "aifc/error.hpp"
#include "fuzz_check.hpp"
#include "slurm/rest_reply.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  static const char* const kVersions[] = {"v0.0.38", "v0.0.39", "v0.0.40", "v0.0.41"};
  static const int kStatuses[] = {200, 200, 200, 401, 404, 500};
  const char* version = kVersions[data[0] % 4];
  const int status = kStatuses[(data[0] / 4) % 6];
  const std::string_view body(reinterpret_cast<const char*>(data) + 1, size - 1);
  try {
    const auto reply = aifc::detail::read_rest_reply(
        {"http://127.0.0.1:6820", "GET", "/job/7", version, status, body});
    AIFC_FUZZ_CHECK(reply.is_object());
    try {
      const auto info = aifc::detail::read_rest_jobs("7", version, reply);
      AIFC_FUZZ_CHECK(info.job_id == "7");
    } catch (const aifc::Error&) {
    }
    const auto id = aifc::detail::read_rest_job_id(reply);
    AIFC_FUZZ_CHECK(!id.empty() && id.find_first_not_of("0123456789") == std::string::npos);
  } catch (const aifc::Error&) {
  }
  return 0;
}
