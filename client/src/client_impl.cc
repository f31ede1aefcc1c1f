#include "client_impl.h"

#include <netdb.h>
#include <pthread.h>
#include <signal.h>

#include <cstring>
#include <random>

namespace wharf {

using detail::steady;

namespace {

constexpr uint32_t kMaxInflightBatches = 32;  // Publish frames awaiting acks per connection
constexpr uint32_t kHousekeepingMs = 50;
constexpr uint32_t kCloseGraceMs = 2000;      // close(): time for the broker to take our last frames

uint32_t credit_batch(uint32_t window) { return std::max<uint32_t>(1, window / 4); }

}  // namespace

error error_from_wire(const wire::Error& e) {
  return error(static_cast<errc>(e.code()), e.message() ? e.message()->str() : std::string());
}

std::shared_ptr<detail::delivery> detail::delivery::copy_of(std::span<const uint8_t> bytes) {
  auto d = std::make_shared<delivery>();
  d->storage.resize(bytes.size() / 8 + 1);
  std::memcpy(d->storage.data(), bytes.data(), bytes.size());
  d->size = bytes.size();
  return d;
}

struct client::impl::write_req {
  uv_write_t req;
  impl* owner;
  uint64_t generation;
  std::vector<flatbuffers::DetachedBuffer> frames;
};

client::impl::impl(client_options options) : options_(std::move(options)) {
  options_.max_batch_bytes = std::max<size_t>(1, options_.max_batch_bytes);
}

client::impl::~impl() { close(std::chrono::milliseconds(0)); }

// ---------------------------------------------------------------------------
// Start and stop
// ---------------------------------------------------------------------------

result<void> client::impl::start() {
  auto hp = wire::parse_host_port(options_.broker);
  if (!hp) return error(errc::invalid_argument, "broker address must be HOST:PORT, got '" + options_.broker + "'");
  host_ = hp->host;
  port_ = hp->port;
  uv_loop_init(&loop_);
  uv_async_init(&loop_, &async_, &impl::on_async);
  uv_timer_init(&loop_, &timer_);
  uv_timer_init(&loop_, &reconnect_timer_);
  uv_timer_init(&loop_, &linger_timer_);
  async_.data = timer_.data = reconnect_timer_.data = linger_timer_.data = this;
  io_ = std::thread([this] { run_loop(); });

  std::unique_lock lk(start_mu_);
  if (!start_cv_.wait_for(lk, options_.connect_timeout + std::chrono::seconds(2), [&] { return start_done_; })) {
    return error(errc::unavailable, "timed out connecting to " + options_.broker);
  }
  if (start_error_.code != errc::ok) return start_error_;
  return {};
}

void client::impl::run_loop() {
  io_id_ = std::this_thread::get_id();
  // A write to a socket the broker closed raises SIGPIPE, which would kill
  // the host process. Blocked on this thread (the only one writing to
  // sockets), the write just fails with EPIPE; the process's own signal
  // settings are left alone.
  sigset_t pipe;
  sigemptyset(&pipe);
  sigaddset(&pipe, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &pipe, nullptr);
  uv_timer_start(&timer_, &impl::on_timer, kHousekeepingMs, kHousekeepingMs);
  connect_now();
  uv_run(&loop_, UV_RUN_DEFAULT);
  uv_loop_close(&loop_);
}

void client::impl::close(std::chrono::milliseconds timeout) {
  if (!io_.joinable()) return;
  {
    std::lock_guard lk(pub_mu_);
    if (closing_) return;
  }
  if (timeout.count() > 0 && connected()) flush(timeout);
  // End subscriptions: stop their workers first so no handler runs after close.
  std::vector<std::shared_ptr<detail::sub_state>> subs;
  {
    std::lock_guard lk(subs_mu_);
    for (auto& [id, s] : subs_) subs.push_back(s);
  }
  for (auto& s : subs) {
    s->stop_worker();
    std::lock_guard lk(s->owner_mu);
    s->owner = nullptr;
  }
  {
    std::lock_guard lk(pub_mu_);
    closing_ = true;
  }
  post([this] { begin_close(); });
  io_.join();
  std::lock_guard lk(subs_mu_);
  subs_.clear();
}

// Close without losing what was already handed to us: send queued acks,
// let queued writes finish, half-close (FIN), drain what the broker still
// sends until it closes too, then close the handles. Closing a socket with
// unread data would send a reset, and the broker would drop the acks it had
// not read yet. kCloseGraceMs bounds all of it.
void client::impl::begin_close() {
  if (state_ == state::ready) send_settles();
  state_ = state::closed;
  fail_all(errc::shutting_down, "client closed");
  uv_timer_stop(&reconnect_timer_);
  uv_timer_stop(&linger_timer_);
  uv_timer_stop(&timer_);
  if (!tcp_) return close_handles();
  // Frames still in our queue go to libuv now: uv_shutdown waits only for
  // writes libuv has (several may be outstanding; they keep their order).
  write_in_flight_ = false;
  flush_writes();
  auto req = new uv_shutdown_t;
  req->data = this;
  if (uv_shutdown(req, reinterpret_cast<uv_stream_t*>(tcp_), [](uv_shutdown_t* r, int status) {
        auto self = static_cast<impl*>(r->data);
        delete r;
        if (status < 0) self->close_tcp();  // otherwise wait for the broker's EOF
      }) != 0) {
    delete req;
    return close_tcp();
  }
  uv_timer_start(&linger_timer_, [](uv_timer_t* t) { static_cast<impl*>(t->data)->close_tcp(); }, kCloseGraceMs, 0);
}

void client::impl::close_tcp() {
  if (tcp_) {
    uv_close(reinterpret_cast<uv_handle_t*>(tcp_), [](uv_handle_t* h) { delete reinterpret_cast<uv_tcp_t*>(h); });
    tcp_ = nullptr;
  }
  close_handles();
}

void client::impl::close_handles() {
  for (uv_handle_t* h : {reinterpret_cast<uv_handle_t*>(&async_), reinterpret_cast<uv_handle_t*>(&timer_),
                         reinterpret_cast<uv_handle_t*>(&reconnect_timer_),
                         reinterpret_cast<uv_handle_t*>(&linger_timer_)}) {
    if (!uv_is_closing(h)) uv_close(h, nullptr);
  }
}

// ---------------------------------------------------------------------------
// Cross-thread plumbing
// ---------------------------------------------------------------------------

void client::impl::post(std::function<void()> fn) {
  {
    std::lock_guard lk(cmd_mu_);
    cmds_.push_back(std::move(fn));
  }
  wake_io();
}

void client::impl::wake_io() {
  if (!wake_pending_.exchange(true, std::memory_order_acq_rel)) uv_async_send(&async_);
}

void client::impl::on_async(uv_async_t* h) {
  auto self = static_cast<impl*>(h->data);
  self->wake_pending_.store(false, std::memory_order_release);
  std::vector<std::function<void()>> cmds;
  {
    std::lock_guard lk(self->cmd_mu_);
    cmds.swap(self->cmds_);
  }
  for (auto& c : cmds) c();
  if (self->state_ == state::closed) return;
  self->send_settles();
  self->pump_publishes();
}

// ---------------------------------------------------------------------------
// Connection
// ---------------------------------------------------------------------------

void client::impl::connect_now() {
  state_ = state::connecting;
  connect_started_ = steady::now();
  ++generation_;
  sockaddr_storage addr{};
  std::string host = host_ == "localhost" ? "127.0.0.1" : host_;
  if (uv_ip4_addr(host.c_str(), port_, reinterpret_cast<sockaddr_in*>(&addr)) != 0 &&
      uv_ip6_addr(host.c_str(), port_, reinterpret_cast<sockaddr_in6*>(&addr)) != 0) {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* res = nullptr;
    if (getaddrinfo(host.c_str(), nullptr, &hints, &res) != 0 || !res) {
      return drop_connection("cannot resolve " + host_);
    }
    std::memcpy(&addr, res->ai_addr, res->ai_addrlen);
    reinterpret_cast<sockaddr_in*>(&addr)->sin_port = htons(port_);  // same offset for IPv6
    freeaddrinfo(res);
  }
  tcp_ = new uv_tcp_t;
  uv_tcp_init(&loop_, tcp_);
  tcp_->data = this;
  auto req = new uv_connect_t;
  req->data = this;
  int rc = uv_tcp_connect(req, tcp_, reinterpret_cast<sockaddr*>(&addr), &impl::on_connect_cb);
  if (rc != 0) {
    delete req;
    drop_connection("cannot connect to " + options_.broker + ": " + uv_strerror(rc));
  }
}

void client::impl::on_connect_cb(uv_connect_t* req, int status) {
  auto self = static_cast<impl*>(req->data);
  auto handle = reinterpret_cast<uv_tcp_t*>(req->handle);
  delete req;
  if (handle != self->tcp_ || status == UV_ECANCELED) return;  // a connection we already gave up
  self->on_connected(status);
}

void client::impl::on_connected(int status) {
  if (status < 0) return drop_connection("cannot connect to " + options_.broker + ": " + uv_strerror(status));
  uv_tcp_nodelay(tcp_, 1);
  reader_ = std::make_unique<wire::frame_reader>(max_frame_limit());
  uv_read_start(reinterpret_cast<uv_stream_t*>(tcp_), &impl::on_alloc, &impl::on_read);
  state_ = state::handshaking;
  flatbuffers::FlatBufferBuilder fbb(128);
  auto name = fbb.CreateString(options_.client_name);
  hello_rid_ = next_request_id();
  wire::finish_frame(fbb, hello_rid_, wire::CreateHello(fbb, wire::kProtocolVersion, name));
  send_frame(fbb.Release());
}

void client::impl::on_alloc(uv_handle_t* h, size_t, uv_buf_t* buf) {
  auto self = static_cast<impl*>(h->data);
  if (self->state_ == state::closed) {  // draining before close: the bytes are dropped
    static thread_local char scratch[64 * 1024];
    *buf = uv_buf_init(scratch, sizeof scratch);
    return;
  }
  auto space = self->reader_->prepare();
  *buf = uv_buf_init(reinterpret_cast<char*>(space.data()), static_cast<unsigned>(space.size()));
}

void client::impl::on_read(uv_stream_t* s, ssize_t nread, const uv_buf_t*) {
  auto self = static_cast<impl*>(s->data);
  if (reinterpret_cast<uv_tcp_t*>(s) != self->tcp_) return;
  if (self->state_ == state::closed) {
    if (nread < 0) self->close_tcp();  // the broker closed its side: done
    return;
  }
  if (nread < 0) {
    return self->drop_connection(nread == UV_EOF ? "connection closed by the broker"
                                                 : std::string("read error: ") + uv_strerror(static_cast<int>(nread)));
  }
  self->reader_->commit(static_cast<size_t>(nread));
  uint64_t gen = self->generation_;
  std::span<const uint8_t> bytes;
  while (self->generation_ == gen && self->tcp_) {
    auto st = self->reader_->next(bytes);
    if (st == wire::frame_reader::status::need_more) return;
    if (st == wire::frame_reader::status::too_large) return self->drop_connection("frame from broker too large");
    self->on_frame(bytes);
    if (self->generation_ != gen || !self->tcp_) return;
    self->reader_->consume();
  }
}

void client::impl::on_frame(std::span<const uint8_t> bytes) {
  const wire::Frame* f = wire::verify_frame(bytes);
  if (!f) return drop_connection("malformed frame from broker");
  switch (f->body_type()) {
    case wire::Body::HelloOk:
      if (state_ == state::handshaking) on_hello_ok(*f->body_as_HelloOk());
      return;
    case wire::Body::Deliver: return on_deliver(bytes, *f->body_as_Deliver());
    case wire::Body::SubscriptionEnded: return on_subscription_ended(*f->body_as_SubscriptionEnded());
    default: break;
  }
  if (f->request_id() == 0 || f->request_id() == hello_rid_) {
    // The broker is closing this connection (or refused the handshake).
    if (auto e = f->body_as_Error()) {
      error err = error_from_wire(*e);
      if (state_ == state::handshaking) {
        std::lock_guard lk(start_mu_);
        if (!start_done_) start_error_ = err;
      }
      return drop_connection(err.to_string());
    }
    return;
  }
  auto it = inflight_.find(f->request_id());
  if (it == inflight_.end()) return;  // timed out earlier
  auto fn = std::move(it->second.on_reply);
  inflight_.erase(it);
  fn(nullptr, f, bytes);
}

void client::impl::on_hello_ok(const wire::HelloOk& ok) {
  state_ = state::ready;
  connected_ = true;
  backoff_ms_ = 0;
  max_message_bytes_ = ok.max_message_bytes();
  // Deliver frames carry a stored batch (at most max_frame_bytes, as it was
  // published) plus per-record indexes, so allow twice that.
  max_frame_bytes_ = std::max<uint32_t>(ok.max_frame_bytes(), 4096);
  reader_->set_max_frame_bytes(max_frame_limit());
  // Re-open subscriptions, then send what waited for the connection.
  std::vector<std::shared_ptr<detail::sub_state>> subs;
  {
    std::lock_guard lk(subs_mu_);
    for (auto& [id, s] : subs_) subs.push_back(s);
  }
  for (auto& s : subs) {
    ensure_subscribed(s, [this, s](const error* e) {
      // A broker's refusal (topic deleted...) ends it; a dropped connection
      // is retried on the next one.
      bool local = e && (e->code == errc::disconnected || e->code == errc::unavailable ||
                         e->code == errc::timeout || e->code == errc::shutting_down);
      if (e && !local) end_subscription(s, *e);
    });
  }
  auto unsent = std::move(unsent_);
  unsent_.clear();
  for (auto& r : unsent) enqueue_request(std::move(r));
  send_settles();
  pump_publishes();
  // Only now may connect() return: subscriptions made after it are new.
  {
    std::lock_guard lk(start_mu_);
    start_done_ = true;
  }
  start_cv_.notify_all();
}

void client::impl::drop_connection(const std::string& why) {
  if (tcp_) {
    uv_read_stop(reinterpret_cast<uv_stream_t*>(tcp_));
    uv_close(reinterpret_cast<uv_handle_t*>(tcp_), [](uv_handle_t* h) { delete reinterpret_cast<uv_tcp_t*>(h); });
    tcp_ = nullptr;
  }
  ++generation_;
  write_queue_.clear();
  write_in_flight_ = false;
  connected_ = false;
  last_error_ = why;
  if (state_ == state::closed) return;
  state_ = state::disconnected;

  // Requests already sent have an unknown outcome now.
  auto inflight = std::move(inflight_);
  inflight_.clear();
  error lost(errc::disconnected, "connection lost before the reply: " + why);
  for (auto& [rid, r] : inflight) r.on_reply(&lost, nullptr, {});
  by_broker_id_.clear();
  {
    std::lock_guard lk(subs_mu_);
    for (auto& [id, s] : subs_) s->broker_id = 0;
  }

  bool first = false;
  {
    std::lock_guard lk(start_mu_);
    if (!start_done_) {
      first = true;
      start_done_ = true;
      if (start_error_.code == errc::ok) start_error_ = error(errc::unavailable, why);
    }
  }
  if (first) {
    start_cv_.notify_all();
    return;
  }
  if (options_.reconnect) {
    schedule_reconnect();
  } else {
    fail_all(errc::unavailable, why);
  }
}

void client::impl::schedule_reconnect() {
  uint32_t lo = static_cast<uint32_t>(options_.reconnect_backoff_min.count());
  uint32_t hi = static_cast<uint32_t>(options_.reconnect_backoff_max.count());
  backoff_ms_ = backoff_ms_ == 0 ? std::max<uint32_t>(1, lo) : std::min(hi, backoff_ms_ * 2);
  static thread_local std::minstd_rand rng(std::random_device{}());
  uint32_t jitter = backoff_ms_ / 4 ? rng() % (backoff_ms_ / 4 + 1) : 0;
  uv_timer_start(&reconnect_timer_, &impl::on_reconnect_timer, backoff_ms_ + jitter, 0);
}

void client::impl::on_reconnect_timer(uv_timer_t* t) {
  auto self = static_cast<impl*>(t->data);
  if (self->state_ == state::disconnected) self->connect_now();
}

// ---------------------------------------------------------------------------
// Writing
// ---------------------------------------------------------------------------

void client::impl::send_frame(flatbuffers::DetachedBuffer frame) {
  write_queue_.push_back(std::move(frame));
  if (!write_in_flight_) flush_writes();
}

void client::impl::flush_writes() {
  if (write_queue_.empty() || write_in_flight_ || !tcp_) return;
  auto w = new write_req;
  w->owner = this;
  w->generation = generation_;
  w->frames = std::move(write_queue_);
  write_queue_.clear();
  std::vector<uv_buf_t> bufs;
  bufs.reserve(w->frames.size());
  for (auto& f : w->frames) bufs.push_back(uv_buf_init(reinterpret_cast<char*>(f.data()), static_cast<unsigned>(f.size())));
  write_in_flight_ = true;
  int rc = uv_write(&w->req, reinterpret_cast<uv_stream_t*>(tcp_), bufs.data(), static_cast<unsigned>(bufs.size()),
                    &impl::on_write);
  if (rc != 0) {
    delete w;
    write_in_flight_ = false;
    drop_connection(std::string("write failed: ") + uv_strerror(rc));
  }
}

void client::impl::on_write(uv_write_t* req, int status) {
  auto w = reinterpret_cast<write_req*>(req);
  impl* self = w->owner;
  bool current = w->generation == self->generation_ && self->state_ != state::closed;
  delete w;
  if (!current) return;
  self->write_in_flight_ = false;
  if (status < 0) return self->drop_connection(std::string("write failed: ") + uv_strerror(status));
  self->flush_writes();
}

// ---------------------------------------------------------------------------
// Requests
// ---------------------------------------------------------------------------

void client::impl::enqueue_request(request r) {
  if (state_ != state::ready) {
    unsent_.push_back(std::move(r));
    return;
  }
  auto frame = std::move(r.frame);
  uint64_t rid = r.rid;
  inflight_.emplace(rid, std::move(r));
  send_frame(std::move(frame));
}

result<detail::reply_ptr> client::impl::roundtrip(flatbuffers::FlatBufferBuilder& fbb, uint64_t rid) {
  if (std::this_thread::get_id() == io_id_) {
    return error(errc::invalid_argument, "blocking client call from a client callback");
  }
  {
    std::lock_guard lk(pub_mu_);
    if (closing_) return error(errc::shutting_down, "client closed");
  }
  auto promise = std::make_shared<std::promise<result<detail::reply_ptr>>>();
  auto future = promise->get_future();
  request r;
  r.rid = rid;
  r.frame = fbb.Release();
  r.deadline = steady::now() + options_.request_timeout;
  r.on_reply = [promise](const error* err, const wire::Frame* f, std::span<const uint8_t> bytes) {
    if (err) return promise->set_value(*err);
    if (auto e = f->body_as_Error()) return promise->set_value(error_from_wire(*e));
    promise->set_value(detail::reply_ptr(detail::delivery::copy_of(bytes)));
  };
  post([this, r = std::make_shared<request>(std::move(r))]() mutable { enqueue_request(std::move(*r)); });
  // The I/O thread answers every request by its deadline; the margin only
  // guards against a stuck loop.
  if (future.wait_for(options_.request_timeout + std::chrono::seconds(5)) != std::future_status::ready) {
    return error(errc::timeout, "no answer from the client I/O thread");
  }
  return future.get();
}

void client::impl::housekeeping() {
  auto now = steady::now();
  if ((state_ == state::connecting || state_ == state::handshaking) &&
      now - connect_started_ > options_.connect_timeout) {
    return drop_connection("timed out connecting to " + options_.broker);
  }
  while (!unsent_.empty() && unsent_.front().deadline <= now) {
    auto r = std::move(unsent_.front());
    unsent_.pop_front();
    error e(errc::unavailable, "not connected to " + options_.broker + ": " + last_error_);
    r.on_reply(&e, nullptr, {});
  }
  std::vector<reply_fn> expired;
  for (auto it = inflight_.begin(); it != inflight_.end();) {
    if (it->second.deadline <= now) {
      expired.push_back(std::move(it->second.on_reply));
      it = inflight_.erase(it);
    } else {
      ++it;
    }
  }
  error late(errc::timeout, "no reply from the broker within the request timeout");
  for (auto& fn : expired) fn(&late, nullptr, {});
  // Records that could not even be sent in time.
  if (state_ != state::ready) {
    std::vector<std::pair<std::vector<publish_callback>, size_t>> dead;
    {
      std::lock_guard lk(pub_mu_);
      auto too_old = [&](steady::time_point t) { return now - t > options_.request_timeout; };
      while (!sealed_.empty() && too_old(sealed_.front().started)) {
        dead.emplace_back(std::move(sealed_.front().callbacks), sealed_.front().bytes);
        sealed_.pop_front();
      }
      for (auto& [topic, b] : open_) {
        if (!b.records.empty() && too_old(b.started)) {
          auto s = seal(topic, b);
          dead.emplace_back(std::move(s.callbacks), s.bytes);
        }
      }
    }
    error e(errc::unavailable, "not connected to " + options_.broker + ": " + last_error_);
    for (auto& [cbs, bytes] : dead) {
      for (auto& cb : cbs) cb(e);
      std::lock_guard lk(pub_mu_);
      pending_bytes_ -= bytes;
      pending_records_ -= cbs.size();
    }
    if (!dead.empty()) pub_cv_.notify_all();
  }
}

void client::impl::on_timer(uv_timer_t* t) { static_cast<impl*>(t->data)->housekeeping(); }

void client::impl::fail_all(errc code, const std::string& why) {
  error e(code, why);
  auto unsent = std::move(unsent_);
  unsent_.clear();
  for (auto& r : unsent) r.on_reply(&e, nullptr, {});
  auto inflight = std::move(inflight_);
  inflight_.clear();
  for (auto& [rid, r] : inflight) r.on_reply(&e, nullptr, {});
  std::vector<std::vector<publish_callback>> cbs;
  {
    std::lock_guard lk(pub_mu_);
    for (auto& s : sealed_) cbs.push_back(std::move(s.callbacks));
    sealed_.clear();
    for (auto& [topic, b] : open_) {
      if (!b.records.empty()) cbs.push_back(seal(topic, b).callbacks);
    }
    pending_bytes_ = 0;
    pending_records_ = 0;
  }
  for (auto& v : cbs) {
    for (auto& cb : v) cb(e);
  }
  pub_cv_.notify_all();
}

// ---------------------------------------------------------------------------
// Publishing
// ---------------------------------------------------------------------------

void client::impl::publish_async(std::string_view topic, const record& r, publish_callback done, bool urgent) {
  if (!done) done = [](const result<publish_ack>&) {};
  size_t size = r.payload.size() + (r.key ? r.key->size() : 0);
  for (auto& h : r.headers) size += h.name.size() + h.value.size();
  if (size > max_message_bytes()) {
    return done(error(errc::too_large, "record of " + std::to_string(size) + " bytes exceeds max_message_bytes (" +
                                           std::to_string(max_message_bytes()) + ")"));
  }
  std::unique_lock lk(pub_mu_);
  if (closing_) {
    lk.unlock();
    return done(error(errc::shutting_down, "client closed"));
  }
  // Backpressure: wait while too much is unacked (always admit one record).
  if (pending_bytes_ > 0 && pending_bytes_ + size > options_.max_pending_bytes) {
    bool room = pub_cv_.wait_for(lk, options_.request_timeout, [&] {
      return closing_ || pending_bytes_ == 0 || pending_bytes_ + size <= options_.max_pending_bytes;
    });
    if (!room || closing_) {
      lk.unlock();
      return done(error(room ? errc::shutting_down : errc::timeout,
                        room ? "client closed" : "publish buffer full for the whole request timeout"));
    }
  }
  auto it = open_.find(topic);
  if (it == open_.end()) {
    // Sized for a full batch so it never grows by copying.
    size_t capacity = std::min<size_t>(options_.max_batch_bytes, max_frame_bytes_.load() / 2) + 64 * 1024;
    it = open_.emplace(std::piecewise_construct, std::forward_as_tuple(topic), std::forward_as_tuple(capacity)).first;
  }
  open_batch& b = it->second;
  auto& fbb = b.fbb;
  flatbuffers::Offset<flatbuffers::Vector<uint8_t>> key, payload;
  flatbuffers::Offset<flatbuffers::Vector<flatbuffers::Offset<wire::Header>>> headers;
  if (r.key) key = fbb.CreateVector(reinterpret_cast<const uint8_t*>(r.key->data()), r.key->size());
  if (!r.headers.empty()) {
    std::vector<flatbuffers::Offset<wire::Header>> hs;
    hs.reserve(r.headers.size());
    for (auto& h : r.headers) {
      auto n = fbb.CreateString(h.name.data(), h.name.size());
      auto v = fbb.CreateVector(reinterpret_cast<const uint8_t*>(h.value.data()), h.value.size());
      hs.push_back(wire::CreateHeader(fbb, n, v));
    }
    headers = fbb.CreateVector(hs);
  }
  payload = fbb.CreateVector(reinterpret_cast<const uint8_t*>(r.payload.data()), r.payload.size());
  if (b.records.empty()) b.started = steady::now();
  b.records.push_back(wire::CreateRecord(fbb, key, headers, payload));
  b.callbacks.push_back(std::move(done));
  b.bytes += size;
  pending_bytes_ += size;
  pending_records_ += 1;
  size_t frame_budget = std::min<size_t>(options_.max_batch_bytes, max_frame_bytes_.load() / 2);
  if (b.bytes >= frame_budget) sealed_.push_back(seal(it->first, b));
  if (urgent) flush_requested_ = true;
  lk.unlock();
  wake_io();
}

client::impl::sealed_batch client::impl::seal(const std::string& topic, open_batch& b) {
  auto vec = b.fbb.CreateVector(b.records);
  b.fbb.Finish(wire::CreateRecordBatch(b.fbb, vec), wire::RecordBatchIdentifier());
  sealed_batch s{topic, b.fbb.Release(), std::move(b.callbacks), b.bytes, b.started};
  b.fbb.Clear();
  b.records.clear();
  b.callbacks.clear();
  b.bytes = 0;
  return s;
}

void client::impl::pump_publishes() {
  if (state_ != state::ready) return;
  std::vector<sealed_batch> to_send;
  steady::time_point next_linger{};
  {
    std::lock_guard lk(pub_mu_);
    auto now = steady::now();
    while (inflight_batches_ + to_send.size() < kMaxInflightBatches) {
      if (!sealed_.empty()) {
        to_send.push_back(std::move(sealed_.front()));
        sealed_.pop_front();
        continue;
      }
      bool found = false;
      for (auto& [topic, b] : open_) {
        if (b.records.empty()) continue;
        if (flush_requested_ || options_.linger.count() == 0 || now - b.started >= options_.linger) {
          to_send.push_back(seal(topic, b));
          found = true;
          break;
        }
      }
      if (!found) break;
    }
    bool all_sent = sealed_.empty();
    for (auto& [topic, b] : open_) {
      if (b.records.empty()) continue;
      all_sent = false;
      auto due = b.started + options_.linger;
      if (next_linger == steady::time_point{} || due < next_linger) next_linger = due;
    }
    if (all_sent) flush_requested_ = false;
  }
  for (auto& b : to_send) send_batch(std::move(b));
  if (options_.linger.count() > 0 && next_linger != steady::time_point{} &&
      inflight_batches_ < kMaxInflightBatches) {
    auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(next_linger - steady::now()).count();
    uv_timer_start(&linger_timer_, &impl::on_linger_timer, std::max<int64_t>(wait, 1), 0);
  }
}

void client::impl::on_linger_timer(uv_timer_t* t) { static_cast<impl*>(t->data)->pump_publishes(); }

void client::impl::send_batch(sealed_batch b) {
  flatbuffers::FlatBufferBuilder fbb(b.data.size() + b.topic.size() + 128, &detail::buffer_pool::instance());
  auto topic = fbb.CreateString(b.topic);
  auto nested = wire::create_nested(fbb, {b.data.data(), b.data.size()});
  uint64_t rid = next_request_id();
  wire::finish_frame(fbb, rid, wire::CreatePublish(fbb, topic, nested));
  ++inflight_batches_;
  auto shared = std::make_shared<sealed_batch>(std::move(b));
  request r;
  r.rid = rid;
  r.frame = fbb.Release();
  r.deadline = steady::now() + options_.request_timeout;
  r.on_reply = [this, shared](const error* err, const wire::Frame* f, std::span<const uint8_t>) {
    --inflight_batches_;
    auto& cbs = shared->callbacks;
    if (!err && f->body_as_PublishAck() && f->body_as_PublishAck()->count() == cbs.size()) {
      auto ack = f->body_as_PublishAck();
      for (size_t i = 0; i < cbs.size(); ++i) cbs[i](publish_ack{ack->base_offset() + i, ack->timestamp_us()});
    } else {
      error e = err                      ? *err
                : f->body_as_Error()     ? error_from_wire(*f->body_as_Error())
                                         : error(errc::protocol, "unexpected reply to Publish");
      for (auto& cb : cbs) cb(e);
    }
    {
      std::lock_guard lk(pub_mu_);
      pending_bytes_ -= std::min(pending_bytes_, shared->bytes);
      pending_records_ -= std::min(pending_records_, cbs.size());
    }
    pub_cv_.notify_all();
    if (state_ == state::ready) pump_publishes();
  };
  enqueue_request(std::move(r));
}

result<void> client::impl::flush(std::chrono::milliseconds timeout) {
  if (std::this_thread::get_id() == io_id_) {
    return error(errc::invalid_argument, "flush() from a client callback");
  }
  std::unique_lock lk(pub_mu_);
  if (pending_records_ == 0) return {};
  flush_requested_ = true;
  lk.unlock();
  wake_io();
  lk.lock();
  if (!pub_cv_.wait_for(lk, timeout, [&] { return pending_records_ == 0; })) {
    return error(errc::timeout, std::to_string(pending_records_) + " records still unacknowledged");
  }
  return {};
}

// ---------------------------------------------------------------------------
// Subscriptions
// ---------------------------------------------------------------------------

void client::impl::ensure_subscribed(const std::shared_ptr<detail::sub_state>& s,
                                     std::function<void(const error*)> done) {
  if (s->broker_id != 0) {
    if (done) done(nullptr);
    return;
  }
  if (s->ended) {
    if (done) done(&s->end_error);
    return;
  }
  if (done) s->subscribe_waiters.push_back(std::move(done));
  if (s->subscribing) return;
  s->subscribing = true;
  flatbuffers::FlatBufferBuilder fbb(256);
  auto topic = fbb.CreateString(s->topic);
  auto group = s->group.empty() ? 0 : fbb.CreateString(s->group);
  const auto& o = s->options;
  wire::StartPosition start(static_cast<wire::StartKind>(o.start.what), o.start.value);
  if (s->group.empty() && s->have_resume) start = wire::StartPosition(wire::StartKind::offset, s->resume_offset);
  wire::SubscribeBuilder sb(fbb);
  sb.add_topic(topic);
  if (!s->group.empty()) sb.add_group(group);
  sb.add_start(&start);
  sb.add_max_in_flight(o.max_in_flight);
  if (o.ack_timeout) sb.add_ack_timeout_ms(static_cast<uint32_t>(o.ack_timeout->count()));
  if (o.max_deliveries) sb.add_max_deliveries(*o.max_deliveries);
  uint64_t rid = next_request_id();
  wire::finish_frame(fbb, rid, sb.Finish());
  request r;
  r.rid = rid;
  r.frame = fbb.Release();
  r.deadline = steady::now() + options_.request_timeout;
  r.on_reply = [this, s](const error* err, const wire::Frame* f, std::span<const uint8_t>) {
    s->subscribing = false;
    std::optional<error> failure;
    if (err) {
      failure = *err;
    } else if (auto e = f->body_as_Error()) {
      failure = error_from_wire(*e);
    } else if (auto ok = f->body_as_SubscribeOk()) {
      s->broker_id = ok->subscription_id();
      by_broker_id_[s->broker_id] = s;
      if (s->group.empty() && !s->have_resume) {
        s->resume_offset = ok->start_offset();
        s->have_resume = true;
      }
    } else {
      failure = error(errc::protocol, "unexpected reply to Subscribe");
    }
    auto waiters = std::move(s->subscribe_waiters);
    s->subscribe_waiters.clear();
    for (auto& w : waiters) w(failure ? &*failure : nullptr);
  };
  enqueue_request(std::move(r));
}

result<std::shared_ptr<detail::sub_state>> client::impl::subscribe(std::string_view topic, std::string_view group,
                                                                   message_handler handler,
                                                                   subscribe_options options) {
  if (std::this_thread::get_id() == io_id_) {
    return error(errc::invalid_argument, "subscribe() from a client callback");
  }
  if (!handler) return error(errc::invalid_argument, "a subscription needs a handler");
  if (options.max_in_flight == 0) options.max_in_flight = wire::kDefaultMaxInFlight;
  auto s = std::make_shared<detail::sub_state>();
  s->local_id = next_local_id_++;
  s->topic = std::string(topic);
  s->group = std::string(group);
  s->options = std::move(options);
  s->handler = std::move(handler);
  s->owner = this;
  {
    std::lock_guard lk(subs_mu_);
    subs_[s->local_id] = s;
  }
  s->worker = std::thread([s] { s->run_worker(); });

  auto promise = std::make_shared<std::promise<error>>();
  auto future = promise->get_future();
  post([this, s, promise] {
    ensure_subscribed(s, [promise](const error* e) { promise->set_value(e ? *e : error()); });
  });
  error e = future.wait_for(options_.request_timeout + std::chrono::seconds(5)) == std::future_status::ready
                ? future.get()
                : error(errc::timeout, "no answer from the client I/O thread");
  if (e.code != errc::ok) {
    unsubscribe(s);
    return e;
  }
  return s;
}

void client::impl::unsubscribe(const std::shared_ptr<detail::sub_state>& s) {
  s->stop_worker();
  {
    std::lock_guard lk(s->owner_mu);
    s->owner = nullptr;
  }
  // On the I/O thread: first the acks the handler made (they need this
  // subscription's broker id), then Unsubscribe, then forget it.
  post([this, s] {
    send_settles();
    {
      std::lock_guard lk(subs_mu_);
      subs_.erase(s->local_id);
    }
    s->ended = true;
    if (s->broker_id == 0 || state_ != state::ready) return;
    by_broker_id_.erase(s->broker_id);
    std::vector<uint64_t> held;
    {
      std::lock_guard lk(s->mu);
      held.assign(s->held.begin(), s->held.end());
    }
    flatbuffers::FlatBufferBuilder fbb(64 + held.size() * 8);
    auto hv = s->group.empty() ? 0 : fbb.CreateVector(held);
    wire::finish_frame(fbb, next_request_id(), wire::CreateUnsubscribe(fbb, s->broker_id, hv));
    s->broker_id = 0;
    send_frame(fbb.Release());  // the Ok that comes back finds no request and is dropped
  });
}

void client::impl::end_subscription(const std::shared_ptr<detail::sub_state>& s, const error& why) {
  if (s->ended) return;
  s->ended = true;
  s->end_error = why;
  if (s->broker_id) by_broker_id_.erase(s->broker_id);
  s->broker_id = 0;
  if (s->options.on_end) s->options.on_end(why);
}

void client::impl::on_subscription_ended(const wire::SubscriptionEnded& e) {
  auto it = by_broker_id_.find(e.subscription_id());
  if (it == by_broker_id_.end()) return;
  auto s = it->second;
  end_subscription(s, error(static_cast<errc>(e.code()), e.message() ? e.message()->str() : ""));
}

void client::impl::on_deliver(std::span<const uint8_t> bytes, const wire::Deliver& d) {
  auto it = by_broker_id_.find(d.subscription_id());
  if (it == by_broker_id_.end()) return;  // ended or from a previous subscribe
  auto s = it->second;
  auto frame = detail::delivery::copy_of(bytes);
  // Re-read from the copy: messages point into it.
  auto deliver = frame->frame()->body_as_Deliver();
  std::vector<message> batch;
  for (auto db : *deliver->batches()) {
    auto records = db->data_nested_root()->records();
    auto add = [&](uint32_t index, uint32_t attempt) {
      message m;
      m.frame_ = frame;
      m.sub_ = s;
      m.record_ = records->Get(index);
      m.offset_ = db->base_offset() + index;
      m.timestamp_us_ = db->timestamp_us();
      m.attempt_ = attempt;
      batch.push_back(std::move(m));
    };
    if (db->indexes()) {
      auto attempts = db->attempts();
      for (uint32_t j = 0; j < db->indexes()->size(); ++j) {
        uint32_t index = db->indexes()->Get(j);
        if (index >= records->size()) return drop_connection("broker delivered an index outside its batch");
        add(index, attempts && j < attempts->size() ? attempts->Get(j) : 1);
      }
    } else {
      uint64_t end = uint64_t{db->first()} + db->count();
      if (end > records->size()) return drop_connection("broker delivered a range outside its batch");
      for (uint32_t i = db->first(); i < end; ++i) add(i, 1);
    }
  }
  if (batch.empty()) return;
  if (s->group.empty()) {
    s->resume_offset = batch.back().offset() + 1;
    s->have_resume = true;
  }
  {
    std::lock_guard lk(s->mu);
    // Closed (the Unsubscribe is on its way): nothing more is handed out, and
    // queued messages, each holding `s`, would keep it alive for ever.
    if (s->stopping) return;
    for (auto& m : batch) s->queue.push_back(std::move(m));
  }
  s->cv.notify_one();
}

void client::impl::post_settle(uint64_t local_id, uint64_t offset, detail::settle_kind kind, uint32_t delay_ms) {
  {
    std::lock_guard lk(settle_mu_);
    settles_.push_back({local_id, offset, kind, delay_ms});
  }
  wake_io();
}

void client::impl::post_settles(uint64_t local_id, const std::vector<uint64_t>& offsets, detail::settle_kind kind) {
  {
    std::lock_guard lk(settle_mu_);
    for (uint64_t o : offsets) settles_.push_back({local_id, o, kind, 0});
  }
  wake_io();
}

void client::impl::post_credit(uint64_t local_id, uint32_t records) {
  {
    std::lock_guard lk(settle_mu_);
    credits_[local_id] += records;
  }
  wake_io();
}

void client::impl::send_settles() {
  if (state_ != state::ready) return;  // the broker redelivers what we could not ack
  std::vector<settle_item> items;
  std::unordered_map<uint64_t, uint32_t> credits;
  {
    std::lock_guard lk(settle_mu_);
    items.swap(settles_);
    credits.swap(credits_);
  }
  if (items.empty() && credits.empty()) return;
  std::unordered_map<uint64_t, uint64_t> broker_ids;  // local id -> broker id
  {
    std::lock_guard lk(subs_mu_);
    for (auto& [id, s] : subs_) broker_ids[id] = s->broker_id;
  }
  // One frame per (subscription, kind, delay), in the order they were made.
  using key = std::tuple<uint64_t, detail::settle_kind, uint32_t>;  // broker id, kind, delay
  std::map<key, std::vector<uint64_t>> grouped;
  for (auto& it : items) {
    auto bid = broker_ids.find(it.local_id);
    if (bid == broker_ids.end() || bid->second == 0) continue;
    grouped[{bid->second, it.kind, it.delay_ms}].push_back(it.offset);
  }
  for (auto& [k, offsets] : grouped) {
    auto [bid, kind, delay] = k;
    flatbuffers::FlatBufferBuilder fbb(64 + offsets.size() * 8);
    auto v = fbb.CreateVector(offsets);
    if (kind == detail::settle_kind::ack) {
      wire::finish_frame(fbb, next_request_id(), wire::CreateAck(fbb, bid, v));
    } else {
      wire::finish_frame(fbb, next_request_id(),
                         wire::CreateNack(fbb, bid, v, delay, kind == detail::settle_kind::release));
    }
    send_frame(fbb.Release());
  }
  for (auto& [local, n] : credits) {
    uint64_t bid = broker_ids.count(local) ? broker_ids[local] : 0;
    if (bid == 0) continue;
    flatbuffers::FlatBufferBuilder fbb(64);
    wire::finish_frame(fbb, next_request_id(), wire::CreateCredit(fbb, bid, n));
    send_frame(fbb.Release());
  }
}

// ---------------------------------------------------------------------------
// sub_state (worker side)
// ---------------------------------------------------------------------------

// The handler thread. Takes messages in batches (one lock per batch), hands
// each to the handler by move, and returns acks (auto_ack) and credit
// (ephemeral) in batches too: when it has done a quarter of the window, and
// whenever it runs out of messages.
void detail::sub_state::run_worker() {
  const bool is_group = !group.empty();
  const bool track_held = is_group && !options.auto_ack;  // auto-acked ones settle as the handler returns
  const uint32_t every = credit_batch(options.max_in_flight);
  std::vector<message> batch;
  std::vector<uint64_t> acks;
  uint32_t processed = 0;  // ephemeral: handled since the last credit
  auto hand_back = [&] {
    if (acks.empty() && processed == 0) return;
    std::lock_guard lk(owner_mu);
    if (owner) {
      if (!acks.empty()) owner->post_settles(local_id, acks, settle_kind::ack);
      if (processed) owner->post_credit(local_id, processed);
    }
    acks.clear();
    processed = 0;
  };
  while (true) {
    {
      std::unique_lock lk(mu);
      if (queue.empty()) {
        lk.unlock();
        hand_back();  // idle: let the broker send more
        lk.lock();
      }
      cv.wait(lk, [&] { return stopping || !queue.empty(); });
      if (stopping) break;
      size_t n = std::min<size_t>(queue.size(), 256);
      for (size_t i = 0; i < n; ++i) {
        batch.push_back(std::move(queue.front()));
        queue.pop_front();
      }
    }
    for (auto& m : batch) {
      if (stop_flag.load(std::memory_order_relaxed)) break;  // the rest was never handed out
      uint64_t offset = m.offset();
      if (track_held) {
        std::lock_guard lk(mu);
        held.insert(offset);
      }
      bool threw = true;
      try {
        handler(std::move(m));
        threw = false;
      } catch (const std::exception& e) {
        std::fprintf(stderr, "wharf: subscription handler for %s threw: %s\n", topic.c_str(), e.what());
      } catch (...) {
        std::fprintf(stderr, "wharf: subscription handler for %s threw\n", topic.c_str());
      }
      delivered.fetch_add(1, std::memory_order_relaxed);
      if (!is_group) {
        if (++processed >= every) hand_back();
      } else if (threw) {
        settle(offset, settle_kind::nack, 0, !track_held);  // a handler that throws failed this delivery
      } else if (options.auto_ack) {
        acks.push_back(offset);
        if (acks.size() >= every) hand_back();
      }
    }
    batch.clear();
  }
  hand_back();  // acks of what was handled go out before any Unsubscribe
}

void detail::sub_state::stop_worker() {
  {
    std::lock_guard lk(mu);
    stopping = true;
    stop_flag.store(true, std::memory_order_relaxed);
    queue.clear();
  }
  cv.notify_all();
  if (!worker.joinable()) return;
  if (worker.get_id() == std::this_thread::get_id()) {
    worker.detach();  // closed from its own handler; the thread holds a reference to us
  } else {
    worker.join();
  }
}

void detail::sub_state::settle(uint64_t offset, settle_kind kind, uint32_t delay_ms, bool untracked) {
  if (group.empty()) return;
  if (!untracked) {
    std::lock_guard lk(mu);
    if (held.erase(offset) == 0) return;  // settled already (or never handed out)
  }
  std::lock_guard lk(owner_mu);
  if (owner) owner->post_settle(local_id, offset, kind, delay_ms);
}

}  // namespace wharf
