// HTTP request handlers, one file each, routed by http_api.cc. Each answers
// exactly once through its http_reply, at once or from a writer completion.
// Loop thread.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "http/http_server.h"

namespace wharf {
class broker;
}

namespace wharf::http {

class http_api;
class ingest_endpoint;

void handle_records(broker& b, std::string_view topic, const http_request& req, http_reply reply);
void handle_ingest(broker& b, ingest_endpoint& endpoint, const http_request& req, http_reply reply);
void handle_healthz(broker& b, const http_request& req, http_reply reply);
void handle_metrics(broker& b, const http_api& api, const http_request& req, http_reply reply);

// ---- shared by the publishing handlers (http_publish.cc) ----

/// One record as an HTTP request describes it.
struct http_record {
  std::optional<std::string> key;                            // absent = no key
  std::vector<std::pair<std::string, std::string>> headers;  // record headers, name -> value
  std::string_view payload;  // must stay valid until publish_record returns
};

/// The record key a request asks for: ?key=, else the Wharf-Key header.
std::optional<std::string> request_key(const http_request& req);

/// Appends `r` to `topic` as a one-record batch and calls `done` once: with
/// the offset after the commit (durable per the fsync policy), or with an
/// error response (unknown topic unless `create_missing`, too large,
/// storage full, shutting down). `done` may run before this returns.
void publish_record(broker& b, const std::string& topic, bool create_missing, const http_record& r,
                    std::function<void(std::optional<uint64_t> offset, http_response error)> done);

}  // namespace wharf::http
