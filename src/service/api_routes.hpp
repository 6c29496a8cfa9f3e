#pragma once
// The service's routes, once: the server registers them from this table, and /openapi.json and
// the /docs page are made from it, so the three cannot drift apart.

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace aifc::service {

enum class Access {
  open,   ///< no token (health, the API description)
  user,   ///< the service's API token
  agent,  ///< the group's agent token, or the API token
};

struct Route {
  std::string method;   ///< GET, POST, DELETE
  std::string path;     ///< OpenAPI style: /api/v1/client-group/{id}
  std::string handler;  ///< the name the server binds to
  Access access;
  std::string summary;
  std::string description;
  nlohmann::json request_schema;  ///< null: no body
  std::string response_type = "application/json";
  std::vector<int> errors;  ///< the error statuses it may answer with
  std::string example;      ///< a curl line for the docs
};

const std::vector<Route>& routes();

/// Why a group's body may not set this benchmark option (the simulator, the shard, the server's
/// key), or nothing when it may.
std::optional<std::string> refused_group_option(const std::string& name);

/// A readable HTML page of the API (no scripts, styles or fonts from elsewhere).
std::string docs_page(const nlohmann::json& openapi);

}  // namespace aifc::service
