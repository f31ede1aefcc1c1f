// session: one client connection, on the broker loop thread.
//
// Lifecycle: accepted -> handshake (the first frame must be Hello, within
// handshake_timeout_ms) -> ready -> closing (input read and dropped, queued
// frames flushed, then a FIN, until the peer closes too; at most
// kCloseGraceMs, and kFinLingerMs after the FIN) -> closed (both libuv
// handles closed, then the broker frees it). The broker owns sessions by
// id; anything that outlives a callback (a pending publish, a group
// delivery) refers to a session by id and looks it up again, never by
// pointer.
//
// Input: bytes -> frame_reader (length checked against max_frame_bytes) ->
// Verifier -> dispatch_frame(). Any malformed or oversize frame gets an Error
// frame and the connection is closed; nothing from it is applied.
// Output: finished frames queue here and go out in one writev per round;
// `writable()` tells subscriptions to stop producing while the queue is above
// its high-water mark, so a client that does not read cannot grow broker
// memory beyond that bound plus one frame.
#pragma once

#include <uv.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "wire.h"

namespace wharf {

class broker;
class subscription;

class session {
 public:
  static constexpr size_t kHighWaterBytes = 4u << 20;  // stop producing deliveries above
  static constexpr uint32_t kCloseGraceMs = 5000;       // flush time granted when closing
  static constexpr uint32_t kFinLingerMs = 500;         // after our FIN, wait this for the peer's

  session(broker& owner, uint64_t id, uint32_t max_frame_bytes);
  ~session();
  session(const session&) = delete;
  session& operator=(const session&) = delete;

  uv_tcp_t* tcp() { return &tcp_; }
  uint64_t id() const { return id_; }
  const std::string& peer() const { return peer_; }

  /// Starts reading and arms the handshake timer. Call once after accept.
  void start(uint32_t handshake_timeout_ms);

  /// Queues the finished frame held by `fbb` (the builder is reset).
  void send(flatbuffers::FlatBufferBuilder& fbb);
  void send_error(uint64_t request_id, wire::ErrorCode code, std::string_view message);
  bool writable() const { return !closing_ && queued_bytes_ < kHighWaterBytes; }
  size_t queued_bytes() const { return queued_bytes_; }

  /// Begins closing: an Error frame (request_id 0) first when `code` is not
  /// none, then whatever is queued, then the socket closes. Idempotent.
  void close(wire::ErrorCode code = wire::ErrorCode::none, std::string_view message = {});
  bool closing() const { return closing_; }
  /// Closes the socket now, dropping anything not yet written.
  void abort() { finish_close(); }

  /// Input flow control (publish backpressure).
  void pause_reading();
  void resume_reading();
  bool reading_paused() const { return paused_; }

  /// Closes the session if a started frame or a write has stalled past its
  /// timeout. Called by the broker about once a second.
  void check_stalls(uint64_t now_ms, uint32_t frame_timeout_ms, uint32_t write_timeout_ms);

  uint64_t publish_bytes_in_flight = 0;  // appends submitted for this session, not yet acked
  /// This session's subscriptions by id.
  std::unordered_map<uint64_t, std::unique_ptr<subscription>> subscriptions;

 private:
  struct write_req;

  static void on_alloc(uv_handle_t* h, size_t suggested, uv_buf_t* buf);
  static void on_read(uv_stream_t* s, ssize_t nread, const uv_buf_t* buf);
  static void on_write(uv_write_t* req, int status);
  static void on_close(uv_handle_t* h);
  static void on_timer(uv_timer_t* t);
  static void on_shutdown(uv_shutdown_t* req, int status);

  void handle_frames();
  bool handle_hello(uint64_t request_id, const wire::Frame* frame);
  void flush();
  void send_fin();
  void finish_close();

  broker& broker_;
  uint64_t id_;
  std::string peer_;
  uv_tcp_t tcp_;
  uv_timer_t timer_;  // handshake deadline, then the close grace deadline
  wire::frame_reader reader_;
  bool handshaken_ = false;
  bool closing_ = false;
  bool paused_ = false;
  bool write_in_flight_ = false;
  bool handles_closing_ = false;  // uv_close called on both handles
  bool peer_eof_ = false;         // the peer closed its side (or the connection failed)
  bool fin_sent_ = false;         // uv_shutdown issued after the last queued frame
  bool fin_done_ = false;         // ... and completed
  uv_shutdown_t shutdown_req_;
  int open_handles_ = 0;
  uint64_t last_read_ms_ = 0;    // loop time of the last bytes received
  uint64_t write_since_ms_ = 0;  // loop time the write in flight was issued

  std::vector<flatbuffers::DetachedBuffer> queue_;  // frames not yet handed to libuv
  size_t queued_bytes_ = 0;                         // queue_ plus the write in flight
};

}  // namespace wharf
