// webhook: the broker itself as the one member of a consumer group. Each
// record the group assigns to it is POSTed to the webhook's URL (payload as
// body, Standard Webhooks headers and signatures); a 2xx acks the record,
// anything else nacks it with the delay of the retry schedule (or a longer
// Retry-After), so groups' promises hold unchanged: per-key order,
// at-least-once, progress that survives restarts, dead-lettering to
// <topic>.dlq once the schedule is exhausted.
//
// Owned by its consumer_group (consumer_group::webhook()); loop thread only.
// Its definition and pause state are stored with the group's progress.
#pragma once

#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <unordered_set>
#include <utility>
#include <vector>

#include "groups/group_state.h"
#include "storage/batch.h"
#include "webhooks/http_client.h"
#include "wire.h"

namespace wharf {
class broker;
class consumer_group;
}  // namespace wharf

namespace wharf::webhooks {

struct webhook_settings {
  static constexpr uint32_t kDefaultTimeoutMs = 15000;
  static constexpr uint32_t kDefaultMaxInFlight = 16;
  static constexpr uint64_t kDefaultDisableAfterMs = 5ull * 24 * 3600 * 1000;  // 5 days

  std::string url;
  std::vector<std::string> secrets;  // "whsec_..."; the first one is the newest
  std::vector<std::pair<std::string, std::string>> headers;
  uint32_t timeout_ms = kDefaultTimeoutMs;
  uint32_t max_in_flight = kDefaultMaxInFlight;
  // Delay before each attempt: immediately, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h.
  std::vector<uint32_t> retry_schedule_ms = {0,       5000,     300000,   1800000,
                                             7200000, 18000000, 36000000, 36000000};
  uint32_t max_deliveries = 0;  // 0 = one attempt per schedule entry
  uint64_t disable_after_ms = kDefaultDisableAfterMs;

  uint32_t attempts_allowed() const;
  /// Delay before attempt `n` (1 = the first delivery); the schedule's last
  /// entry repeats when max_deliveries is longer than the schedule.
  uint32_t delay_before(uint32_t n) const;
  /// The group under the webhook: dead-letter after the last attempt; the ack
  /// deadline only backs up curl's own timeout.
  group_settings group() const;

  /// Checks and converts a config from the wire; nullopt with `error` set
  /// when something is invalid (secrets are checked, not generated here).
  /// `loopback_only`: the URL's host must be localhost, 127.0.0.0/8 or ::1.
  static std::optional<webhook_settings> from_wire(const wire::WebhookConfig& c, std::string& error,
                                                   bool loopback_only = false);
  flatbuffers::Offset<wire::WebhookConfig> to_wire(flatbuffers::FlatBufferBuilder& fbb) const;
};

/// What must survive a restart besides the settings.
struct webhook_status {
  bool paused = false;
  std::string disabled_reason;  // set when the broker paused it (disable_after)
  uint64_t failing_since_us = 0;
};

class webhook {
 public:
  static constexpr size_t kRecentAttempts = 20;

  webhook(consumer_group& group, webhook_settings settings, webhook_status status);
  ~webhook();
  webhook(const webhook&) = delete;
  webhook& operator=(const webhook&) = delete;

  /// Joins the group as its member; records flow once the group dispatches.
  void start(broker& b);
  /// The broker is stopping: drops requests in flight (their records stay
  /// unacked and are delivered again after the restart).
  void stop();

  const webhook_settings& settings() const { return settings_; }
  const webhook_status& status() const { return status_; }
  uint64_t member_id() const { return member_id_; }
  /// False while paused, stopping, or not started: the group sends nothing new.
  bool accepting(const broker& b) const;

  /// Replaces the settings (add --update); requests in flight finish as they are.
  void update(broker& b, webhook_settings settings);
  void set_paused(broker& b, bool paused);
  /// Sends one record, assigned by the group (attempt 1 = first delivery).
  void deliver(broker& b, const storage::batch_ptr& batch, uint64_t offset, uint16_t attempt);

  flatbuffers::Offset<wire::WebhookInfo> build_info(flatbuffers::FlatBufferBuilder& fbb,
                                                    uint64_t topic_next_offset) const;

  // Counters since the broker started, by outcome (also for /metrics).
  struct counters {
    uint64_t attempts = 0, succeeded = 0, failed_status = 0, timeouts = 0, connect_errors = 0,
             other_errors = 0;
  };
  const counters& totals() const { return totals_; }

 private:
  struct attempt_rec {
    uint64_t time_us, offset, latency_us;
    uint32_t attempt, status;
    std::string error;
  };
  void on_done(broker& b, uint64_t offset, uint16_t attempt, const http_response& r);

  consumer_group& group_;
  webhook_settings settings_;
  webhook_status status_;
  std::vector<std::string> keys_;  // decoded secrets
  http_client* http_ = nullptr;    // set by start()
  uint64_t member_id_ = 0;
  std::unordered_set<uint64_t> transfers_;
  std::deque<attempt_rec> recent_;
  counters totals_;
};

}  // namespace wharf::webhooks
