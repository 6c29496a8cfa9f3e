#include "service/api_routes.hpp"

#include <fmt/format.h>

#include "aifc/options.hpp"
#include "aifc/service.hpp"
#include "aifc/version.hpp"
#include "util/html.hpp"

namespace aifc::service {
namespace {

nlohmann::json object_schema(nlohmann::json properties, std::vector<std::string> required = {}) {
  nlohmann::json s = {{"type", "object"}, {"properties", std::move(properties)}};
  if (!required.empty()) s["required"] = required;
  return s;
}

nlohmann::json create_schema() {
  auto integer = [](const char* d) {
    return nlohmann::json{{"type", "integer"}, {"description", d}};
  };
  auto text = [](const char* d) { return nlohmann::json{{"type", "string"}, {"description", d}}; };
  auto s = object_schema(
      {{"num_clients", integer("agents, one Slurm task each (required)")},
       {"time_limit", integer("the job's time limit in minutes (default 10)")},
       {"partition", text("Slurm partition")},
       {"account", text("Slurm account")},
       {"qos", text("Slurm QOS")},
       {"nodes", integer("nodes for the job (0: Slurm decides)")},
       {"ntasks_per_node", integer("tasks per node")},
       {"cpus_per_task", integer("CPUs per task")},
       {"memory", text("memory per node, e.g. 4G")},
       {"job_name", text("the job's name (default aifc-<id>)")},
       {"spec", {{"type", "object"}, {"description", "a whole BenchmarkSpec to start from"}}}},
      {"num_clients"});
  // The workload: the benchmark's named options (the flags of `aifc bench` in snake_case).
  for (const auto& option : benchmark_options())
    if (!refused_group_option(option.name))
      s["properties"][option.name] = option_schema(option.kind, option.help);
  s["properties"]["base_url"]["description"] = "the server to measure (default: the service's)";
  s["additionalProperties"] = false;
  return s;
}

}  // namespace

std::optional<std::string> refused_group_option(const std::string& name) {
  if (name == "sim" || name.rfind("sim_", 0) == 0)
    return "a distributed run measures a real server, not the built-in simulator";
  if (name == "rank" || name == "nranks") return "the service shards the run itself";
  if (name == "api_key")
    return "the server's key does not travel through the API (the agents read OPENAI_API_KEY "
           "from their job's environment)";
  if (name == "probe_request_rate")
    return "every agent would send its own probes; run one aifc bench with "
           "--probe-request-rate beside the group instead";
  if (name == "profile")
    return "every agent would switch the server's profiler; POST /start_profile and "
           "/stop_profile to the server around the group's run instead";
  return std::nullopt;
}

const std::vector<Route>& routes() {
  static const std::vector<Route> kRoutes = [] {
    const std::string base = "curl -H \"Authorization: Bearer $TOKEN\" http://127.0.0.1:8001";
    std::vector<Route> r;
    r.push_back({"GET",
                 "/health",
                 "health",
                 Access::open,
                 "Liveness",
                 "Answers 200 while the service runs.",
                 nullptr,
                 "application/json",
                 {},
                 "curl http://127.0.0.1:8001/health"});
    r.push_back({"GET",
                 "/openapi.json",
                 "openapi",
                 Access::open,
                 "This API as OpenAPI 3",
                 "The document this page is made from.",
                 nullptr,
                 "application/json",
                 {},
                 "curl http://127.0.0.1:8001/openapi.json"});
    r.push_back({"GET",
                 "/docs",
                 "docs",
                 Access::open,
                 "This page",
                 "A readable description of every route; needs nothing from the internet.",
                 nullptr,
                 "text/html",
                 {},
                 "open http://127.0.0.1:8001/docs"});
    r.push_back({"GET",
                 "/metrics",
                 "metrics",
                 Access::user,
                 "Prometheus metrics",
                 "Groups by state, agents registered, requests and tokens so far (text format "
                 "0.0.4).",
                 nullptr,
                 "text/plain",
                 {401},
                 base + "/metrics"});
    r.push_back({"GET",
                 "/api/v1/client-groups",
                 "list",
                 Access::user,
                 "List client groups",
                 "Every group with its state and Slurm job id.",
                 nullptr,
                 "application/json",
                 {401},
                 base + "/api/v1/client-groups"});
    r.push_back(
        {"POST",
         "/api/v1/client-group/{id}",
         "create",
         Access::user,
         "Create a client group",
         "Creates the group and submits its Slurm job of `num_clients` agents. The body names "
         "the Slurm fields and the workload like `aifc bench`'s flags in snake_case. Answers "
         "201 with the group; when Slurm refuses the job the group is `failed` with Slurm's "
         "reason.",
         create_schema(),
         "application/json",
         {400, 401, 409, 413},
         base + "/api/v1/client-group/123 -d '{\"num_clients\": 8, \"time_limit\": 10, "
                "\"num_prompts\": 20000, \"request_rate\": 400}'"});
    r.push_back({"GET",
                 "/api/v1/client-group/{id}",
                 "get",
                 Access::user,
                 "A client group",
                 "State, reason, Slurm job, agents (rank, node, clock offset, state, progress) "
                 "and every state transition with its time.",
                 nullptr,
                 "application/json",
                 {401, 404},
                 base + "/api/v1/client-group/123"});
    r.push_back({"DELETE",
                 "/api/v1/client-group/{id}",
                 "delete",
                 Access::user,
                 "Cancel a client group",
                 "Cancels its Slurm job; the agents stop and exit. A finished, failed or "
                 "cancelled group answers 409.",
                 nullptr,
                 "application/json",
                 {401, 404, 409},
                 base + "/api/v1/client-group/123 -X DELETE"});
    r.push_back({"POST",
                 "/api/v1/client-group/{id}/run",
                 "run",
                 Access::user,
                 "Start the run",
                 "Picks a start instant `start_delay_ms` ahead (default 2000) at which every "
                 "agent starts its shard of the one schedule. Only a `ready` group starts; a "
                 "second call answers 409.",
                 object_schema({{"start_delay_ms",
                                 {{"type", "integer"}, {"minimum", 100}, {"maximum", 600000}}}}),
                 "application/json",
                 {400, 401, 404, 409},
                 base + "/api/v1/client-group/123/run -X POST"});
    r.push_back({"GET",
                 "/api/v1/client-group/{id}/results",
                 "results",
                 Access::user,
                 "The merged result",
                 "`vllm bench serve`'s keys over all agents, and `distributed`: ranks, missing "
                 "ranks with the reason, exactness, start spread. `?detail=agents` adds the "
                 "per-rank and per-node breakdown, `?detail=records` every request's record "
                 "(as `--save-detailed` writes them), `?detail=all` both. 409 until the run "
                 "has finished.",
                 nullptr,
                 "application/json",
                 {401, 404, 409},
                 base + "/api/v1/client-group/123/results?detail=agents"});
    r.push_back({"GET",
                 "/api/v1/client-group/{id}/events",
                 "events",
                 Access::user,
                 "Events as they happen",
                 "Server-sent events: `state`, `job`, `agent`, `progress` (once a second while "
                 "running) and `result`; the stream ends when the group does.",
                 nullptr,
                 "text/event-stream",
                 {401, 404},
                 base + "/api/v1/client-group/123/events -N"});
    r.push_back({"GET",
                 "/api/v1/client-group/{id}/agents/{rank}/clock",
                 "clock",
                 Access::agent,
                 "The service's clock (agents)",
                 "The service's Unix time in ns, for the agents' NTP-style offset estimate.",
                 nullptr,
                 "application/json",
                 {401, 404},
                 ""});
    r.push_back({"POST",
                 "/api/v1/client-group/{id}/agents/{rank}/register",
                 "register",
                 Access::agent,
                 "Register an agent (agents)",
                 "An agent announces itself with its node and clock offset and receives its "
                 "shard of the benchmark spec.",
                 object_schema({{"node", {{"type", "string"}}},
                                {"hostname", {{"type", "string"}}},
                                {"pid", {{"type", "integer"}}},
                                {"clock_offset_ns", {{"type", "integer"}}},
                                {"clock_uncertainty_ns", {{"type", "integer"}}}}),
                 "application/json",
                 {400, 401, 404, 409},
                 ""});
    r.push_back({"POST",
                 "/api/v1/client-group/{id}/agents/{rank}/heartbeat",
                 "heartbeat",
                 Access::agent,
                 "Agent heartbeat (agents)",
                 "The agent's state (preparing, ready, running, finished, failed) and progress; "
                 "the answer carries the group's state, the start instant once running, and "
                 "whether to stop. A ready agent may send a refined clock offset (kept when "
                 "its uncertainty is smaller than the one it registered with).",
                 object_schema({{"state", {{"type", "string"}}},
                                {"error", {{"type", "string"}}},
                                {"progress", {{"type", "object"}}},
                                {"clock_offset_ns", {{"type", "integer"}}},
                                {"clock_uncertainty_ns", {{"type", "integer"}}}}),
                 "application/json",
                 {400, 401, 404, 409},
                 ""});
    r.push_back({"POST",
                 "/api/v1/client-group/{id}/agents/{rank}/records",
                 "records",
                 Access::agent,
                 "A batch of records (agents)",
                 "Per-request records in numbered batches; sending a batch again replaces it.",
                 object_schema({{"seq", {{"type", "integer"}}}, {"records", {{"type", "array"}}}},
                               {"seq", "records"}),
                 "application/json",
                 {400, 401, 404, 413},
                 ""});
    r.push_back(
        {"POST",
         "/api/v1/client-group/{id}/agents/{rank}/partial",
         "partial",
         Access::agent,
         "What an agent measured so far (agents)",
         "Sent while the run goes on: the records since the last message and the "
         "aggregate so far; a rank that dies is counted from these.",
         object_schema({{"seq", {{"type", "integer"}}},
                        {"records", {{"type", "array"}}},
                        {"aggregate", {{"type", "object"}}},
                        {"anchor", {{"type", "object"}}},
                        {"start_mono_ns", {{"type", "integer"}}},
                        {"until_mono_ns", {{"type", "integer"}}},
                        {"first_send_late_ns", {{"type", "integer"}}}},
                       {"seq", "records", "aggregate", "anchor", "start_mono_ns", "until_mono_ns"}),
         "application/json",
         {400, 401, 404, 413},
         ""});
    r.push_back({"POST",
                 "/api/v1/client-group/{id}/agents/{rank}/result",
                 "result",
                 Access::agent,
                 "An agent's final result (agents)",
                 "The agent's result document and how many record batches it sent; 409 when "
                 "batches are missing.",
                 object_schema({{"document", {{"type", "object"}}},
                                {"record_batches", {{"type", "integer"}}}},
                               {"document", "record_batches"}),
                 "application/json",
                 {400, 401, 404, 409, 413},
                 ""});
    return r;
  }();
  return kRoutes;
}

std::string docs_page(const nlohmann::json& openapi) {
  auto escape = [](const std::string& s) { return detail::html_escaped(s); };
  // `name` in the descriptions becomes <code>name</code>.
  auto prose = [&escape](const std::string& s) {
    std::string out;
    bool open = false;
    for (char c : escape(s)) {
      if (c == '`') {
        out += open ? "</code>" : "<code>";
        open = !open;
      } else {
        out += c;
      }
    }
    if (open) out += "</code>";
    return out;
  };
  std::string html = fmt::format(
      "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
      "<title>aifc client service API</title><style>"
      "body{{font-family:sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;"
      "line-height:1.5}}code,pre{{background:#f4f4f4;padding:.1rem .3rem}}"
      "pre{{padding:.5rem;overflow-x:auto}}.m{{font-weight:bold;display:inline-block;"
      "min-width:4.5rem}}section{{border-top:1px solid #ddd;padding:.5rem 0}}"
      "</style></head><body>\n<h1>aifc client service API <small>{}</small></h1>\n"
      "<p>Every route except <code>/health</code>, <code>/openapi.json</code> and "
      "<code>/docs</code> needs <code>Authorization: Bearer TOKEN</code>. The machine-readable "
      "form is <a href=\"/openapi.json\">/openapi.json</a>.</p>\n",
      escape(openapi["info"]["version"].get<std::string>()));
  for (const auto& route : routes()) {
    const auto id = route.method + " " + route.path;
    html += fmt::format(
        "<section id=\"{}\"><h2><span class=\"m\">{}</span> <code>{}</code></h2>"
        "<p><b>{}</b>. {}</p>",
        escape(route.handler), route.method, escape(route.path), escape(route.summary),
        prose(route.description));
    if (!route.request_schema.is_null() && route.request_schema.contains("properties")) {
      html += "<table><tr><th>field</th><th>meaning</th></tr>";
      for (const auto& [name, prop] : route.request_schema["properties"].items())
        html += fmt::format("<tr><td><code>{}</code></td><td>{}</td></tr>", escape(name),
                            prose(prop.value("description", prop.value("type", ""))));
      html += "</table>";
    }
    if (!route.example.empty()) html += fmt::format("<pre>{}</pre>", escape(route.example));
    html += "</section>\n";
    (void)id;
  }
  html += "</body></html>\n";
  return html;
}

}  // namespace aifc::service

