// GET /healthz: is the broker up and serving.
#include "broker.h"
#include "http/handlers.h"

namespace wharf::http {

// GET /healthz -> 200 {"status":"ok"} | 503 shutting_down
void handle_healthz(broker& b, const http_request&, http_reply reply) {
  if (b.shutting_down()) {
    return reply.send(
        error_response(wire::ErrorCode::shutting_down, "the broker is shutting down"));
  }
  http_response r;
  r.body = "{\"status\":\"ok\"}\n";
  reply.send(std::move(r));
}

}  // namespace wharf::http
