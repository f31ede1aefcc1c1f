// POST /topics/{topic}/records: publish the body as one record.
#include "broker.h"
#include "http/handlers.h"

namespace wharf::http {

// POST /topics/{topic}/records[?key=K]
//   headers: Wharf-Key: K (when no ?key=), Wharf-Header-NAME: VALUE (record
//   header "name", lower case; repeatable); body: the payload.
// -> 200 {"offset":N} once the record is durable
//  | 400 invalid_name | 404 unknown_topic (unless auto_create_topics)
//  | 413 too_large | 503 storage_full, shutting_down | 500 storage_error
void handle_records(broker& b, std::string_view topic, const http_request& req, http_reply reply) {
  constexpr std::string_view kHeaderPrefix = "wharf-header-";
  http_record r;
  r.key = request_key(req);
  r.payload = req.body;
  for (const auto& [name, value] : req.headers) {
    if (name.size() > kHeaderPrefix.size() && name.starts_with(kHeaderPrefix)) {
      r.headers.emplace_back(name.substr(kHeaderPrefix.size()), value);
    }
  }
  publish_record(b, std::string(topic), b.config().auto_create_topics, r,
                 [reply](std::optional<uint64_t> offset, http_response error) {
                   if (!offset) return reply.send(std::move(error));
                   http_response ok;
                   ok.body = "{\"offset\":" + std::to_string(*offset) + "}\n";
                   reply.send(std::move(ok));
                 });
}

}  // namespace wharf::http
