// POST /ingest/{name}: inbound webhooks signed per Standard Webhooks.
#include <charconv>

#include "broker.h"
#include "http/handlers.h"
#include "http/ingest_endpoint.h"
#include "log.h"
#include "webhooks/signature.h"

namespace wharf::http {
namespace {

int64_t now_s() {
  return static_cast<int64_t>(wire::now_us() / 1000000);
}

http_response published(uint64_t offset, bool duplicate) {
  http_response r;
  r.body = "{\"offset\":" + std::to_string(offset) + (duplicate ? ",\"duplicate\":true}\n" : "}\n");
  return r;
}

http_response failure(const ingest_endpoint::outcome& o) {
  http_response r;
  r.status = o.status;
  r.body = o.error_body;
  return r;
}

}  // namespace

// POST /ingest/{name}[?key=K]
//   headers: webhook-id, webhook-timestamp (Unix seconds), webhook-signature
//   ("v1,<base64 HMAC-SHA256>"; several space-separated), optional
//   Content-Type and Wharf-Key; body: the payload, signed as is.
// -> 200 {"offset":N} once the record is durable in the endpoint's topic
//    (created if missing), or 200 {"offset":N,"duplicate":true} for a
//    webhook-id already published within the window (see ingest_endpoint.h)
//  | 401 unauthorized (missing headers, bad signature, timestamp outside
//    ingest_tolerance_s) | 413 too_large | 503 storage_full, shutting_down
// The record carries headers content-type (when sent), webhook-id and
// wharf-ingest = the endpoint's name.
void handle_ingest(broker& b, ingest_endpoint& ep, const http_request& req, http_reply reply) {
  const auto& cfg = ep.config();
  std::string id(req.header("webhook-id").value_or(""));
  std::string_view ts_text = req.header("webhook-timestamp").value_or("");
  int64_t now = now_s();
  auto v = webhooks::verify(cfg.key, id, ts_text, req.header("webhook-signature").value_or(""),
                            req.body, now, ep.tolerance_s());
  if (v != webhooks::verify_result::ok) {
    ep.stats().unauthorized++;
    log_info("ingest %s: refused a message: %s", cfg.name.c_str(), webhooks::verify_result_name(v));
    return reply.send(
        error_response(wire::ErrorCode::unauthorized, webhooks::verify_result_name(v)));
  }
  int64_t ts = 0;
  std::from_chars(ts_text.data(), ts_text.data() + ts_text.size(), ts);  // verify() checked it

  auto seen = ep.check(id, now);
  if (seen.state == ingest_endpoint::id_state::published) {
    ep.stats().duplicates++;
    return reply.send(published(seen.offset, true));
  }
  if (seen.state == ingest_endpoint::id_state::in_flight) {
    // The same message on another connection: answer when the first lands.
    ep.stats().duplicates++;
    return ep.wait(id, [reply](const ingest_endpoint::outcome& o) {
      reply.send(o.ok ? published(o.offset, true) : failure(o));
    });
  }

  http_record r;
  r.key = request_key(req);
  r.payload = req.body;
  if (auto ct = req.header("content-type")) r.headers.emplace_back("content-type", *ct);
  r.headers.emplace_back("webhook-id", id);
  r.headers.emplace_back("wharf-ingest", cfg.name);
  ep.begin(id, ts);
  publish_record(b, cfg.topic, true, r,
                 [&ep, id, reply](std::optional<uint64_t> offset, http_response error) {
                   ingest_endpoint::outcome o;
                   o.ok = offset.has_value();
                   o.offset = offset.value_or(0);
                   o.status = error.status;
                   o.error_body = error.body;
                   (o.ok ? ep.stats().published : ep.stats().failed)++;
                   ep.finish(id, o, now_s());
                   reply.send(o.ok ? published(o.offset, false) : std::move(error));
                 });
}

}  // namespace wharf::http
