// The Wharf C++ client SDK.
//
//   auto c = wharf::client::connect({.broker = "127.0.0.1:7700"});
//   if (!c) { std::cerr << c.err().to_string(); return 1; }
//   auto ack = (*c)->publish("orders", {.payload = "hello", .key = "user-7"});  // durable when it returns
//   (*c)->publish_async("orders", {.payload = "hi"}, [](const wharf::result<wharf::publish_ack>& r) {...});
//   (*c)->flush();
//   auto sub = (*c)->subscribe("orders", "payment", [](wharf::message m) { ...; m.ack(); });
//
// Threads: every method may be called from any thread. One I/O thread per
// client runs the connection; publish callbacks run on it (keep them short,
// and do not call blocking client methods from them). Each subscription has
// its own thread that runs its handler, one message at a time, in delivery
// order.
//
// Connection: connect() waits for the first connection. Afterwards a lost
// connection is re-established with exponential backoff; requests waiting to
// be sent go out once it is back, requests already sent fail with
// errc::disconnected (their outcome is unknown: a publish may or may not have
// been stored), and subscriptions are re-opened automatically (ephemeral ones
// continue after the last record received; group members rejoin the group,
// which redelivers what was not acked).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "wharf/errors.h"
#include "wharf/message.h"

namespace wharf {

using namespace std::chrono_literals;

struct client_options {
  std::string broker = "127.0.0.1:7700";                   // HOST:PORT
  std::string client_name = "wharf-cpp";                   // shown in broker logs
  std::chrono::milliseconds connect_timeout = 5000ms;      // first connection
  std::chrono::milliseconds request_timeout = 30000ms;     // any request, publish acks included
  bool reconnect = true;                                   // re-establish lost connections
  std::chrono::milliseconds reconnect_backoff_min = 50ms;
  std::chrono::milliseconds reconnect_backoff_max = 5000ms;
  /// Async publishing: how long a batch may wait for more records. 0 sends
  /// as soon as the I/O thread is free (batches still form under load).
  std::chrono::microseconds linger = 0us;
  size_t max_batch_bytes = 1u << 20;    // a batch is sent once it reaches this
  size_t max_pending_bytes = 64u << 20; // publish_async blocks while this much is unacked
};

struct publish_ack {
  uint64_t offset = 0;        // the record's offset in its topic
  uint64_t timestamp_us = 0;  // broker append time
};
using publish_callback = std::function<void(const result<publish_ack>&)>;

/// Where a subscription or a new group starts.
struct start_position {
  enum class kind : uint8_t { latest = 0, earliest = 1, offset = 2, timestamp = 3 } what = kind::latest;
  uint64_t value = 0;  // offset, or milliseconds since the epoch

  static start_position latest() { return {}; }
  static start_position earliest() { return {kind::earliest, 0}; }
  static start_position at_offset(uint64_t o) { return {kind::offset, o}; }
  static start_position at_time_ms(uint64_t ms) { return {kind::timestamp, ms}; }
  /// "earliest", "latest", "<offset>" or "@<ms since epoch>".
  static std::optional<start_position> parse(std::string_view text);
};

struct topic_options {
  std::optional<uint64_t> retention_ms;     // absent: the broker's default; 0 = forever
  std::optional<uint64_t> retention_bytes;  // absent: the broker's default; 0 = no limit
  bool if_not_exists = false;
};

struct topic_info {
  std::string name;
  uint64_t first_offset = 0;  // lowest stored offset (== next_offset when empty)
  uint64_t next_offset = 0;   // offset of the next record
  uint64_t records = 0;
  uint64_t bytes = 0;
  uint64_t retention_ms = 0;
  uint64_t retention_bytes = 0;
  uint64_t created_us = 0;
  uint64_t last_timestamp_us = 0;
  std::vector<std::string> groups;
};

struct member_info {
  uint64_t id = 0;
  std::string peer;
  uint32_t in_flight = 0;
  uint64_t delivered = 0;
};

struct group_info {
  std::string topic, group;
  uint64_t committed_offset = 0;  // every record below is finished
  uint64_t dispatch_offset = 0;   // next record not yet handed out
  uint64_t lag = 0;               // records not yet finished
  uint64_t pending = 0;           // delivered, not yet acked
  uint64_t redeliveries = 0;
  uint64_t dead_lettered = 0;
  uint32_t ack_timeout_ms = 0;
  uint32_t max_deliveries = 0;
  uint64_t created_us = 0;
  std::vector<member_info> members;
  bool webhook = false;  // the group belongs to a webhook (the broker is its member)
};

struct group_options {
  start_position start = start_position::latest();
  std::optional<std::chrono::milliseconds> ack_timeout;  // absent: 30 s (or the group's setting)
  std::optional<uint32_t> max_deliveries;                // absent: 5 (or the group's setting); 0 = unlimited
  bool if_not_exists = false;
};

/// A webhook: the broker POSTs every record of a topic to `url` (see README,
/// "Webhooks"). Unset fields take the broker's defaults.
struct webhook_options {
  std::string url;
  std::vector<std::string> secrets;  // "whsec_..."; empty: the broker generates one
  std::vector<std::pair<std::string, std::string>> headers;  // added to every request
  std::optional<std::chrono::milliseconds> timeout;          // per attempt; absent: 15 s
  std::optional<uint32_t> max_in_flight;                     // concurrent requests; absent: 16
  /// Delay before each attempt; empty: 0, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h.
  std::vector<std::chrono::milliseconds> retry_schedule;
  std::optional<uint32_t> max_deliveries;                    // absent: one per schedule entry
  std::optional<std::chrono::milliseconds> disable_after;    // absent: 5 days; 0 = never
  start_position start = start_position::latest();
  bool update = false;  // change an existing webhook (keeps its progress)
};

struct webhook_attempt {
  uint64_t time_us = 0, offset = 0;
  uint32_t attempt = 0;  // 1 = first delivery of the record
  uint32_t status = 0;   // HTTP status; 0 = no answer
  uint64_t latency_us = 0;
  std::string error;
};

struct webhook_info {
  std::string topic, name, url;
  std::vector<std::string> secrets;
  std::vector<std::pair<std::string, std::string>> headers;
  uint32_t timeout_ms = 0, max_in_flight = 0, max_deliveries = 0;
  std::vector<uint32_t> retry_schedule_ms;
  uint64_t disable_after_ms = 0;
  bool paused = false;
  std::string disabled_reason;  // why the broker paused it, if it did
  uint64_t failing_since_us = 0;
  uint64_t attempts = 0, succeeded = 0, failed_status = 0, timeouts = 0, connect_errors = 0, other_errors = 0;
  uint32_t in_flight = 0;
  group_info group;
  std::vector<webhook_attempt> recent;  // the last 20, oldest first
};

struct broker_stats {
  std::string broker_version;
  uint64_t uptime_ms = 0;
  uint32_t connections = 0, topics = 0, groups = 0;
  uint64_t publish_records_total = 0, publish_bytes_total = 0, deliver_records_total = 0;
  double publish_records_per_s = 0, deliver_records_per_s = 0;
  uint64_t commits_total = 0;
  uint64_t syncs_total = 0;    // explicit fsyncs besides those in commits
  uint64_t storage_used_bytes = 0, map_size_bytes = 0;
  std::string fsync;
};

struct subscribe_options {
  start_position start = start_position::latest();  // ephemeral start, or a new group's start
  uint32_t max_in_flight = 1000;                    // records delivered and not yet acked
  std::optional<std::chrono::milliseconds> ack_timeout;
  std::optional<uint32_t> max_deliveries;
  bool auto_ack = false;                            // groups: ack when the handler returns
  /// Called once if the broker ends the subscription (topic or group deleted).
  std::function<void(const error&)> on_end;
};

using message_handler = std::function<void(message)>;

/// A running subscription. Destroying it (or close()) unsubscribes and waits
/// for the handler to return; do not do that from inside the handler.
class subscription {
 public:
  ~subscription();
  subscription(const subscription&) = delete;
  subscription& operator=(const subscription&) = delete;
  void close();
  /// Records handed to the handler so far.
  uint64_t delivered() const;

