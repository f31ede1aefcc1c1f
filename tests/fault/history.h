// What the crash-loop clients observed, and the queue checker that compares
// it with what the broker stored (in the spirit of Jepsen's queue checkers).
//
// The history is written concurrently by publish callbacks (client I/O
// threads) and group handlers (subscription threads); each part has its own
// mutex. The checker runs once, at the end, on the test thread.
#pragma once

#include <wharf/client.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <mutex>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

namespace wharf::fault {

/// Outcome of one publish, per (producer, seq).
enum class outcome : uint8_t { none = 0, sent = 1, acked = 2, failed = 3 };

class history {
 public:
  history(uint32_t pid, uint32_t producers, std::vector<char> topic_tags, uint32_t groups);

  uint32_t pid() const { return pid_; }
  size_t topics() const { return tags_.size(); }
  size_t groups() const { return groups_.size(); }
  size_t producers() const { return producers_.size(); }
  char tag(size_t topic) const { return tags_[topic]; }

  // ---- publishing ----
  /// Called before publish_async hands the record to the SDK.
  void sent(uint32_t producer, uint64_t seq, size_t topic);
  /// The publish callback (any thread).
  void completed(uint32_t producer, uint64_t seq, size_t topic, const result<publish_ack>& r);

  // ---- consuming (group handlers) ----
  /// Returns how often `offset` has now been delivered to `group` (1 = first).
  uint32_t delivered(size_t group, uint64_t offset, std::string_view payload);
  /// Recorded before the SDK's ack() is called, so an ack the broker counts
  /// is always in the history first.
  void acked(size_t group, uint64_t offset);
  /// The member nacked `offset` instead: not finished, must come back.
  void nacked(size_t group, uint64_t offset);

  // ---- progress, for the nemesis (events, not polling) ----
  uint64_t acks_total() const { return acks_total_.load(); }
  uint64_t failures_total() const { return failures_total_.load(); }
  uint64_t group_acks_total() const { return group_acks_total_.load(); }
  /// Publishes handed to the SDK and not completed yet (in flight).
  uint64_t in_flight() const {
    return sent_total_.load() - acks_total_.load() - failures_total_.load();
  }
  /// Waits until acks_total() >= n; false after `timeout`.
  bool wait_acks(uint64_t n, std::chrono::milliseconds timeout);
  /// Waits until every group has acked every offset below `next`.
  bool wait_groups_acked(uint64_t next, std::chrono::milliseconds timeout);

  // ---- read back ----
  struct producer_log {
    mutable std::mutex mu;
    std::vector<outcome> state;       // by seq
    std::vector<uint8_t> topic;       // by seq
    std::map<errc, uint64_t> errors;  // failed publishes by code
    uint64_t double_completions = 0;  // a callback ran twice for one record
  };
  struct topic_log {
    mutable std::mutex mu;
    std::vector<uint64_t> key_at;  // acked offset -> record key + 1 (0: none)
    uint64_t acked = 0;
    uint64_t conflicting_acks = 0;  // two publishes acked with the same offset
  };
  struct group_log {
    mutable std::mutex mu;
    std::vector<uint32_t> deliveries;  // by offset
    std::vector<uint32_t> acks;        // by offset
    std::vector<uint64_t> key_at;      // key + 1 of the first delivery; 0: none yet
    // Per offset, when (history event number; 0: never) it was first
    // delivered and first acked. An ack is recorded before the SDK sends
    // it, so whatever the broker did after receiving it gets a later number.
    std::vector<uint64_t> first_delivered_at, first_acked_at;
    uint64_t deliveries_total = 0;
    uint64_t nacks_total = 0;
    uint64_t inconsistent = 0;  // a redelivery carried another payload
    uint64_t unparsable = 0;    // a delivery whose payload is not ours
    uint64_t first_inconsistent_offset = UINT64_MAX;
    uint64_t acked_prefix = 0;  // every offset below has been acked
  };
  const producer_log& producer(size_t i) const { return producers_[i]; }
  const topic_log& topic(size_t i) const { return topics_[i]; }
  const group_log& group(size_t i) const { return groups_[i]; }

