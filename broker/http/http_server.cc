#include "http/http_server.h"

#include <vector>

#include "http/http_connection.h"
#include "log.h"

namespace wharf::http {

void http_reply::send(http_response r) const {
  server_->deliver(connection_, request_, std::move(r));
}

http_server::http_server(uv_loop_t* loop, http_limits limits, http_router router)
    : loop_(loop), limits_(limits), router_(std::move(router)) {}

// Every handle is closed (shutdown, then the loop ran) before the broker
// destroys the server; connections left here only hold closed handles.
http_server::~http_server() = default;

bool http_server::listen(const std::string& address) {
  auto hp = wire::parse_host_port(address);
  if (!hp) {
    log_error("http_listen: expected HOST:PORT, got '%s'", address.c_str());
    return false;
  }
  std::string host = hp->host == "localhost" ? "127.0.0.1" : hp->host;
  sockaddr_storage addr{};
  if (uv_ip4_addr(host.c_str(), hp->port, reinterpret_cast<sockaddr_in*>(&addr)) != 0 &&
      uv_ip6_addr(host.c_str(), hp->port, reinterpret_cast<sockaddr_in6*>(&addr)) != 0) {
    log_error("http_listen: '%s' is not an IP address", hp->host.c_str());
    return false;
  }
  uv_tcp_init(loop_, &listener_);
  listener_.data = this;
  listener_open_ = true;
  int rc = uv_tcp_bind(&listener_, reinterpret_cast<sockaddr*>(&addr), 0);
  if (rc == 0)
    rc = uv_listen(reinterpret_cast<uv_stream_t*>(&listener_), 511, &http_server::on_accept);
  if (rc != 0) {
    log_error("cannot listen for HTTP on %s: %s", address.c_str(), uv_strerror(rc));
    uv_close(reinterpret_cast<uv_handle_t*>(&listener_),
             [](uv_handle_t* h) { static_cast<http_server*>(h->data)->listener_open_ = false; });
    return false;
  }
  sockaddr_storage bound{};
  int len = sizeof bound;
  uv_tcp_getsockname(&listener_, reinterpret_cast<sockaddr*>(&bound), &len);
  port_ = ntohs(reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
  log_info("http listening on %s:%u (max body %u bytes, timeout %u ms)", host.c_str(), port_,
           limits_.max_body_bytes, limits_.timeout_ms);
  return true;
}

void http_server::on_accept(uv_stream_t* listener, int status) {
  auto self = static_cast<http_server*>(listener->data);
  if (status < 0) {
    log_warn("http accept failed: %s", uv_strerror(status));
    return;
  }
  auto c = std::make_unique<http_connection>(*self, ++self->last_id_);
  http_connection& ref = *c;
  self->connections_[ref.id()] = std::move(c);
  if (uv_accept(listener, reinterpret_cast<uv_stream_t*>(ref.tcp())) != 0) {
    ref.close();
    return;
  }
  self->connections_total_++;
  if (self->connections_.size() > self->limits_.max_connections || self->shutting_down_) {
    log_warn("refusing an HTTP connection: %zu open (max_connections=%u)",
             self->connections_.size() - 1, self->limits_.max_connections);
    ref.refuse(
        self->shutting_down_
            ? error_response(wire::ErrorCode::shutting_down, "the broker is shutting down")
            : error_response(wire::ErrorCode::too_many_connections, "too many HTTP connections"));
    return;
  }
  ref.start();
}

void http_server::route(const http_request& req, uint64_t connection, uint64_t request) {
  router_(req, http_reply(this, connection, request));
}

void http_server::deliver(uint64_t connection, uint64_t request, http_response r) {
  auto it = connections_.find(connection);
  if (it != connections_.end()) it->second->respond(request, std::move(r));
}

void http_server::shutdown(std::function<void()> drained) {
  if (shutting_down_) return;
  shutting_down_ = true;
  drained_ = std::move(drained);
  if (listener_open_) {
    uv_close(reinterpret_cast<uv_handle_t*>(&listener_), [](uv_handle_t* h) {
      auto self = static_cast<http_server*>(h->data);
      self->listener_open_ = false;
      self->maybe_drained();
    });
  }
  std::vector<http_connection*> all;
  for (auto& [id, c] : connections_) all.push_back(c.get());
  for (auto* c : all) c->shutdown();
}

void http_server::abort_all() {
  for (auto& [id, c] : connections_) c->close();
}

void http_server::on_connection_closed(uint64_t id) {
  connections_.erase(id);
  maybe_drained();
}

void http_server::maybe_drained() {
  if (!shutting_down_ || !idle() || !drained_) return;
  auto fn = std::move(drained_);
  drained_ = nullptr;
  fn();
}

}  // namespace wharf::http
