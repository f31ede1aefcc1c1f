// log_store: wharfd's LMDB environment and everything that knows its layout.
//
// One environment in data_dir holds every topic's log, the topic metadata and
// the consumer groups' progress (layout in schemas/store.fbs). The store knows
// nothing of sockets, frames or threads beyond LMDB's own rules:
//   * at most one write_txn exists at a time; only the group-commit writer
//     thread opens them (broker/storage/group_commit_writer.h);
//   * read_txns are opened on the broker loop thread, are short, and every
//     span they return points into the map and dies with the transaction.
// Errors are store_error values; broker/errors.cc maps them to wire codes.
#pragma once

#include <lmdb.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace wharf::storage {

enum class store_error : uint8_t {
  ok = 0,
  map_full,        // LMDB map full: raise map_size or let retention free space
  disk_full,       // ENOSPC or EDQUOT, or a write cut short on a full file system
  io_error,        // any other failure of the file system or LMDB
  corrupted,       // a stored value failed its checks (magic, CRC, verifier)
  not_found,
  exists,
  fatal,           // the environment is unusable (MDB_PANIC); sticky
  closed,          // the writer has stopped (broker shutting down)
};
const char* to_string(store_error e);
store_error from_mdb(int rc);  // MDB_SUCCESS -> ok

enum class fsync_policy { always, interval, never };

struct store_options {
  std::string data_dir;
  uint64_t map_size = 64ull << 30;  // bytes; the file is sparse
  fsync_policy fsync = fsync_policy::always;
};

struct topic_config {
  uint32_t id = 0;               // never reused
  std::string name;
  uint64_t created_us = 0;       // microseconds since the Unix epoch
  uint64_t retention_ms = 0;     // 0 = keep forever
  uint64_t retention_bytes = 0;  // 0 = no limit
};

struct topic_state {
  uint64_t first_offset = 0;       // lowest stored offset (== next_offset when empty)
  uint64_t next_offset = 0;        // offset the next record gets
  uint64_t bytes = 0;              // stored bytes, batch headers included
  uint64_t last_timestamp_us = 0;  // newest batch's append time, 0 if none ever
};

/// A stored batch as read from the map. Valid until its transaction ends.
struct stored_batch {
  uint64_t base_offset = 0;
  uint32_t count = 0;
  uint64_t timestamp_us = 0;
  uint32_t crc = 0;                // CRC32C of data, as stored
  std::span<const uint8_t> data;   // the RecordBatch flatbuffer; not aligned
  size_t stored_bytes = 0;         // header + data
};

/// Sizes of the environment, for stats.
struct store_usage {
  uint64_t map_size = 0;    // bytes
  uint64_t used_bytes = 0;  // pages up to the highest one in use
};

class log_store;

/// A transaction; aborts on destruction unless committed.
class txn {
 public:
  txn(txn&& o) noexcept
      : store_(o.store_),
        txn_(o.txn_),
        appended_overflow_pages_(o.appended_overflow_pages_),
        appended_small_bytes_(o.appended_small_bytes_),
        free_pages_(o.free_pages_) {
    o.txn_ = nullptr;
  }
  txn(const txn&) = delete;
  txn& operator=(const txn&) = delete;
  ~txn() { abort(); }

  bool ok() const { return txn_ != nullptr; }
  store_error commit();
  void abort();

  // ---- reads ----
  std::vector<std::pair<topic_config, topic_state>> load_topics();
  /// The batch that contains `offset`, or else the first batch after it.
  std::optional<stored_batch> batch_at(uint32_t topic_id, uint64_t offset);
  /// First offset whose batch was appended at or after `timestamp_us`;
  /// state.next_offset when there is none.
  uint64_t offset_for_time(uint32_t topic_id, const topic_state& state, uint64_t timestamp_us);
  /// Topic ids that have batches in the log (used to find logs of deleted topics).
  std::vector<uint32_t> log_topic_ids();
  std::vector<std::pair<std::string, std::vector<uint8_t>>> load_groups(uint32_t topic_id);
  uint32_t next_topic_id();

  // ---- writes (write transactions only) ----
  /// Fails with map_full when the batch would eat into the last part of the
  /// map (1/32 of it, 128 KiB to 64 MiB), which appends leave to the work
  /// that frees space: retention trims, purges of deleted topics and group
  /// progress copy pages on write too, and without that reserve a map that
  /// publishing filled could never be emptied.
  store_error put_batch(uint32_t topic_id, uint64_t base_offset, uint32_t count,
                        uint64_t timestamp_us, std::span<const uint8_t> data);
  store_error put_topic(const topic_config& config);
  store_error put_topic_state(uint32_t topic_id, const topic_state& state);
  store_error delete_topic(const topic_config& config);  // metadata only, see purge_log
  store_error set_next_topic_id(uint32_t id);
  /// Removes the oldest batches of a topic while one is older than
  /// `keep_after_us` or the topic holds more than `max_bytes` (0 = no limit;
  /// the newest batch is never removed for size), at most `max_batches`.
  /// Updates `state`. Sets `more` when the limit stopped it early.
  store_error trim(uint32_t topic_id, topic_state& state, uint64_t keep_after_us,
                   uint64_t max_bytes, size_t max_batches, size_t& removed, bool& more);
  /// Deletes up to `max_batches` of a deleted topic's log; `done` when none remain.
  store_error purge_log(uint32_t topic_id, size_t max_batches, bool& done);
  store_error put_group(uint32_t topic_id, std::string_view group, std::span<const uint8_t> value);
  store_error delete_group(uint32_t topic_id, std::string_view group);

 private:
  friend class log_store;
  txn(log_store* store, MDB_txn* t) : store_(store), txn_(t) {}
  std::optional<stored_batch> decode_batch(const MDB_val& key, const MDB_val& value);
  /// Whether an append of `bytes` leaves the map's reserve free (see
  /// put_batch); counts it against this transaction when it does.
  bool room_for_append(size_t bytes);
  uint64_t free_pages();

  log_store* store_;
  MDB_txn* txn_;
  uint64_t appended_overflow_pages_ = 0;  // pages of large values put_batch stored
  uint64_t appended_small_bytes_ = 0;     // bytes of small values put_batch stored
  std::optional<uint64_t> free_pages_;    // LMDB's free list, counted once when needed
};

/// Owns the LMDB environment and the lock that keeps a second wharfd out.
class log_store {
 public:
  /// Opens (creating if needed) the environment in options.data_dir. On
  /// failure returns nullptr and a one-line reason in `error`.
  static std::unique_ptr<log_store> open(const store_options& options, std::string& error);
  ~log_store();

  txn begin_read();
  txn begin_write();  // the writer thread only

  /// Flushes committed data to disk (fsync policy `interval`).
  store_error sync();
  store_usage usage() const;
  const store_options& options() const { return options_; }

 private:
  friend class txn;
  log_store() = default;

  store_options options_;
  MDB_env* env_ = nullptr;
  MDB_dbi meta_ = 0, topics_ = 0, topic_state_ = 0, log_ = 0, groups_ = 0;
  int lock_fd_ = -1;
};

inline constexpr uint32_t kBatchMagic = 0x57424154;  // "WBAT"
inline constexpr uint32_t kFormatVersion = 1;

}  // namespace wharf::storage
