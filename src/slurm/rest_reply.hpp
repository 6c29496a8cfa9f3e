#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "aifc/slurm.hpp"

namespace aifc::detail {

/// One answered slurmrestd call, as the reply readers need it (for their messages too).
struct RestCall {
  std::string_view origin;   ///< http://host:port
  std::string_view method;   ///< GET, POST, DELETE
  std::string_view path;     ///< below /slurm/<api_ver>
  std::string_view api_ver;  ///< v0.0.38 ...
  int status = 0;
  std::string_view body;
};

/// The reply object of a call that succeeded. Throws aifc::Error(server_error) naming the call,
/// the HTTP status, slurmrestd's own errors and a hint; a reply nested deeper than 64 levels is
/// refused unparsed (the JSON parser recurses). Anything else in the body reads as `{}`.
nlohmann::json read_rest_reply(const RestCall& call);

/// GET /job/{id}: the job, or its array tasks combined, as one JobInfo. Throws
/// aifc::Error(server_error) for a reply of another shape or one that lists no job.
JobInfo read_rest_jobs(const std::string& job_id, const std::string& api_ver,
                       const nlohmann::json& reply);

/// POST /job/submit: the new job's id. Throws aifc::Error(server_error) when it is missing or
/// not a positive whole number.
std::string read_rest_job_id(const nlohmann::json& reply);

}  // namespace aifc::detail
