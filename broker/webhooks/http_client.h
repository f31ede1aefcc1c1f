// http_client: outbound HTTP requests on the broker's loop thread, with
// libcurl's multi-socket interface driven by libuv (curl tells us which
// sockets to watch and when to wake it; uv_poll and one uv_timer do the
// watching). No thread per request; connections are reused across requests
// to the same host by the multi handle's connection cache.
#pragma once

#include <curl/curl.h>
#include <uv.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

namespace wharf::webhooks {

struct http_request {
  std::string url;
  std::vector<std::string> headers;  // "Name: value"
  const uint8_t* body = nullptr;     // not copied: `keep` keeps it alive
  size_t body_size = 0;
  std::shared_ptr<const void> keep;
  uint32_t timeout_ms = 15000;
};

struct http_response {
  enum class outcome { ok, status, timeout, connect, other };
  uint64_t id = 0;                  // what post() returned for the request
  outcome result = outcome::other;  // ok = 2xx; status = any other answer
  uint32_t status = 0;              // 0 when no answer came
  int64_t retry_after_ms = -1;      // from Retry-After, when given
  uint64_t latency_us = 0;
  std::string error;  // empty for ok; curl's message or the start of the body
};
const char* to_string(http_response::outcome o);

class http_client {
 public:
  using done_fn = std::function<void(const http_response&)>;

  explicit http_client(uv_loop_t* loop);
  ~http_client();
  http_client(const http_client&) = delete;
  http_client& operator=(const http_client&) = delete;

  /// Starts a POST; `done` runs later on the loop thread (never from inside
  /// post()) unless it is cancelled or the client is closed first. Returns an
  /// id for cancel(), or 0 when the request could not start (closed, no memory).
  uint64_t post(http_request request, done_fn done);
  void cancel(uint64_t id);
  size_t in_flight() const { return transfers_.size(); }

  /// Drops every transfer (no callbacks) and closes the uv handles. After
  /// this, post() returns 0.
  void close();

 private:
  struct transfer;
  struct socket_watch;
  static int on_socket(CURL* easy, curl_socket_t fd, int what, void* userp, void* socketp);
  static int on_timer_request(CURLM* multi, long timeout_ms, void* userp);
  static void on_poll(uv_poll_t* handle, int status, int events);
  static void on_timeout(uv_timer_t* timer);
  void act(curl_socket_t fd, int flags);
  void finish_done_transfers();
  void drop(transfer& t);

  uv_loop_t* loop_;
  CURLM* multi_ = nullptr;
  uv_timer_t timer_;
  bool closed_ = false;
  uint64_t last_id_ = 0;
  std::unordered_map<uint64_t, std::unique_ptr<transfer>> transfers_;
};

}  // namespace wharf::webhooks
