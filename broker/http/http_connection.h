// http_connection: one HTTP/1.1 client connection of the http_server, on the
// loop thread.
//
// Phases: reading (bytes -> http-parser -> one http_request; the parser is
// paused at the end of each request) -> handling (reading stopped; the
// router's reply is awaited) -> writing (the response; reading stays stopped
// so pipelined requests wait) -> reading again, or, when the response closes
// the connection: lingering (write side shut, input read and discarded for
// a moment so the client sees the response rather than a reset) -> closed
// (both libuv handles closed, then the server frees it). One timer serves
// every phase's deadline; see http_server.h for the limits.
#pragma once

#include <http_parser.h>
#include <uv.h>

#include <array>
#include <cstdint>
#include <optional>
#include <string>

#include "http/http_message.h"

namespace wharf::http {

class http_server;

class http_connection {
 public:
  http_connection(http_server& server, uint64_t id);
  ~http_connection();
  http_connection(const http_connection&) = delete;
  http_connection& operator=(const http_connection&) = delete;

  uv_tcp_t* tcp() { return &tcp_; }
  uint64_t id() const { return id_; }

  /// Starts reading and arms the idle deadline. Call once after accept.
  void start();
  /// Answers `request` with `r` unless this connection has moved on.
  void respond(uint64_t request, http_response r);
  /// Sends `r` (which closes) without a request: e.g. refusing a connection.
  void refuse(http_response r);
  /// Stops reading; closes once the response owed (if any) is written.
  void shutdown();
  /// Closes both handles now.
  void close();

 private:
  enum class phase { reading, handling, writing, lingering, closed };
  struct write_req;

  static void on_alloc(uv_handle_t* h, size_t suggested, uv_buf_t* buf);
  static void on_read(uv_stream_t* s, ssize_t nread, const uv_buf_t* buf);
  static void on_write(uv_write_t* req, int status);
  static void on_shutdown(uv_shutdown_t* req, int status);
  static void on_timer(uv_timer_t* t);
  static void on_close(uv_handle_t* h);

  // http-parser callbacks (parser->data is the connection).
  static int on_message_begin(http_parser* p);
  static int on_url(http_parser* p, const char* at, size_t n);
  static int on_header_field(http_parser* p, const char* at, size_t n);
  static int on_header_value(http_parser* p, const char* at, size_t n);
  static int on_headers_complete(http_parser* p);
  static int on_body(http_parser* p, const char* at, size_t n);
  static int on_message_complete(http_parser* p);
  static const http_parser_settings kSettings;

  void parse_pending();
  int fail(http_response r);  // records an error found inside a callback; returns -1 (stop parsing)
  void send(http_response r);
  void write_raw(std::string bytes);
  void after_response();
  void start_reading();
  void stop_reading();
  void arm_timer();

  http_server& server_;
  uint64_t id_;
  uv_tcp_t tcp_;
  uv_timer_t timer_;
  uv_shutdown_t shutdown_req_;
  int open_handles_ = 2;
  phase phase_ = phase::reading;
  bool reading_ = false;
  bool in_request_ = false;   // bytes of a request have arrived (its deadline runs)
  bool keep_alive_ = true;    // as the finished request asked
  bool head_ = false;         // the request in hand is HEAD: the response has no body
  bool close_after_ = false;  // the response being written closes the connection
  int writes_in_flight_ = 0;
  uint64_t request_no_ = 0;  // numbers requests; an http_reply names the one it answers

  http_parser parser_;
  http_request req_;  // being assembled
  size_t header_bytes_ = 0;
  bool in_header_value_ = false;        // the last header callback was for a value
  std::optional<http_response> error_;  // set by a callback that stopped the parser
  std::string pending_;                 // received, not yet parsed (behind a paused request)
  std::array<char, 64 * 1024> read_buf_;
};

}  // namespace wharf::http
