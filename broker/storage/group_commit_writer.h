// group_commit_writer: the single thread that writes to LMDB.
//
// The broker loop submits write_ops from its thread; the writer takes every op
// waiting when it becomes free and applies them all in ONE write transaction
// (group commit), commits it (fsync per policy), then hands the finished ops
// back to the loop through uv_async_send, where each op's `done` runs on the
// loop thread. So a commit is paid once for everything that queued up while
// the previous one was in flight; durability costs latency, not throughput.
//
// Durability (fsync=always): LMDB runs with MDB_NOMETASYNC, so a commit costs
// one fdatasync (data pages and any earlier meta page) instead of two, and
// the commit's own meta page becomes durable with the next fdatasync. The
// writer therefore completes a round's ops after the NEXT round has committed,
// or after an explicit sync when nothing else is queued. Under load that
// halves fsyncs per commit; an isolated publish still costs two.
//
// The writer owns the tail of every log: it assigns offsets and timestamps at
// append time, so a failed transaction never leaves holes. If a transaction
// fails because storage is full, the appends in it fail with that error and
// the other ops (group progress, trims, deletes) are retried without them, so
// consumers and retention keep working while the disk is full.
//
// Thread rules: submit() from the loop thread only; every field of a
// write_op belongs to the writer between submit() and `done`.
#pragma once

#include <uv.h>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>
#include <vector>

#include "batch.h"
#include "latency_histogram.h"
#include "log_store.h"

namespace wharf::storage {

struct write_op {
  enum class kind : uint8_t {
    append,        // batch -> base_offset, timestamp_us filled in
    create_topic,  // config (name, retention) -> config.id, config.created_us, state
    alter_topic,   // config (id, name, retention)
    delete_topic,  // config (id, name); its log is purged in the background
    trim,          // topic_id, keep_after_us, max_bytes -> state, more
    save_group,    // topic_id, group, value
    delete_group,  // topic_id, group
  };

  kind what = kind::append;
  uint32_t topic_id = 0;
  std::shared_ptr<batch> data;   // append
  topic_config config;           // create_topic, alter_topic, delete_topic
  uint64_t keep_after_us = 0;    // trim: remove batches appended before this (0 = no time limit)
  uint64_t max_bytes = 0;        // trim: size limit (0 = none)
  std::string group;             // save_group, delete_group
  std::vector<uint8_t> value;    // save_group: serialized GroupState

  // Outputs, valid in `done`.
  store_error error = store_error::ok;
  topic_state state;             // the topic's state after the op
  bool more = false;             // trim: stopped at its per-op limit

  /// Runs on the loop thread once the op's transaction committed or failed.
  std::function<void(write_op&)> done;
};

using write_op_ptr = std::unique_ptr<write_op>;

struct writer_stats {
  std::atomic<uint64_t> commits{0};           // successful write transactions
  std::atomic<uint64_t> appended_records{0};
  std::atomic<uint64_t> appended_bytes{0};
  std::atomic<uint64_t> failed_commits{0};
  std::atomic<uint64_t> syncs{0};             // explicit fsyncs (idle after a commit, or interval)
  std::atomic<uint64_t> last_commit_us{0};    // duration of the latest commit, fsync included
  latency_histogram commit_latency;           // every successful commit, fsync included
};

class group_commit_writer {
 public:
  /// `topics` is the state loaded at start-up; `orphans` are ids of deleted
  /// topics whose logs still need purging.
  group_commit_writer(log_store& store, uv_loop_t* loop,
                      const std::vector<std::pair<topic_config, topic_state>>& topics,
                      std::vector<uint32_t> orphans, uint32_t fsync_interval_ms);
  ~group_commit_writer();

  /// `after` runs on the loop thread after each round of completions (the
  /// broker wakes subscribers there, once per round rather than per op).
  void start(std::function<void()> after);
  /// Applies everything still queued, stops the thread, runs the last
  /// completions and closes the loop handle. Loop thread; blocks until the
  /// writer is idle. The loop must run once more to finish the close.
  void stop();
  /// Blocks until every op submitted so far has committed (or failed), then
  /// runs their completions. Loop thread.
  void flush();

  /// Queues an op. After stop(), completes it at once with store_error::closed.
  void submit(write_op_ptr op);

  /// Bytes of appends submitted and not yet completed (for backpressure).
  uint64_t queued_bytes() const { return queued_bytes_.load(std::memory_order_relaxed); }
  const writer_stats& stats() const { return stats_; }

 private:
  void run();
  bool commit_group(std::vector<write_op_ptr>& ops);  // false when the txn failed
  store_error apply(txn& t, write_op& op, std::unordered_map<uint32_t, topic_state>& touched);
  store_error purge_step(txn& t);
  void remember(uint32_t topic_id);  // saves a tail before the current txn changes it
  void drain_completions();
  static void on_async(uv_async_t* handle);

  log_store& store_;
  uv_loop_t* loop_;
  uv_async_t async_;
  std::thread thread_;
  std::function<void()> after_completions_;
  uint32_t fsync_interval_ms_;  // 0 unless the policy is `interval`
  bool pipelined_;              // fsync=always: ack a commit once the next one (or a sync) flushed its meta page

  std::mutex mu_;
  std::condition_variable cv_;
  std::condition_variable idle_cv_;      // signalled when a round ends with an empty queue
  bool busy_ = false;                    // guarded by mu_: a round is being applied
  bool stopped_ = false;                 // loop thread: stop() has run
  std::vector<write_op_ptr> queue_;      // guarded by mu_
  std::vector<write_op_ptr> completed_;  // guarded by mu_
  bool stopping_ = false;                // guarded by mu_
  std::atomic<uint64_t> queued_bytes_{0};

  // Writer-thread state.
  std::unordered_map<uint32_t, topic_state> tails_;       // authoritative log tails
  std::unordered_map<uint32_t, std::optional<topic_state>> undo_;  // tails before this txn
  std::unordered_map<std::string, uint32_t> topic_ids_;   // names of live topics
  std::deque<uint32_t> purging_;                          // deleted topics with log left
  uint32_t next_topic_id_ = 1;
  store_error sticky_ = store_error::ok;                  // set once the env is unusable
  bool unsynced_ = false;
  bool purge_stalled_ = false;                             // last purge-only round failed
  size_t delete_chunk_ = 10000;                            // batches per trim op / purge step
  writer_stats stats_;
};

}  // namespace wharf::storage
