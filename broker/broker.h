// broker: wharfd's loop-thread state and its lifecycle.
//
// Threads: the loop thread (this object, every session, topic, subscription
// and group, all libuv handles) and the group-commit writer thread
// (storage/group_commit_writer.h), which talk only through the writer's queue
// and its uv_async hand-off. Nothing else is shared.
//
// Path of one published record: session reads a Publish frame -> verified ->
// publish handler copies the RecordBatch into a storage::batch and submits an
// append to the writer -> the writer commits it with everything else queued
// (one LMDB transaction, fsync by policy) -> back on the loop the handler's
// completion acks the publisher, puts the batch in the topic's tail cache
// and marks the topic -> after the round of completions, dispatch_new_records()
// lets every subscription and group of each marked topic send what its
// flow-control window allows, from that one in-memory batch.
#pragma once

#include <uv.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <unordered_map>
#include <unordered_set>

#include "config.h"
#include "storage/group_commit_writer.h"
#include "storage/log_store.h"
#include "topics/topic.h"
#include "webhooks/http_client.h"

namespace wharf {

class session;
namespace http {
class http_api;
}

/// Counters for `wharf stats`; loop thread.
struct broker_stats {
  uint64_t publish_records = 0;
  uint64_t publish_bytes = 0;
  uint64_t deliver_records = 0;
  uint64_t connections_total = 0;
  uint64_t connections_refused = 0;
  // Rates over the last sampling window (records per second).
  double publish_rate = 0, deliver_rate = 0;
  uint64_t last_publish_sample = 0, last_deliver_sample = 0;
};

class broker {
 public:
  explicit broker(broker_config config);
  ~broker();
  broker(const broker&) = delete;
  broker& operator=(const broker&) = delete;

  /// Opens the store, listens, and runs the loop until shutdown completes.
  /// Returns the process exit code (non-zero with a logged reason when the
  /// store or the listener cannot be opened).
  int run();
  /// Called on the loop thread once listening, with the port (tests, fuzzer).
  void on_listening(std::function<void(uint16_t port)> fn) { on_listening_ = std::move(fn); }
  /// Starts a clean shutdown: stop accepting and reading, finish the
  /// writer's queue (acking what committed), flush and close connections.
  void shutdown();

  // ---- services for sessions and handlers (loop thread) ----
  const broker_config& config() const { return config_; }
  uv_loop_t* loop() { return &loop_; }
  storage::log_store& store() { return *store_; }
  storage::group_commit_writer& writer() { return *writer_; }
  topic_registry& topics() { return topics_; }
  webhooks::http_client& webhook_client() { return *webhook_client_; }
  broker_stats& stats() { return stats_; }
  uint64_t started_us() const { return started_us_; }
  size_t connection_count() const { return sessions_.size(); }
  uint16_t port() const { return port_; }
  /// The HTTP face, or null when http_listen is empty.
  http::http_api* http() { return http_.get(); }
  bool shutting_down() const { return shutting_down_; }

  session* find_session(uint64_t id);
  uint64_t next_subscription_id() { return ++last_subscription_id_; }

  /// The batch of `t` that contains `offset`, or the first one after it
  /// (null when there is none): from the tail cache, else read from LMDB.
  /// A batch that fails its checks on disk is logged and skipped.
  storage::batch_ptr batch_at(topic& t, uint64_t offset);

  /// Submits an append of `data` to `t`. Once committed, the topic's state,
  /// cache and readers are updated, then `done` runs (also on failure).
  using append_done = std::function<void(storage::store_error, const storage::batch&)>;
  void append(topic& t, std::shared_ptr<storage::batch> data, append_done done);
  /// Same by topic name, creating the topic (with default retention) when it
  /// does not exist. Used for auto-created topics and dead-letter topics.
  void append_to(const std::string& topic_name, std::shared_ptr<storage::batch> data, append_done done);

  /// Marks that `t` has new records; subscribers get them after the current
  /// round of writer completions.
  void notify_new_records(topic& t);
  /// Lets every reader of `t` send what it can now.
  void dispatch_topic(topic& t);

  /// Publish backpressure: stop reading a session whose appends, or the
  /// writer's whole queue, are above their limits; resume when they drain.
  void check_backpressure(session& s);

  /// Ends every subscription of a topic (deleted) with `code`, and drops it.
  void remove_topic(topic& t);

  // Session lifecycle hooks.
  void on_session_closing(session& s);
  void on_session_closed(session& s);
  void on_session_writable(session& s);

 private:
  static void on_connection(uv_stream_t* server, int status);
  static void on_signal(uv_signal_t* handle, int signum);
  static void on_retention_timer(uv_timer_t* timer);
  static void on_stats_timer(uv_timer_t* timer);
  static void on_shutdown_timer(uv_timer_t* timer);
  static void on_group_timer(uv_timer_t* timer);

  bool open_store();
  void raise_fd_limit();
  bool listen();
  void start_webhooks();
  void after_completions();
  void enforce_retention();
  void close_handles();
  void maybe_finish_shutdown();

  broker_config config_;
  uv_loop_t loop_;
  std::unique_ptr<storage::log_store> store_;
  std::unique_ptr<storage::group_commit_writer> writer_;
  std::unique_ptr<webhooks::http_client> webhook_client_;  // outlives topics_ (their webhooks cancel requests)
  std::unique_ptr<http::http_api> http_;  // destroyed after the writer: completions answer it
  topic_registry topics_;
  std::unordered_map<uint64_t, std::unique_ptr<session>> sessions_;
  std::unordered_set<uint64_t> paused_sessions_;  // reading stopped by backpressure
  std::vector<uint32_t> topics_with_news_;        // ids marked by notify_new_records
  broker_stats stats_;

  uv_tcp_t server_;
  uv_signal_t sigint_, sigterm_;
  uv_timer_t retention_timer_, stats_timer_, shutdown_timer_, group_timer_;
  bool handles_open_ = false;
  bool shutting_down_ = false;
  uint16_t port_ = 0;
  uint64_t last_session_id_ = 0;
  uint64_t last_subscription_id_ = 0;
  uint64_t started_us_ = 0;
  uint32_t max_connections_ = 0;  // config value, capped by the fd limit
  uint64_t fd_limit_ = 0;         // RLIMIT_NOFILE in effect, 0 = unlimited
  std::function<void(uint16_t)> on_listening_;
};

}  // namespace wharf