namespace aifc {

nlohmann::json Service::openapi() {
  nlohmann::json paths = nlohmann::json::object();
  for (const auto& route : service::routes()) {
    nlohmann::json op = {{"summary", route.summary},
                         {"description", route.description},
                         {"operationId", route.handler}};
    nlohmann::json params = nlohmann::json::array();
    for (const char* name : {"id", "rank"})
      if (route.path.find(std::string("{") + name + "}") != std::string::npos)
        params.push_back(
            {{"name", name},
             {"in", "path"},
             {"required", true},
             {"schema", {{"type", std::string(name) == "rank" ? "integer" : "string"}}}});
    if (route.handler == "results")
      params.push_back({{"name", "detail"},
                        {"in", "query"},
                        {"required", false},
                        {"schema", {{"type", "string"}, {"enum", {"agents", "records", "all"}}}}});
    if (!params.empty()) op["parameters"] = params;
    if (!route.request_schema.is_null())
      op["requestBody"] = {{"required", route.handler != "run"},
                           {"content", {{"application/json", {{"schema", route.request_schema}}}}}};
    nlohmann::json responses = {
        {route.handler == "create" ? "201" : "200",
         {{"description", "OK"}, {"content", {{route.response_type, nlohmann::json::object()}}}}}};
    for (int status : route.errors)
      responses[std::to_string(status)] = {
          {"description", status == 401   ? "missing or wrong token"
                          : status == 404 ? "no such group or rank"
                          : status == 409 ? "not in a state that allows it"
                          : status == 413 ? "body too large"
                                          : "invalid input, the field named in `error`"},
          {"content",
           {{"application/json", {{"schema", {{"$ref", "#/components/schemas/Error"}}}}}}}};
    op["responses"] = std::move(responses);
    if (route.access == service::Access::open) op["security"] = nlohmann::json::array();
    std::string method = route.method;
    for (char& c : method) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    paths[route.path][method] = std::move(op);
  }
  return {{"openapi", "3.0.3"},
          {"info",
           {{"title", "aifc client service"},
            {"version", std::string(version())},
            {"description",
             "Creates client groups, dispatches them as Slurm jobs of agents, starts them "
             "together and merges their results."}}},
          {"servers", {{{"url", "http://127.0.0.1:8001"}}}},
          {"security", {{{"bearer", nlohmann::json::array()}}}},
          {"components",
           {{"securitySchemes", {{"bearer", {{"type", "http"}, {"scheme", "bearer"}}}}},
            {"schemas",
             {{"Error",
               {{"type", "object"},
                {"properties", {{"error", {{"type", "string"}}}}},
                {"required", {"error"}}}}}}}},
          {"paths", std::move(paths)}};
}

}  // namespace aifc
