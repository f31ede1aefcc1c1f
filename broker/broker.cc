#include "broker.h"

#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <set>

#include "groups/consumer_group.h"
#include "http/http_api.h"
#include "log.h"
#include "server/session.h"
#include "webhooks/webhook.h"
#include "storage/crc32c.h"
#include "subscriptions/subscription.h"
#include "wire.h"

namespace wharf {
namespace {

// Publish backpressure. With the tail cache (cache_bytes) and one write
// transaction (16 MiB of appends) these keep broker memory under 100 MiB
// (target 7 of docs/PERFORMANCE.md; 16/48 MiB measured 149 MiB peak).
constexpr uint64_t kSessionPublishLimit = 8ull << 20;   // unacked publish bytes per connection
constexpr uint64_t kWriterQueueLimit = 24ull << 20;     // bytes waiting for the writer, all sessions
constexpr uint32_t kStatsIntervalMs = 1000;
constexpr uint32_t kShutdownGraceMs = 10000;
constexpr uint32_t kGroupTimerMs = 20;  // resolution of ack timeouts and nack delays

}  // namespace

broker::broker(broker_config config)
    : config_(std::move(config)), topics_(config_.cache_bytes) {}

broker::~broker() {
  sessions_.clear();
  writer_.reset();
  http_.reset();
  store_.reset();
}

// ---------------------------------------------------------------------------
// Start-up
// ---------------------------------------------------------------------------

int broker::run() {
  started_us_ = wire::now_us();
  uv_loop_init(&loop_);
  signal(SIGPIPE, SIG_IGN);
  raise_fd_limit();
  if (!open_store()) {
    uv_loop_close(&loop_);
    return 1;
  }
  // Signals first: once "listening on" is logged, a SIGTERM must find its
  // handler (before, one sent right after that line killed the process).
  uv_signal_init(&loop_, &sigint_);
  uv_signal_init(&loop_, &sigterm_);
  sigint_.data = sigterm_.data = this;
  uv_signal_start(&sigint_, &broker::on_signal, SIGINT);
  uv_signal_start(&sigterm_, &broker::on_signal, SIGTERM);
  bool listening = listen();
  if (listening && !config_.http_listen.empty()) {
    http_ = std::make_unique<http::http_api>(*this);
    if (!http_->listen()) {
      uv_close(reinterpret_cast<uv_handle_t*>(&server_), nullptr);
      listening = false;
    }
  }
  if (!listening) {
    uv_close(reinterpret_cast<uv_handle_t*>(&sigint_), nullptr);
    uv_close(reinterpret_cast<uv_handle_t*>(&sigterm_), nullptr);
    writer_->stop();
    uv_run(&loop_, UV_RUN_DEFAULT);  // finishes the closes
    uv_loop_close(&loop_);
    return 1;
  }
  uv_timer_init(&loop_, &retention_timer_);
  uv_timer_init(&loop_, &stats_timer_);
  uv_timer_init(&loop_, &shutdown_timer_);
  uv_timer_init(&loop_, &group_timer_);
  retention_timer_.data = stats_timer_.data = shutdown_timer_.data = group_timer_.data = this;
  uv_timer_start(&group_timer_, &broker::on_group_timer, kGroupTimerMs, kGroupTimerMs);
  uv_timer_start(&retention_timer_, &broker::on_retention_timer, config_.retention_check_ms,
                 config_.retention_check_ms);
  uv_timer_start(&stats_timer_, &broker::on_stats_timer, kStatsIntervalMs, kStatsIntervalMs);
  handles_open_ = true;
  start_webhooks();

  uv_run(&loop_, UV_RUN_DEFAULT);
  int rc = uv_loop_close(&loop_);
  if (rc != 0) log_warn("event loop closed with open handles: %s", uv_strerror(rc));
  log_info("wharfd stopped");
  return 0;
}

bool broker::open_store() {
  storage::store_options opts{config_.data_dir, config_.map_size, config_.fsync};
  std::string error;
  store_ = storage::log_store::open(opts, error);
  if (!store_) {
    log_error("%s", error.c_str());
    return false;
  }
  std::vector<std::pair<storage::topic_config, storage::topic_state>> loaded;
  std::vector<uint32_t> orphans;
  {
    auto t = store_->begin_read();
    if (!t.ok()) {
      log_error("cannot read the store in %s", config_.data_dir.c_str());
      return false;
    }
    loaded = t.load_topics();
    std::set<uint32_t> live;
    for (auto& [cfg, st] : loaded) {
      live.insert(cfg.id);
      topic& tp = topics_.add(cfg, st);
      for (auto& [name, bytes] : t.load_groups(cfg.id)) {
        if (auto g = consumer_group::decode(tp, name, bytes)) {
          tp.groups[name] = std::move(g);
        } else {
          log_error("group %s/%s: stored state is corrupted; skipping it", cfg.name.c_str(), name.c_str());
        }
      }
    }
    for (uint32_t id : t.log_topic_ids()) {
      if (!live.count(id)) orphans.push_back(id);
    }
  }
  uint64_t records = 0;
  for (auto& [cfg, st] : loaded) records += st.next_offset - st.first_offset;
  log_info("opened %s: %zu topics, %lu records, fsync=%s", config_.data_dir.c_str(), loaded.size(),
           records, to_string(config_.fsync));
  if (!orphans.empty()) log_info("purging the logs of %zu deleted topics", orphans.size());
  uint32_t interval = config_.fsync == storage::fsync_policy::interval ? config_.fsync_interval_ms : 0;
  writer_ = std::make_unique<storage::group_commit_writer>(*store_, &loop_, loaded, orphans, interval);
  writer_->start([this] { after_completions(); });
  return true;
}

// Webhooks loaded from the store join their groups and start delivering.
void broker::start_webhooks() {
  webhook_client_ = std::make_unique<webhooks::http_client>(&loop_);
  size_t n = 0;
  for (auto& [name, t] : topics_.all()) {
    for (auto& [gname, g] : t->groups) {
      if (!g->webhook()) continue;
      g->webhook()->start(*this);
      g->dispatch(*this);
      ++n;
    }
  }
  if (n) log_info("%zu webhooks started", n);
}

// Connections need file descriptors: raise the soft limit to the hard one,
// and cap max_connections to what the limit allows (with room for LMDB,
// logs and accept's headroom).
void broker::raise_fd_limit() {
  max_connections_ = config_.max_connections;
  rlimit lim{};
  if (getrlimit(RLIMIT_NOFILE, &lim) != 0) return;
  if (lim.rlim_cur < lim.rlim_max) {
    rlimit want = lim;
    want.rlim_cur = lim.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &want) == 0) lim = want;
  }
  constexpr rlim_t kReserved = 64;
  if (lim.rlim_cur != RLIM_INFINITY && lim.rlim_cur < max_connections_ + kReserved) {
    uint32_t allowed = lim.rlim_cur > kReserved ? static_cast<uint32_t>(lim.rlim_cur - kReserved) : 1;
    log_warn("max_connections=%u exceeds what the file descriptor limit (%lu) allows; using %u", max_connections_,
             static_cast<unsigned long>(lim.rlim_cur), allowed);
    max_connections_ = allowed;
  }
  fd_limit_ = lim.rlim_cur == RLIM_INFINITY ? 0 : static_cast<uint64_t>(lim.rlim_cur);
}

