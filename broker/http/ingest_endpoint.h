// ingest_endpoint: one inbound webhook endpoint (POST /ingest/NAME) and the
// webhook-ids it has recently published, so that a sender's retry or a
// replay is published once.
//
// Pure state, no sockets and no clock (callers pass the time); owned by
// http_api on the loop thread.
//
// Window: a message is accepted only while its webhook-timestamp is within
// the tolerance of now, so a replay of the same signed message (same id,
// same timestamp) is refused by its timestamp after ts + tolerance. An id is
// therefore remembered until max(ts, time published) + tolerance, which also
// catches a retry re-signed with a fresh timestamp within the tolerance of
// the first success. Memory is bounded: beyond kMaxRemembered ids the ones
// expiring first are forgotten early. Nothing here survives a restart.
#pragma once

#include <cstdint>
#include <functional>
#include <set>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "config.h"

namespace wharf::http {

class ingest_endpoint {
 public:
  static constexpr size_t kMaxRemembered = 100000;

  /// How a publish of one id ended: ok with an offset, or failed.
  struct outcome {
    bool ok = false;
    uint64_t offset = 0;
    int status = 0;          // HTTP status of the failure
    std::string error_body;  // JSON error body of the failure
  };
  using waiter = std::function<void(const outcome&)>;

  enum class id_state { fresh, published, in_flight };
  struct lookup {
    id_state state = id_state::fresh;
    uint64_t offset = 0;  // when published
  };

  /// Per-endpoint counters for /metrics (requests by outcome).
  struct counters {
    uint64_t published = 0;
    uint64_t duplicates = 0;
    uint64_t unauthorized = 0;
    uint64_t failed = 0;
  };

  ingest_endpoint(ingest_config config, uint32_t tolerance_s)
      : config_(std::move(config)), tolerance_s_(tolerance_s) {}

  const ingest_config& config() const { return config_; }
  uint32_t tolerance_s() const { return tolerance_s_; }
  counters& stats() { return counters_; }
  const counters& stats() const { return counters_; }
  size_t remembered() const { return ids_.size(); }

  /// What is known about `id` at `now_s` (expired ids are forgotten first).
  lookup check(const std::string& id, int64_t now_s);
  /// `id` (signed at `timestamp_s`) is being published; duplicates that
  /// arrive meanwhile wait().
  void begin(const std::string& id, int64_t timestamp_s);
  /// Queues `w` to learn the outcome of the publish of `id` in flight.
  void wait(const std::string& id, waiter w);
  /// The publish of `id` ended. On success the id is remembered until its
  /// window ends; on failure it is forgotten so the sender's retry can
  /// publish. Runs the waiters with `result`.
  void finish(const std::string& id, const outcome& result, int64_t now_s);

 private:
  struct entry {
    id_state state = id_state::in_flight;
    int64_t timestamp_s = 0;
    int64_t expires_s = 0;  // when published
    uint64_t offset = 0;
    std::vector<waiter> waiters;
  };

  void expire(int64_t now_s);

  ingest_config config_;
  uint32_t tolerance_s_;
  counters counters_;
  std::unordered_map<std::string, entry> ids_;
  std::set<std::pair<int64_t, std::string>> by_expiry_;  // published ids, soonest first
};

}  // namespace wharf::http
