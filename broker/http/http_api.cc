#include "http/http_api.h"

#include "broker.h"
#include "http/handlers.h"

namespace wharf::http {
namespace {

http_limits limits_of(const broker_config& c) {
  http_limits l;
  l.max_body_bytes = c.http_max_body_bytes;
  l.timeout_ms = c.http_timeout_ms;
  l.max_connections = c.max_connections;
  return l;
}

/// `path` minus `prefix`, when it starts with it.
std::optional<std::string_view> after(std::string_view path, std::string_view prefix) {
  if (!path.starts_with(prefix)) return std::nullopt;
  return path.substr(prefix.size());
}

http_response method_not_allowed(std::string_view allowed) {
  auto r = error_response(405, wire::ErrorCode::invalid_argument, "use " + std::string(allowed));
  r.headers.emplace_back("Allow", allowed);
  return r;
}

}  // namespace

http_api::http_api(broker& b)
    : broker_(b),
      listen_address_(b.config().http_listen),
      server_(b.loop(), limits_of(b.config()),
              [this](const http_request& req, http_reply reply) { route(req, std::move(reply)); }) {
  for (const auto& c : b.config().ingest) {
    ingest_[c.name] = std::make_unique<ingest_endpoint>(c, b.config().ingest_tolerance_s);
  }
}

void http_api::route(const http_request& req, http_reply reply) {
  std::string_view path = req.path;
  bool get = req.method == "GET" || req.method == "HEAD";
  if (path == "/healthz") {
    return get ? handle_healthz(broker_, req, reply) : reply.send(method_not_allowed("GET, HEAD"));
  }
  if (path == "/metrics") {
    return get ? handle_metrics(broker_, *this, req, reply)
               : reply.send(method_not_allowed("GET, HEAD"));
  }
  if (auto rest = after(path, "/topics/"); rest && rest->ends_with("/records")) {
    if (req.method != "POST") return reply.send(method_not_allowed("POST"));
    auto topic = percent_decode(rest->substr(0, rest->size() - 8), false);
    if (!topic)
      return reply.send(
          error_response(wire::ErrorCode::invalid_name, "malformed %-escape in the topic name"));
    return handle_records(broker_, *topic, req, reply);
  }
  if (auto rest = after(path, "/ingest/")) {
    if (req.method != "POST") return reply.send(method_not_allowed("POST"));
    auto name = percent_decode(*rest, false);
    auto it = name ? ingest_.find(*name) : ingest_.end();
    if (it == ingest_.end()) {
      return reply.send(error_response(404, wire::ErrorCode::invalid_argument,
                                       "no ingest endpoint named " + std::string(*rest)));
    }
    return handle_ingest(broker_, *it->second, req, reply);
  }
  reply.send(error_response(
      404, wire::ErrorCode::invalid_argument,
      "no route for " + req.method + " " + std::string(path) +
          "; try POST /topics/{topic}/records, POST /ingest/{name}, GET /healthz, GET /metrics"));
}

}  // namespace wharf::http
