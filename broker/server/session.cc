#include "session.h"

#include <cstring>

#include "broker.h"
#include "handlers/dispatch.h"
#include "log.h"
#include "subscriptions/subscription.h"

#ifndef WHARF_VERSION
#define WHARF_VERSION "0.0.0"
#endif

namespace wharf {

struct session::write_req {
  uv_write_t req;
  session* owner;
  std::vector<flatbuffers::DetachedBuffer> frames;
  size_t bytes = 0;
};

session::session(broker& owner, uint64_t id, uint32_t max_frame_bytes)
    : broker_(owner), id_(id), reader_(max_frame_bytes) {
  uv_tcp_init(owner.loop(), &tcp_);
  uv_timer_init(owner.loop(), &timer_);
  tcp_.data = this;
  timer_.data = this;
  open_handles_ = 2;
}

session::~session() = default;

void session::start(uint32_t handshake_timeout_ms) {
  sockaddr_storage addr;
  int len = sizeof addr;
  char host[64] = "?";
  if (uv_tcp_getpeername(&tcp_, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    if (addr.ss_family == AF_INET) {
      auto a = reinterpret_cast<sockaddr_in*>(&addr);
      uv_ip4_name(a, host, sizeof host);
      peer_ = std::string(host) + ":" + std::to_string(ntohs(a->sin_port));
    } else if (addr.ss_family == AF_INET6) {
      auto a = reinterpret_cast<sockaddr_in6*>(&addr);
      uv_ip6_name(a, host, sizeof host);
      peer_.assign(1, '[').append(host).append("]:").append(std::to_string(ntohs(a->sin6_port)));
    }
  }
  uv_tcp_nodelay(&tcp_, 1);
  uv_timer_start(&timer_, &session::on_timer, handshake_timeout_ms, 0);
  uv_read_start(reinterpret_cast<uv_stream_t*>(&tcp_), &session::on_alloc, &session::on_read);
}

// ---------------------------------------------------------------------------
// Input
// ---------------------------------------------------------------------------

void session::on_alloc(uv_handle_t* h, size_t, uv_buf_t* buf) {
  auto self = static_cast<session*>(h->data);
  auto space = self->reader_.prepare();
  *buf = uv_buf_init(reinterpret_cast<char*>(space.data()), static_cast<unsigned>(space.size()));
}

void session::on_read(uv_stream_t* s, ssize_t nread, const uv_buf_t*) {
  auto self = static_cast<session*>(s->data);
  if (nread < 0) {
    if (nread != UV_EOF) log_debug("session %lu (%s): read error: %s", self->id_, self->peer_.c_str(), uv_strerror(static_cast<int>(nread)));
    self->peer_eof_ = true;
    uv_read_stop(s);
    if (!self->closing_) return self->close();
    if (self->fin_done_) self->finish_close();  // both sides are done
    return;
  }
  if (nread == 0 || self->closing_) return;  // closing: input is read and dropped
  self->last_read_ms_ = uv_now(self->tcp_.loop);
  self->reader_.commit(static_cast<size_t>(nread));
  self->handle_frames();
}

void session::handle_frames() {
  std::span<const uint8_t> bytes;
  while (!closing_ && !paused_) {
    auto st = reader_.next(bytes);
    if (st == wire::frame_reader::status::need_more) return;
    if (st == wire::frame_reader::status::too_large) {
      log_warn("session %lu (%s): frame of %u bytes exceeds max_frame_bytes", id_, peer_.c_str(),
               reader_.announced_length());
      close(wire::ErrorCode::too_large, "frame exceeds max_frame_bytes");
      return;
    }
    const wire::Frame* frame = wire::verify_frame(bytes);
    if (!frame) {
      log_warn("session %lu (%s): malformed frame of %zu bytes", id_, peer_.c_str(), bytes.size());
      close(wire::ErrorCode::protocol, "malformed frame");
      return;
    }
    if (!handshaken_) {
      if (!handle_hello(frame->request_id(), frame)) return;
    } else {
      dispatch_frame(broker_, *this, *frame);
    }
    reader_.consume();
  }
}

bool session::handle_hello(uint64_t request_id, const wire::Frame* frame) {
  auto hello = frame->body_as_Hello();
  if (!hello) {
    close(wire::ErrorCode::protocol, "the first frame must be Hello");
    return false;
  }
  if (hello->protocol_version() != wire::kProtocolVersion) {
    close(wire::ErrorCode::unsupported_version,
          "protocol version " + std::to_string(hello->protocol_version()) +
              " not supported; this broker speaks " + std::to_string(wire::kProtocolVersion));
    return false;
  }
  handshaken_ = true;
  uv_timer_stop(&timer_);
  flatbuffers::FlatBufferBuilder fbb(256);
  auto version = fbb.CreateString(WHARF_VERSION);
  wire::finish_frame(fbb, request_id,
                     wire::CreateHelloOk(fbb, wire::kProtocolVersion, version,
                                         broker_.config().max_frame_bytes,
                                         broker_.config().max_message_bytes));
  send(fbb);
  log_debug("session %lu (%s): hello from %s", id_, peer_.c_str(),
            hello->client_name() ? hello->client_name()->c_str() : "?");
  return true;
}

void session::pause_reading() {
  if (paused_ || closing_) return;
  paused_ = true;
  uv_read_stop(reinterpret_cast<uv_stream_t*>(&tcp_));
}

void session::resume_reading() {
  if (!paused_ || closing_) return;
  paused_ = false;
  uv_read_start(reinterpret_cast<uv_stream_t*>(&tcp_), &session::on_alloc, &session::on_read);
  handle_frames();  // frames that arrived before the pause
}

// ---------------------------------------------------------------------------
// Output
// ---------------------------------------------------------------------------

void session::send(flatbuffers::FlatBufferBuilder& fbb) {
  auto frame = fbb.Release();
  fbb.Clear();  // Release() leaves the builder finished; make it reusable
  if (handles_closing_) return;
  queued_bytes_ += frame.size();
  queue_.push_back(std::move(frame));
  if (!write_in_flight_) flush();
}

void session::send_error(uint64_t request_id, wire::ErrorCode code, std::string_view message) {
  flatbuffers::FlatBufferBuilder fbb(128 + message.size());
  auto msg = fbb.CreateString(message.data(), message.size());
  wire::finish_frame(fbb, request_id, wire::CreateError(fbb, code, msg));
  send(fbb);
}

void session::flush() {
  if (queue_.empty() || write_in_flight_) return;
  auto w = new write_req;
  w->owner = this;
  w->frames = std::move(queue_);
  queue_.clear();
  std::vector<uv_buf_t> bufs;
  bufs.reserve(w->frames.size());
  for (auto& f : w->frames) {
    bufs.push_back(uv_buf_init(reinterpret_cast<char*>(f.data()), static_cast<unsigned>(f.size())));
    w->bytes += f.size();
  }
  write_in_flight_ = true;
  write_since_ms_ = uv_now(tcp_.loop);
  int rc = uv_write(&w->req, reinterpret_cast<uv_stream_t*>(&tcp_), bufs.data(),
                    static_cast<unsigned>(bufs.size()), &session::on_write);
  if (rc != 0) {
    write_in_flight_ = false;
    queued_bytes_ -= w->bytes;
    delete w;
    finish_close();
  }
}

void session::on_write(uv_write_t* req, int status) {
  auto w = reinterpret_cast<write_req*>(req);
  session* self = w->owner;
  bool was_full = self->queued_bytes_ >= kHighWaterBytes;
  self->queued_bytes_ -= w->bytes;
  self->write_in_flight_ = false;
  delete w;
  if (status < 0) {
    if (status != UV_ECANCELED) {
      log_debug("session %lu (%s): write error: %s", self->id_, self->peer_.c_str(), uv_strerror(status));
    }
    self->finish_close();
    return;
  }
  self->flush();
  if (self->closing_) {
    if (self->queue_.empty()) self->send_fin();
    return;
  }
  if (was_full && self->queued_bytes_ < kHighWaterBytes) self->broker_.on_session_writable(*self);
}

void session::check_stalls(uint64_t now_ms, uint32_t frame_timeout_ms, uint32_t write_timeout_ms) {
  if (closing_) return;
  if (write_in_flight_ && now_ms - write_since_ms_ > write_timeout_ms) {
    log_warn("session %lu (%s): took no data for %u ms (%zu bytes queued); dropping it", id_, peer_.c_str(),
             write_timeout_ms, queued_bytes_);
    return finish_close();  // it does not read: nothing more can reach it
  }
  if (handshaken_ && !paused_ && reader_.buffered() > 0 && now_ms - last_read_ms_ > frame_timeout_ms) {
    log_warn("session %lu (%s): frame incomplete for %u ms; closing", id_, peer_.c_str(), frame_timeout_ms);
    close(wire::ErrorCode::timeout, "incomplete frame");
  }
}

// ---------------------------------------------------------------------------
// Closing
// ---------------------------------------------------------------------------

// Closing gracefully: the frames still queued (replies, acks, the Error) go
// out, then a FIN, and the socket closes once the peer has closed its side.
// Meanwhile input is read and dropped: closing a socket with unread input
// makes the kernel send a reset and throw away what it has not transmitted
// yet, which would lose the last acks of a client that was still sending.
void session::close(wire::ErrorCode code, std::string_view message) {
  if (closing_) return;
  if (code != wire::ErrorCode::none) send_error(0, code, message);
  closing_ = true;
  broker_.on_session_closing(*this);
  if (handles_closing_) return;
  if (paused_ && !peer_eof_) {
    paused_ = false;
    uv_read_start(reinterpret_cast<uv_stream_t*>(&tcp_), &session::on_alloc, &session::on_read);
  }
  uv_timer_start(&timer_, &session::on_timer, kCloseGraceMs, 0);
  if (queue_.empty()) send_fin();  // else after the write in flight (on_write)
}

void session::send_fin() {
  if (fin_sent_ || handles_closing_) return;
  fin_sent_ = true;
  shutdown_req_.data = this;
  if (uv_shutdown(&shutdown_req_, reinterpret_cast<uv_stream_t*>(&tcp_), &session::on_shutdown) !=
      0) {
    finish_close();
  }
}

void session::on_shutdown(uv_shutdown_t* req, int status) {
  auto self = static_cast<session*>(req->data);
  if (status == UV_ECANCELED) return;  // the handle is closing already
  self->fin_done_ = true;
  if (status < 0 || self->peer_eof_) return self->finish_close();
  // Everything is on its way; a peer that neither closes nor sends gets
  // little more time (it cannot lose anything by a close now).
  if (uv_timer_get_due_in(&self->timer_) > kFinLingerMs) {
    uv_timer_start(&self->timer_, &session::on_timer, kFinLingerMs, 0);
  }
}

void session::on_timer(uv_timer_t* t) {
  auto self = static_cast<session*>(t->data);
  if (!self->closing_) {
    log_info("session %lu (%s): no Hello within the handshake timeout", self->id_, self->peer_.c_str());
    self->close(wire::ErrorCode::timeout, "handshake timeout");
  } else {
    self->finish_close();  // the peer did not take our last frames, or did not close, in time
  }
}

void session::finish_close() {
  if (!closing_) {
    closing_ = true;
    broker_.on_session_closing(*this);
  }
  if (handles_closing_) return;
  handles_closing_ = true;
  uv_close(reinterpret_cast<uv_handle_t*>(&tcp_), &session::on_close);
  uv_close(reinterpret_cast<uv_handle_t*>(&timer_), &session::on_close);
}

void session::on_close(uv_handle_t* h) {
  auto self = static_cast<session*>(h->data);
  if (--self->open_handles_ == 0) self->broker_.on_session_closed(*self);
}

}  // namespace wharf
