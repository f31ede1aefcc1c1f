// http_server: an HTTP/1.1 listener on the broker's libuv loop.
//
// It knows HTTP, not the broker: it accepts connections, parses requests
// with http-parser (Debian's libhttp-parser, the streaming C parser Node.js
// used for years; it never allocates and never reads past the bytes it is
// given), enforces the limits below, and hands each complete request to the
// router, which answers through an http_reply, at once or later (after a
// commit). Loop thread only.
//
// One request per connection is handled at a time: while a handler works,
// the connection stops reading, and pipelined requests wait in its buffer
// (at most one read's worth), so responses go out in request order and a
// client cannot queue unbounded work. Limits and timeouts:
//   - request target <= kMaxTargetBytes (else 414), header names and values
//     <= kMaxHeaderBytes in all and <= kMaxHeaders of them (else 431);
//   - body <= max_body_bytes, by Content-Length before it is read or while
//     a chunked body arrives (else 413); a POST with neither gets 411;
//   - a request must arrive whole within timeout_ms of its first byte (else
//     408), an idle keep-alive connection is closed after timeout_ms, and a
//     client that takes no response bytes for timeout_ms is dropped;
//   - malformed HTTP gets 400. Every error response closes the connection
//     after draining what the client still sends for a moment, so the client
//     reads the answer instead of a reset.
#pragma once

#include <uv.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>

#include "http/http_message.h"

namespace wharf::http {

class http_connection;
class http_server;

struct http_limits {
  static constexpr size_t kMaxTargetBytes = 8192;   // request line target
  static constexpr size_t kMaxHeaderBytes = 16384;  // all header names and values
  static constexpr size_t kMaxHeaders = 100;
  uint32_t max_body_bytes = 1u << 20;
  uint32_t timeout_ms = 10000;
  uint32_t max_connections = 4096;  // more are answered 503 and closed
};

/// Answers one request. Copyable; send() once. If the connection has closed
/// meanwhile, the answer is dropped.
class http_reply {
 public:
  http_reply(http_server* server, uint64_t connection, uint64_t request)
      : server_(server), connection_(connection), request_(request) {}
  void send(http_response r) const;

 private:
  http_server* server_;
  uint64_t connection_;
  uint64_t request_;  // the connection's request number, so a stale reply is ignored
};

using http_router = std::function<void(const http_request&, http_reply)>;

class http_server {
 public:
  http_server(uv_loop_t* loop, http_limits limits, http_router router);
  ~http_server();
  http_server(const http_server&) = delete;
  http_server& operator=(const http_server&) = delete;

  /// Binds HOST:PORT and listens; logs "http listening on H:P". False, with
  /// the reason logged, when it cannot.
  bool listen(const std::string& address);
  uint16_t port() const { return port_; }

  /// Stops accepting and reading. Connections owed a response close once it
  /// is written; the others close now. `drained` runs when all are closed.
  void shutdown(std::function<void()> drained);
  /// Closes every connection now, dropping unwritten responses.
  void abort_all();
  /// True when no connection and no listener handle is open.
  bool idle() const { return connections_.empty() && !listener_open_; }

  size_t connection_count() const { return connections_.size(); }
  uint64_t connections_total() const { return connections_total_; }
  /// Responses sent, by status code (parser errors and timeouts included).
  const std::map<int, uint64_t>& responses() const { return responses_; }

  // ---- for http_connection and http_reply ----
  uv_loop_t* loop() { return loop_; }
  const http_limits& limits() const { return limits_; }
  bool shutting_down() const { return shutting_down_; }
  void route(const http_request& req, uint64_t connection, uint64_t request);
  void deliver(uint64_t connection, uint64_t request, http_response r);
  void count_response(int status) { ++responses_[status]; }
  void on_connection_closed(uint64_t id);

 private:
  static void on_accept(uv_stream_t* server, int status);
  void maybe_drained();

  uv_loop_t* loop_;
  http_limits limits_;
  http_router router_;
  uv_tcp_t listener_;
  bool listener_open_ = false;
  bool shutting_down_ = false;
  uint16_t port_ = 0;
  uint64_t last_id_ = 0;
  uint64_t connections_total_ = 0;
  std::unordered_map<uint64_t, std::unique_ptr<http_connection>> connections_;
  std::map<int, uint64_t> responses_;
  std::function<void()> drained_;
};

}  // namespace wharf::http
