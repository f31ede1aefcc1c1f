#include "group_commit_writer.h"

#include <algorithm>
#include <chrono>

#include "log.h"
#include "store_generated.h"
#include "wire.h"

namespace wharf::storage {
namespace {

constexpr size_t kMaxTxnAppendBytes = 16u << 20;  // bytes of appends per transaction (bounds LMDB's dirty pages)
// Batches one trim op or one purge step deletes at most. Deleting needs free
// pages too (copy-on-write), so on a full map the chunk halves until it fits.
constexpr size_t kMaxDeleteChunk = 10000;
constexpr size_t kMinDeleteChunk = 16;

uint64_t steady_us() {
  using namespace std::chrono;
  return duration_cast<microseconds>(steady_clock::now().time_since_epoch()).count();
}

bool is_space_error(store_error e) {
  return e == store_error::map_full || e == store_error::disk_full;
}

}  // namespace

group_commit_writer::group_commit_writer(
    log_store& store, uv_loop_t* loop,
    const std::vector<std::pair<topic_config, topic_state>>& topics, std::vector<uint32_t> orphans,
    uint32_t fsync_interval_ms)
    : store_(store), loop_(loop), fsync_interval_ms_(fsync_interval_ms),
      pipelined_(store.options().fsync == fsync_policy::always) {
  for (const auto& [cfg, st] : topics) {
    tails_[cfg.id] = st;
    topic_ids_[cfg.name] = cfg.id;
  }
  purging_.assign(orphans.begin(), orphans.end());
  auto t = store_.begin_read();
  if (t.ok()) next_topic_id_ = t.next_topic_id();
  uv_async_init(loop_, &async_, &group_commit_writer::on_async);
  async_.data = this;
}

group_commit_writer::~group_commit_writer() {
  if (thread_.joinable()) stop();
}

void group_commit_writer::start(std::function<void()> after) {
  after_completions_ = std::move(after);
  thread_ = std::thread([this] { run(); });
}

void group_commit_writer::stop() {
  {
    std::lock_guard lk(mu_);
    stopping_ = true;
  }
  cv_.notify_one();
  if (thread_.joinable()) thread_.join();
  stopped_ = true;
  drain_completions();
  if (!uv_is_closing(reinterpret_cast<uv_handle_t*>(&async_))) {
    uv_close(reinterpret_cast<uv_handle_t*>(&async_), nullptr);
  }
}

void group_commit_writer::flush() {
  {
    std::unique_lock lk(mu_);
    idle_cv_.wait(lk, [&] { return (queue_.empty() && !busy_) || !thread_.joinable(); });
  }
  drain_completions();
}

void group_commit_writer::submit(write_op_ptr op) {
  if (stopped_) {
    op->error = store_error::closed;
    if (op->done) op->done(*op);
    return;
  }
  if (op->what == write_op::kind::append) {
    queued_bytes_.fetch_add(op->data->bytes().size(), std::memory_order_relaxed);
  }
  {
    std::lock_guard lk(mu_);
    queue_.push_back(std::move(op));
  }
  cv_.notify_one();
}

void group_commit_writer::on_async(uv_async_t* handle) {
  static_cast<group_commit_writer*>(handle->data)->drain_completions();
}

void group_commit_writer::drain_completions() {
  std::vector<write_op_ptr> done;
  {
    std::lock_guard lk(mu_);
    done.swap(completed_);
  }
  for (auto& op : done) {
    if (op->what == write_op::kind::append) {
      queued_bytes_.fetch_sub(op->data->bytes().size(), std::memory_order_relaxed);
    }
    if (op->done) op->done(*op);
  }
  if (!done.empty() && after_completions_) after_completions_();
}

void group_commit_writer::run() {
  std::vector<write_op_ptr> ops;
  uint64_t last_sync_us = steady_us();
  // Durability of a commit under fsync=always (see the header): its meta page
  // is flushed by the next commit's fdatasync or by an explicit sync, so its
  // ops wait in `awaiting_sync` until then.
  std::vector<write_op_ptr> awaiting_sync;
  auto hand_back = [&](std::vector<write_op_ptr>& done) {
    if (done.empty()) return;
    {
      std::lock_guard lk(mu_);
      for (auto& op : done) completed_.push_back(std::move(op));
    }
    done.clear();
    uv_async_send(&async_);
  };
  auto sync_awaiting = [&] {
    if (awaiting_sync.empty()) return;
    stats_.syncs.fetch_add(1, std::memory_order_relaxed);
    if (store_.sync() != store_error::ok) {
      // Committed but not known to be on disk: say so rather than ack.
      log_error("fsync of the data file failed; %zu ops are not acknowledged", awaiting_sync.size());
      for (auto& op : awaiting_sync) op->error = store_error::io_error;
    }
    hand_back(awaiting_sync);
  };
  while (true) {
    {
      std::unique_lock lk(mu_);
      auto has_work = [&] { return stopping_ || !queue_.empty(); };
      if (!awaiting_sync.empty()) {
        // Never wait with unacknowledged commits: sync them if idle.
      } else if (unsynced_ && fsync_interval_ms_ > 0) {
        auto due = std::chrono::microseconds(last_sync_us + fsync_interval_ms_ * 1000ull);
        cv_.wait_until(lk, std::chrono::steady_clock::time_point(due), has_work);
      } else if (purging_.empty() || purge_stalled_ || sticky_ != store_error::ok) {
        cv_.wait(lk, has_work);
      }
      if (queue_.empty() && (stopping_ || !awaiting_sync.empty())) {
        lk.unlock();
        sync_awaiting();
        lk.lock();
        busy_ = false;
        idle_cv_.notify_all();
        if (stopping_ && queue_.empty()) break;
        continue;
      }
      // Take everything waiting, up to the per-transaction byte budget.
      size_t bytes = 0, n = 0;
      for (; n < queue_.size(); ++n) {
        auto& op = queue_[n];
        if (op->what == write_op::kind::append) {
          if (n > 0 && bytes + op->data->bytes().size() > kMaxTxnAppendBytes) break;
          bytes += op->data->bytes().size();
        }
      }
      ops.assign(std::make_move_iterator(queue_.begin()), std::make_move_iterator(queue_.begin() + n));
      queue_.erase(queue_.begin(), queue_.begin() + n);
      busy_ = true;
    }
    if (!ops.empty()) purge_stalled_ = false;
    bool committed = true;
    if (!ops.empty() || (!purging_.empty() && !purge_stalled_)) {
      // A purge-only round that fails retries with a smaller chunk; at the
      // smallest it waits for the next op.
      bool at_min = delete_chunk_ == kMinDeleteChunk;
      committed = commit_group(ops);
      if (!committed && ops.empty() && at_min) purge_stalled_ = true;
    }
    if (unsynced_ && fsync_interval_ms_ > 0 && steady_us() - last_sync_us >= fsync_interval_ms_ * 1000ull) {
      stats_.syncs.fetch_add(1, std::memory_order_relaxed);
      if (store_.sync() != store_error::ok) log_warn("fsync of the data file failed");
      unsynced_ = false;
      last_sync_us = steady_us();
    }
    if (!pipelined_) {
      hand_back(ops);
    } else if (committed) {
      hand_back(awaiting_sync);  // this commit's fdatasync made the previous one durable
      awaiting_sync = std::move(ops);
      ops.clear();
    } else {
      sync_awaiting();  // keep completions in commit order
      hand_back(ops);
    }
    {
      std::lock_guard lk(mu_);
      busy_ = !awaiting_sync.empty();
    }
    idle_cv_.notify_all();
  }
  if (unsynced_) store_.sync();
}

// Applies `ops` in one transaction; on a space error retries without appends.
bool group_commit_writer::commit_group(std::vector<write_op_ptr>& ops) {
  if (sticky_ != store_error::ok) {
    for (auto& op : ops) op->error = sticky_;
    return false;
  }
  bool skip_appends = false;
  bool structural = std::any_of(ops.begin(), ops.end(), [](auto& op) {
    return op->what == write_op::kind::create_topic || op->what == write_op::kind::delete_topic;
  });
  for (int attempt = 0; attempt < 2; ++attempt) {
    uint64_t started = steady_us();
    // What a failed transaction must put back: touched tails, and for the
    // rare groups that create or delete topics, the name index and id counter.
    undo_.clear();
    std::unordered_map<std::string, uint32_t> saved_ids;
    if (structural) saved_ids = topic_ids_;
    auto saved_next_id = next_topic_id_;
    auto saved_purging = purging_;
    std::unordered_map<uint32_t, topic_state> touched;
    store_error failure = store_error::ok;
    txn t = store_.begin_write();
    if (!t.ok()) failure = store_error::io_error;
    for (auto& op : ops) {
      if (failure != store_error::ok) break;
      if (skip_appends && op->what == write_op::kind::append) continue;
      op->error = apply(t, *op, touched);
      // Op-level refusals (unknown topic, exists) leave the txn usable;
      // LMDB failures poison it.
      if (op->error != store_error::ok && op->error != store_error::not_found &&
          op->error != store_error::exists) {
        failure = op->error;
      }
    }
    if (failure == store_error::ok) {
      for (auto& [id, st] : touched) {
        if ((failure = t.put_topic_state(id, st)) != store_error::ok) break;
      }
    }
    // Background purging waits while storage is full: a retry is for the ops.
    if (failure == store_error::ok && !purging_.empty() && !skip_appends) failure = purge_step(t);
    if (failure == store_error::ok) {
      if (next_topic_id_ != saved_next_id) failure = t.set_next_topic_id(next_topic_id_);
    }
    if (failure == store_error::ok) failure = t.commit();
    if (failure == store_error::ok) {
      stats_.commits.fetch_add(1, std::memory_order_relaxed);
      delete_chunk_ = std::min(kMaxDeleteChunk, delete_chunk_ * 2);
      uint64_t took = steady_us() - started;
      stats_.last_commit_us.store(took, std::memory_order_relaxed);
      stats_.commit_latency.observe(took);
      unsynced_ = true;
      for (auto& op : ops) {
        if (op->what == write_op::kind::append && !skip_appends) {
          stats_.appended_records.fetch_add(op->data->count, std::memory_order_relaxed);
          stats_.appended_bytes.fetch_add(op->data->bytes().size(), std::memory_order_relaxed);
        }
      }
      return true;
    }
    t.abort();
    stats_.failed_commits.fetch_add(1, std::memory_order_relaxed);
    for (auto& [id, before] : undo_) {
      if (before) {
        tails_[id] = *before;
      } else {
        tails_.erase(id);
      }
    }
    if (structural) topic_ids_ = std::move(saved_ids);
    next_topic_id_ = saved_next_id;
    purging_ = std::move(saved_purging);
    if (failure == store_error::fatal) sticky_ = failure;
    log_warn("write transaction of %zu ops failed: %s", ops.size(), to_string(failure));
    for (auto& op : ops) op->error = failure;  // every op of a failed txn, tried or skipped
    if (is_space_error(failure)) delete_chunk_ = std::max(kMinDeleteChunk, delete_chunk_ / 2);
    bool has_other = std::any_of(ops.begin(), ops.end(),
                                 [](auto& op) { return op->what != write_op::kind::append; });
    if (!is_space_error(failure) || skip_appends || !has_other) return false;
    skip_appends = true;  // second attempt: let trims, deletes and group progress through
  }
  return false;
}

store_error group_commit_writer::apply(txn& t, write_op& op,
                                       std::unordered_map<uint32_t, topic_state>& touched) {
  using k = write_op::kind;
  switch (op.what) {
    case k::append: {
      auto it = tails_.find(op.data->topic_id);
      if (it == tails_.end()) return store_error::not_found;
      remember(it->first);
      topic_state& st = it->second;
      batch& b = *op.data;
      b.base_offset = st.next_offset;
      b.timestamp_us = std::max(wire::now_us(), st.last_timestamp_us);
      store_error e = t.put_batch(b.topic_id, b.base_offset, b.count, b.timestamp_us, b.bytes());
      if (e != store_error::ok) return e;
      b.stored_bytes = static_cast<uint32_t>(b.bytes().size() + sizeof(wharf::store::StoredBatchHeader));
      st.next_offset += b.count;
      st.bytes += b.stored_bytes;
      st.last_timestamp_us = b.timestamp_us;
      touched[b.topic_id] = st;
      op.state = st;
      return store_error::ok;
    }
    case k::create_topic: {
      if (topic_ids_.count(op.config.name)) return store_error::exists;
      op.config.id = next_topic_id_++;
      op.config.created_us = wire::now_us();
      store_error e = t.put_topic(op.config);
      if (e != store_error::ok) return e;
      topic_state st;
      remember(op.config.id);
      tails_[op.config.id] = st;
      topic_ids_[op.config.name] = op.config.id;
      touched[op.config.id] = st;
      op.state = st;
      return store_error::ok;
    }
    case k::alter_topic: {
      if (!tails_.count(op.config.id)) return store_error::not_found;
      return t.put_topic(op.config);
    }
    case k::delete_topic: {
      auto it = topic_ids_.find(op.config.name);
      if (it == topic_ids_.end() || it->second != op.config.id) return store_error::not_found;
      store_error e = t.delete_topic(op.config);
      if (e != store_error::ok) return e;
      topic_ids_.erase(it);
      remember(op.config.id);
      tails_.erase(op.config.id);
      touched.erase(op.config.id);
      purging_.push_back(op.config.id);
      return store_error::ok;
    }
    case k::trim: {
      auto it = tails_.find(op.topic_id);
      if (it == tails_.end()) return store_error::not_found;
      topic_state st = it->second;
      size_t removed = 0;
      store_error e = t.trim(op.topic_id, st, op.keep_after_us, op.max_bytes, delete_chunk_,
                             removed, op.more);
      if (e != store_error::ok) return e;
      if (removed) {
        remember(op.topic_id);
        it->second = st;
        touched[op.topic_id] = st;
      }
      op.state = st;
      return store_error::ok;
    }
    case k::save_group: {
      if (!tails_.count(op.topic_id)) return store_error::not_found;
      return t.put_group(op.topic_id, op.group, op.value);
    }
    case k::delete_group:
      return t.delete_group(op.topic_id, op.group);
  }
  return store_error::io_error;
}

void group_commit_writer::remember(uint32_t topic_id) {
  if (undo_.count(topic_id)) return;
  auto it = tails_.find(topic_id);
  undo_[topic_id] = it == tails_.end() ? std::nullopt : std::optional<topic_state>(it->second);
}

store_error group_commit_writer::purge_step(txn& t) {
  bool done = false;
  store_error e = t.purge_log(purging_.front(), delete_chunk_, done);
  if (e == store_error::ok && done) purging_.pop_front();
  return e;
}

}  // namespace wharf::storage