 private:
  void notify_waiters();

  uint32_t pid_;
  std::vector<char> tags_;
  std::vector<producer_log> producers_;
  std::vector<topic_log> topics_;
  std::vector<group_log> groups_;
  std::atomic<uint64_t> sent_total_{0}, acks_total_{0}, failures_total_{0}, group_acks_total_{0};
  std::atomic<uint64_t> events_{0};  // numbers first deliveries and first acks, in time order
  std::atomic<int> waiters_{0};
  std::mutex wait_mu_;
  std::condition_variable wait_cv_;
};

/// One topic read back from its earliest record with an ephemeral
/// subscription.
struct topic_read {
  uint64_t first = 0, next = 0;  // describe_topic after the read
  uint64_t read_first = 0;       // first offset the read started at
  std::vector<int64_t> key_at;   // offset - read_first -> key; -1 missing; -2 not ours
  uint64_t read_twice = 0;       // an offset delivered twice to the reader
  uint64_t out_of_order = 0;     // an offset below one already delivered
  uint64_t beyond_next = 0;      // offsets >= next delivered
  bool complete = false;         // the reader reached next - 1 in time
};

struct topic_report {
  std::string name;
  bool retention = false;  // records below `first` may be trimmed
  uint64_t first = 0, next = 0;
  uint64_t acked = 0, lost = 0, corrupt = 0, duplicated = 0, trimmed = 0;
  /// Offsets missing from [0, next), or for a retention topic from
  /// [first, next): trimming removes a prefix, never a hole.
  uint64_t gaps = 0;
  uint64_t conflicting_acks = 0;
  uint64_t foreign = 0;                      // stored records that are not a payload of this run
  uint64_t unknown = 0, unknown_stored = 0;  // failed publishes, and how many are in the log
  uint64_t read_twice = 0, out_of_order = 0;
  bool newest_trimmed = false;  // retention removed every record (it must keep the newest)
  bool read_complete = false;
  std::vector<std::string> examples;  // first few problems, for the report
};

struct group_report {
  std::string name;
  uint64_t committed = 0;     // describe_group at the end
  uint64_t next = 0;          // the topic's next offset
  uint64_t delivered = 0;     // distinct offsets delivered
  uint64_t deliveries = 0;    // all deliveries
  uint64_t redelivered = 0;   // offsets delivered more than once
  uint64_t redeliveries = 0;  // deliveries beyond the first
  uint64_t nacked = 0;        // nacks sent by the members (each one forces a redelivery)
  uint64_t skips = 0;         // below committed, never acked by a member
  /// Keyed records first delivered before the previous record with their
  /// key had been acked (the per-key gate let one through).
  uint64_t order_violations = 0;
  uint64_t wrong_payload = 0;  // delivered payload differs from the log
  uint64_t phantom = 0;        // delivered offsets that are not in the log
  uint64_t dead_lettered = 0, broker_redeliveries = 0;
  bool drained = false;
  std::vector<std::string> examples;
};

struct publish_report {
  uint64_t published = 0, acked = 0, unknown = 0, never_completed = 0, double_completions = 0;
  std::map<errc, uint64_t> errors;
  uint64_t unexpected_errors = 0;  // codes other than disconnected/timeout/unavailable
};

struct report {
  publish_report publish;
  std::vector<topic_report> topics;
  std::vector<group_report> groups;
  /// True when any check failed (see failures()).
  bool failed() const;
  std::vector<std::string> failures() const;
};

/// Input for one group: its final state from describe_group.
struct group_final {
  std::string name;
  size_t topic = 0;
  wharf::group_info info;
  bool drained = false;
};

report check(const history& h, const std::vector<std::string>& topic_names,
             const std::vector<bool>& topic_retention, const std::vector<topic_read>& reads,
             const std::vector<group_final>& groups);

}  // namespace wharf::fault