bool broker::listen() {
  auto hp = wire::parse_host_port(config_.listen);
  std::string host = hp->host == "localhost" ? "127.0.0.1" : hp->host;
  sockaddr_storage addr{};
  if (uv_ip4_addr(host.c_str(), hp->port, reinterpret_cast<sockaddr_in*>(&addr)) != 0 &&
      uv_ip6_addr(host.c_str(), hp->port, reinterpret_cast<sockaddr_in6*>(&addr)) != 0) {
    log_error("listen: '%s' is not an IP address", hp->host.c_str());
    return false;
  }
  uv_tcp_init(&loop_, &server_);
  server_.data = this;
  int rc = uv_tcp_bind(&server_, reinterpret_cast<sockaddr*>(&addr), 0);
  if (rc == 0) rc = uv_listen(reinterpret_cast<uv_stream_t*>(&server_), 511, &broker::on_connection);
  if (rc != 0) {
    log_error("cannot listen on %s: %s", config_.listen.c_str(), uv_strerror(rc));
    uv_close(reinterpret_cast<uv_handle_t*>(&server_), nullptr);
    return false;
  }
  sockaddr_storage bound{};
  int len = sizeof bound;
  uv_tcp_getsockname(&server_, reinterpret_cast<sockaddr*>(&bound), &len);
  port_ = ntohs(reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
  log_info("listening on %s:%u (max_connections=%u, fd limit %lu)", host.c_str(), port_, max_connections_,
           static_cast<unsigned long>(fd_limit_));
  if (on_listening_) on_listening_(port_);
  return true;
}

// ---------------------------------------------------------------------------
// Connections
// ---------------------------------------------------------------------------

void broker::on_connection(uv_stream_t* server, int status) {
  auto self = static_cast<broker*>(server->data);
  if (status < 0) {
    log_warn("accept failed: %s", uv_strerror(status));
    return;
  }
  auto s = std::make_unique<session>(*self, ++self->last_session_id_, self->config_.max_frame_bytes);
  if (uv_accept(server, reinterpret_cast<uv_stream_t*>(s->tcp())) != 0) {
    s->close();
    self->sessions_[s->id()] = std::move(s);
    return;
  }
  session& ref = *s;
  self->sessions_[ref.id()] = std::move(s);
  ref.start(self->config_.handshake_timeout_ms);
  self->stats_.connections_total++;
  if (self->sessions_.size() > self->max_connections_ || self->shutting_down_) {
    self->stats_.connections_refused++;
    log_warn("refusing connection from %s: %zu connections (max_connections=%u)", ref.peer().c_str(),
             self->sessions_.size() - 1, self->max_connections_);
    ref.close(self->shutting_down_ ? wire::ErrorCode::shutting_down : wire::ErrorCode::too_many_connections,
              "the broker has reached max_connections");
    return;
  }
  log_debug("session %lu: connection from %s", ref.id(), ref.peer().c_str());
}

session* broker::find_session(uint64_t id) {
  auto it = sessions_.find(id);
  return it == sessions_.end() || it->second->closing() ? nullptr : it->second.get();
}

void broker::on_session_closing(session& s) {
  paused_sessions_.erase(s.id());
  auto subs = std::move(s.subscriptions);
  s.subscriptions.clear();
  for (auto& [id, sub] : subs) sub->detach(*this, false);
}

void broker::on_session_closed(session& s) {
  log_debug("session %lu (%s): closed", s.id(), s.peer().c_str());
  sessions_.erase(s.id());
  maybe_finish_shutdown();
}

void broker::on_session_writable(session& s) {
  // Collect first: a dispatch may end subscriptions of this session.
  std::vector<subscription*> subs;
  for (auto& [id, sub] : s.subscriptions) subs.push_back(sub.get());
  for (auto* sub : subs) {
    if (s.closing() || !s.writable()) break;
    sub->dispatch(*this);
  }
}

void broker::check_backpressure(session& s) {
  if (s.publish_bytes_in_flight > kSessionPublishLimit || writer_->queued_bytes() > kWriterQueueLimit) {
    s.pause_reading();
    paused_sessions_.insert(s.id());
  }
}

// ---------------------------------------------------------------------------
// Records
// ---------------------------------------------------------------------------

void broker::notify_new_records(topic& t) {
  if (t.has_new_records) return;
  t.has_new_records = true;
  topics_with_news_.push_back(t.config.id);
}

void broker::after_completions() {
  auto ids = std::move(topics_with_news_);
  topics_with_news_.clear();
  for (uint32_t id : ids) {
    topic* t = topics_.find(id);
    if (!t) continue;
    t->has_new_records = false;
    dispatch_topic(*t);
  }
  if (!paused_sessions_.empty() && writer_->queued_bytes() <= kWriterQueueLimit) {
    std::vector<uint64_t> paused(paused_sessions_.begin(), paused_sessions_.end());
    for (uint64_t id : paused) {
      session* s = find_session(id);
      if (!s) {
        paused_sessions_.erase(id);
      } else if (s->publish_bytes_in_flight <= kSessionPublishLimit) {
        paused_sessions_.erase(id);
        s->resume_reading();
      }
    }
  }
}

void broker::append(topic& t, std::shared_ptr<storage::batch> data, append_done done) {
  data->topic_id = t.config.id;
  auto op = std::make_unique<storage::write_op>();
  op->what = storage::write_op::kind::append;
  op->data = std::move(data);
  op->done = [this, done = std::move(done)](storage::write_op& op) {
    const storage::batch& b = *op.data;
    if (op.error == storage::store_error::ok) {
      if (topic* t = topics_.find(b.topic_id)) {
        t->state = op.state;  // completions arrive in commit order
        topics_.cache_batch(*t, op.data);
        notify_new_records(*t);
        t->counters.publish_records += b.count;
        t->counters.publish_bytes += b.bytes().size();
      }
      stats_.publish_records += b.count;
      stats_.publish_bytes += b.bytes().size();
    }
    done(op.error, b);
  };
  writer_->submit(std::move(op));
}

void broker::append_to(const std::string& name, std::shared_ptr<storage::batch> data, append_done done) {
  topic* t = topics_.find(name);
  if (t && !t->deleting) return append(*t, std::move(data), std::move(done));
  if (t) return done(storage::store_error::not_found, *data);
  // Create, then append. Completions run in submission order, so appends
  // queued behind this one for the same topic keep their order.
  auto op = std::make_unique<storage::write_op>();
  op->what = storage::write_op::kind::create_topic;
  op->config.name = name;
  op->config.retention_ms = config_.default_retention_ms;
  op->config.retention_bytes = config_.default_retention_bytes;
  op->done = [this, data = std::move(data), done = std::move(done)](storage::write_op& op) mutable {
    if (op.error == storage::store_error::ok) {
      topics_.add(op.config, op.state);
      log_info("created topic %s (id %u) on first append", op.config.name.c_str(), op.config.id);
    }
    topic* t = topics_.find(op.config.name);
    if (!t || t->deleting) {
      return done(op.error == storage::store_error::ok ? storage::store_error::not_found : op.error, *data);
    }
    append(*t, std::move(data), std::move(done));
  };
  writer_->submit(std::move(op));
}

void broker::dispatch_topic(topic& t) {
  auto readers = t.readers;  // a dispatch may end subscriptions
  for (auto* r : readers) r->dispatch(*this);
  for (auto& [name, g] : t.groups) g->dispatch(*this);
}

storage::batch_ptr broker::batch_at(topic& t, uint64_t offset) {
  if (auto b = t.cache.find(offset)) return b;
  auto txn = store_->begin_read();
  if (!txn.ok()) return nullptr;
  // Skip (and report) batches that fail their checks rather than stall readers on them.
  for (int skipped = 0; skipped < 1000; ++skipped) {
    auto sb = txn.batch_at(t.config.id, offset);
    if (!sb) return nullptr;
    auto b = storage::batch::copy_of(t.config.id, sb->count, sb->data);
    bool crc_ok = storage::crc32c(b->bytes().data(), b->bytes().size()) == sb->crc;
    auto records = crc_ok ? wire::verify_record_batch(b->bytes()) : nullptr;
    if (records && records->records()->size() == sb->count) {
      b->base_offset = sb->base_offset;
      b->timestamp_us = sb->timestamp_us;
      b->stored_bytes = static_cast<uint32_t>(sb->stored_bytes);
      return b;
    }
    log_error("topic %s: stored batch at offset %lu (%u records) is corrupted; skipping it",
              t.config.name.c_str(), sb->base_offset, sb->count);
    offset = sb->base_offset + sb->count;
  }
  return nullptr;
}

void broker::remove_topic(topic& t) {
  auto readers = t.readers;
  for (auto* r : readers) {
    session& s = r->owner();
    flatbuffers::FlatBufferBuilder fbb(128);
    auto msg = fbb.CreateString("topic " + t.config.name + " was deleted");
    wire::finish_frame(fbb, 0, wire::CreateSubscriptionEnded(fbb, r->id(), wire::ErrorCode::unknown_topic, msg));
    s.send(fbb);
    auto owned = std::move(s.subscriptions[r->id()]);
    s.subscriptions.erase(r->id());
    owned->detach(*this, false);
  }
  for (auto& [name, g] : t.groups) g->end_all_members(*this, wire::ErrorCode::unknown_topic,
                                                        "topic " + t.config.name + " was deleted");
  topics_.remove(t);
}

// ---------------------------------------------------------------------------
// Timers
// ---------------------------------------------------------------------------

void broker::on_retention_timer(uv_timer_t* timer) { static_cast<broker*>(timer->data)->enforce_retention(); }

void broker::enforce_retention() {
  uint64_t now = wire::now_us();
  for (auto& [name, tp] : topics_.all()) {
    topic& t = *tp;
    const auto& c = t.config;
    if (t.deleting || t.trim_in_flight || (c.retention_ms == 0 && c.retention_bytes == 0)) continue;
    if (t.state.first_offset == t.state.next_offset) continue;
    bool over_size = c.retention_bytes != 0 && t.state.bytes > c.retention_bytes;
    if (c.retention_ms == 0 && !over_size) continue;
    auto op = std::make_unique<storage::write_op>();
    op->what = storage::write_op::kind::trim;
    op->topic_id = c.id;
    op->keep_after_us = c.retention_ms ? now - std::min(now, wire::ms_to_us(c.retention_ms)) : 0;
    op->max_bytes = c.retention_bytes;
    t.trim_in_flight = true;
    op->done = [this](storage::write_op& op) {
      topic* t = topics_.find(op.topic_id);
      if (!t) return;
      t->trim_in_flight = false;
      if (op.error != storage::store_error::ok) {
        log_warn("topic %s: retention trim failed: %s", t->config.name.c_str(), storage::to_string(op.error));
        return;
      }
      if (op.state.first_offset > t->state.first_offset) {
        log_debug("topic %s: retention removed offsets %lu..%lu", t->config.name.c_str(),
                  t->state.first_offset, op.state.first_offset - 1);
      }
      t->state = op.state;  // completions arrive in commit order
      topics_.uncache_before(*t, t->state.first_offset);
      for (auto& [n, g] : t->groups) g->on_trimmed(*this);
      if (op.more) enforce_retention();
    };
    writer_->submit(std::move(op));
  }
}

void broker::on_group_timer(uv_timer_t* timer) {
  auto self = static_cast<broker*>(timer->data);
  for (auto& [name, t] : self->topics_.all()) {
    for (auto& [gname, g] : t->groups) g->on_timer(*self);
  }
}

void broker::on_stats_timer(uv_timer_t* timer) {
  auto self = static_cast<broker*>(timer->data);
  uint64_t now = uv_now(&self->loop_);
  std::vector<session*> all;
  for (auto& [id, s] : self->sessions_) all.push_back(s.get());
  for (auto* s : all) s->check_stalls(now, self->config_.frame_timeout_ms, self->config_.write_timeout_ms);
  auto& s = self->stats_;
  double secs = kStatsIntervalMs / 1000.0;
  s.publish_rate = (s.publish_records - s.last_publish_sample) / secs;
  s.deliver_rate = (s.deliver_records - s.last_deliver_sample) / secs;
  s.last_publish_sample = s.publish_records;
  s.last_deliver_sample = s.deliver_records;
}

// ---------------------------------------------------------------------------
// Shutdown
// ---------------------------------------------------------------------------

void broker::on_signal(uv_signal_t* handle, int signum) {
  auto self = static_cast<broker*>(handle->data);
  if (self->shutting_down_) {
    log_warn("second signal: exiting now (committed data is safe)");
    _exit(1);
  }
  log_info("received %s, shutting down", signum == SIGINT ? "SIGINT" : "SIGTERM");
  self->shutdown();
}

void broker::shutdown() {
  if (shutting_down_ || !handles_open_) return;
  shutting_down_ = true;
  uv_close(reinterpret_cast<uv_handle_t*>(&server_), nullptr);
  for (auto& [id, s] : sessions_) s->pause_reading();
  paused_sessions_.clear();
  // Webhook requests in flight are dropped: their records stay unacked and are
  // sent again after the restart (at-least-once).
  if (webhook_client_) webhook_client_->close();
  // HTTP requests being handled are answered by the flush below, then close.
  if (http_) http_->server().shutdown([this] { maybe_finish_shutdown(); });
  // Commit and ack every publish already received, then say goodbye.
  writer_->flush();
  std::vector<session*> open;
  for (auto& [id, s] : sessions_) open.push_back(s.get());
  for (auto* s : open) s->close(wire::ErrorCode::shutting_down, "broker is shutting down");
  // Group progress saved by the closes above goes out with the final commit.
  writer_->stop();
  uv_timer_start(&shutdown_timer_, &broker::on_shutdown_timer, kShutdownGraceMs, 0);
  maybe_finish_shutdown();
}

void broker::on_shutdown_timer(uv_timer_t* timer) {
  auto self = static_cast<broker*>(timer->data);
  log_warn("%zu connections did not close in time", self->sessions_.size());
  self->close_handles();
}

void broker::maybe_finish_shutdown() {
  if (shutting_down_ && sessions_.empty() && (!http_ || http_->server().idle())) close_handles();
}

void broker::close_handles() {
  if (!handles_open_) return;
  handles_open_ = false;
  for (uv_handle_t* h : {reinterpret_cast<uv_handle_t*>(&sigint_), reinterpret_cast<uv_handle_t*>(&sigterm_),
                         reinterpret_cast<uv_handle_t*>(&retention_timer_),
                         reinterpret_cast<uv_handle_t*>(&stats_timer_),
                         reinterpret_cast<uv_handle_t*>(&group_timer_),
                         reinterpret_cast<uv_handle_t*>(&shutdown_timer_)}) {
    uv_close(h, nullptr);
  }
  // Connections still open after the grace period are cut.
  for (auto& [id, s] : sessions_) s->abort();
  if (http_) http_->server().abort_all();
}

}  // namespace wharf
