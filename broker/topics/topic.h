// topic and topic_registry: the broker loop's view of each topic.
//
// Loop thread only. The durable truth lives in LMDB and in the writer's tails;
// a topic here mirrors the last commit the loop has been told about (`state`)
// plus what only the loop needs: the tail cache of recent batches (so fresh
// records are delivered from memory, one copy shared by every reader), and
// the subscriptions and consumer groups reading it.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "groups/consumer_group.h"
#include "storage/batch.h"
#include "storage/log_store.h"

namespace wharf {

class subscription;

/// The newest batches of one topic, contiguous in offsets, oldest first.
class tail_cache {
 public:
  /// Adds the batch that follows the cached ones (or starts over if it does not).
  void append(storage::batch_ptr b);
  /// The cached batch containing `offset`, or null.
  storage::batch_ptr find(uint64_t offset) const;
  /// Drops the oldest batch; returns the bytes freed.
  size_t evict_oldest();
  /// Drops batches that end at or before `offset` (after retention trims).
  size_t drop_before(uint64_t offset);
  size_t bytes() const { return bytes_; }
  size_t size() const { return batches_.size(); }
  void clear() {
    batches_.clear();
    bytes_ = 0;
  }

 private:
  std::deque<storage::batch_ptr> batches_;
  size_t bytes_ = 0;
};

/// Counters of one topic since the broker started (for /metrics); loop thread.
struct topic_counters {
  uint64_t publish_records = 0;  // records appended (publishes, ingest, dead letters)
  uint64_t publish_bytes = 0;    // RecordBatch bytes appended
  uint64_t deliver_records = 0;  // records sent to subscribers and group members (redeliveries too)
};

class topic {
 public:
  storage::topic_config config;
  storage::topic_state state;          // as of the latest commit the loop has seen
  bool deleting = false;               // delete submitted; refuse new work
  tail_cache cache;
  std::vector<subscription*> readers;  // subscriptions reading this topic (owned by sessions)
  std::map<std::string, std::unique_ptr<consumer_group>> groups;
  bool has_new_records = false;        // appended since the last dispatch pass
  bool trim_in_flight = false;         // a retention trim is queued at the writer
  topic_counters counters;

  explicit topic(storage::topic_config c, storage::topic_state s)
      : config(std::move(c)), state(s) {}
  ~topic();
  void remove_reader(subscription* s);
};

/// All topics by name and by id; owns them. Enforces the global cache budget.
class topic_registry {
 public:
  explicit topic_registry(size_t cache_budget_bytes) : cache_budget_(cache_budget_bytes) {}

  topic* find(std::string_view name);
  topic* find(uint32_t id);
  topic& add(storage::topic_config c, storage::topic_state s);
  void remove(topic& t);
  /// Puts a just-committed batch into its topic's cache, evicting old ones
  /// while the total is above the budget.
  void cache_batch(topic& t, storage::batch_ptr b);
  void uncache_before(topic& t, uint64_t offset);

  const std::map<std::string, std::unique_ptr<topic>, std::less<>>& all() const { return by_name_; }
  size_t cached_bytes() const { return cached_bytes_; }

 private:
  std::map<std::string, std::unique_ptr<topic>, std::less<>> by_name_;
  std::unordered_map<uint32_t, topic*> by_id_;
  size_t cache_budget_;
  size_t cached_bytes_ = 0;
};

}  // namespace wharf