 private:
  friend class client;
  explicit subscription(std::shared_ptr<detail::sub_state> s) : state_(std::move(s)) {}
  std::shared_ptr<detail::sub_state> state_;
};

class client {
 public:
  /// Connects and says Hello; fails with errc::unavailable when the broker
  /// cannot be reached within connect_timeout.
  static result<std::unique_ptr<client>> connect(client_options options = {});
  ~client();  // close(): flushes publishes (up to 5 s), ends subscriptions
  client(const client&) = delete;
  client& operator=(const client&) = delete;

  // ---- publishing ----
  /// Publishes one record and waits until it is durable; returns its offset.
  result<publish_ack> publish(std::string_view topic, const record& r);
  /// Queues one record; `done` runs on the I/O thread with the offset or the
  /// error. Blocks while max_pending_bytes are unacked (up to request_timeout,
  /// then `done` gets errc::timeout).
  void publish_async(std::string_view topic, const record& r, publish_callback done);
  std::future<result<publish_ack>> publish_future(std::string_view topic, const record& r);
  /// Sends every queued record now and waits until all have completed.
  result<void> flush(std::chrono::milliseconds timeout = 30000ms);

  // ---- topics ----
  result<topic_info> create_topic(std::string_view name, const topic_options& options = {});
  result<void> delete_topic(std::string_view name);
  result<std::vector<topic_info>> list_topics();
  result<topic_info> describe_topic(std::string_view name);

  // ---- consumer groups ----
  result<group_info> create_group(std::string_view topic, std::string_view group,
                                  const group_options& options = {});
  result<std::vector<group_info>> list_groups(std::string_view topic);
  result<group_info> describe_group(std::string_view topic, std::string_view group);
  result<group_info> reset_group(std::string_view topic, std::string_view group, start_position to);
  result<void> delete_group(std::string_view topic, std::string_view group);

  // ---- webhooks ----
  result<webhook_info> add_webhook(std::string_view topic, std::string_view name, const webhook_options& options);
  /// Every webhook of `topic`, or of every topic when it is empty.
  result<std::vector<webhook_info>> list_webhooks(std::string_view topic = {});
  result<webhook_info> describe_webhook(std::string_view topic, std::string_view name);
  /// Pauses (or resumes) deliveries; requests in flight finish.
  result<webhook_info> pause_webhook(std::string_view topic, std::string_view name, bool paused = true);
  result<void> remove_webhook(std::string_view topic, std::string_view name);

  // ---- subscribing ----
  /// Ephemeral: every record from options.start on; nothing is stored, no acks.
  result<std::unique_ptr<subscription>> subscribe(std::string_view topic, message_handler handler,
                                                  subscribe_options options = {});
  /// Group member: records of `topic` shared with the other members of
  /// `group` (created on first use); ack or nack each message.
  result<std::unique_ptr<subscription>> subscribe(std::string_view topic, std::string_view group,
                                                  message_handler handler,
                                                  subscribe_options options = {});

  result<broker_stats> stats();

  /// Flushes (up to `timeout`), ends subscriptions and disconnects.
  void close(std::chrono::milliseconds timeout = 5000ms);
  bool connected() const;
  const client_options& options() const;

  class impl;

 private:
  explicit client(std::unique_ptr<impl> p);
  std::unique_ptr<impl> impl_;
};

}  // namespace wharf
