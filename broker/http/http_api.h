// http_api: wharfd's HTTP face. Owns the http_server and the ingest
// endpoints, and routes each request to its handler (http/*_handler.cc):
//
//   POST /topics/{topic}/records   publish one record (records_handler.cc)
//   POST /ingest/{name}            inbound Standard Webhooks (ingest_handler.cc)
//   GET  /healthz                  liveness (health_handler.cc)
//   GET  /metrics                  Prometheus text (metrics_handler.cc)
//
// Lifecycle: created and listening in broker::run() when http_listen is set;
// shut down with the broker (answers owed are still written); destroyed
// after the writer, so no completion outlives it. Loop thread only.
#pragma once

#include <map>
#include <memory>
#include <string>

#include "http/http_server.h"
#include "http/ingest_endpoint.h"

namespace wharf {
class broker;
}

namespace wharf::http {

class http_api {
 public:
  explicit http_api(broker& b);

  /// Listens on the configured http_listen. False (logged) on failure.
  bool listen() { return server_.listen(listen_address_); }
  http_server& server() { return server_; }
  const http_server& server() const { return server_; }
  /// Ingest endpoints by name.
  const std::map<std::string, std::unique_ptr<ingest_endpoint>, std::less<>>& ingest() const {
    return ingest_;
  }

 private:
  void route(const http_request& req, http_reply reply);

  broker& broker_;
  std::string listen_address_;
  std::map<std::string, std::unique_ptr<ingest_endpoint>, std::less<>> ingest_;
  http_server server_;
};

}  // namespace wharf::http
