// group_state: the bookkeeping of one consumer group, as a plain state
// machine: no sockets, no LMDB, no clock (callers pass `now_ms`). The
// broker's consumer_group drives it; tests drive it directly.
//
// Model. Offsets below `committed` are finished (acked or dead-lettered).
// Every offset in the window [committed, dispatch_offset) is in exactly one
// slot state:
//   finished   acked/dead-lettered out of order (above committed)
//   waiting    keyed record behind an unfinished earlier record of its key
//   ready      to be delivered (first time or again)
//   in_flight  delivered to `member`, ack due by `deadline_ms`
//   delayed    nacked with a delay; ready again at `deadline_ms`
//   dead       reached max_deliveries; the driver is moving it to <topic>.dlq
// A key's gate is held by its lowest unfinished offset; its later records
// wait until that one finishes, so one key is processed strictly in order.
// Records without a key, and different keys, go out in parallel.
//
// Spreading: members take turns, each taking a run of consecutive records
// (one when records trickle in, up to kMaxRun when many are ready) so that
// light load alternates members and heavy load keeps batches together.
//
// Memory: one 40-byte slot per record in the window; the window never grows
// beyond kMaxWindow, and new records are only read while members have unused
// credit, so a group with no members or a stuck record holds little.
#pragma once

#include <cstdint>
#include <deque>
#include <optional>
#include <queue>
#include <unordered_map>
#include <utility>
#include <vector>

namespace wharf {

struct group_settings {
  uint32_t ack_timeout_ms = 30000;  // redeliver when not acked within this
  uint32_t max_deliveries = 5;      // dead-letter after this many deliveries; 0 = never
};

enum class failure_reason : uint8_t { nack, ack_timeout, member_left };
const char* to_string(failure_reason r);

/// One record handed to one member.
struct assignment {
  uint64_t member = 0;
  uint64_t offset = 0;
  uint16_t attempt = 0;  // 1 on first delivery
};

struct dead_letter {
  uint64_t offset = 0;
  uint16_t deliveries = 0;
  failure_reason reason = failure_reason::nack;  // the last failure
};

using offset_range = std::pair<uint64_t, uint64_t>;  // [first, end)

class group_state {
 public:
  static constexpr uint64_t kMaxWindow = 200000;  // records between committed and dispatch_offset
  static constexpr uint32_t kMaxRun = 256;        // most consecutive records given to one member

  explicit group_state(group_settings settings = {}, uint64_t committed = 0,
                       const std::vector<offset_range>& finished = {});

  const group_settings& settings() const { return settings_; }
  void set_settings(group_settings s);

  // ---- members ----
  void add_member(uint64_t id, uint32_t max_in_flight);
  /// Removes a member; its in-flight records are ready again at once. When
  /// it vanished they count as failed deliveries (dead-lettered at
  /// max_deliveries); when it left `graceful`ly (unsubscribed, so it did not
  /// process them) the delivery is not counted.
  /// `held`: with graceful, the records the member's application did get
  /// (they count as failed); null means none.
  void remove_member(uint64_t id, bool graceful = false, const std::vector<uint64_t>* held = nullptr);
  bool has_member(uint64_t id) const;
  /// A paused member gets nothing new (its connection is backed up); its
  /// credit is not counted until it is resumed.
  void set_member_paused(uint64_t id, bool paused);
  uint32_t in_flight(uint64_t member) const;
  size_t member_count() const { return members_.size(); }

  // ---- reading the log ----
  uint64_t committed() const { return committed_; }
  uint64_t dispatch_offset() const { return dispatch_; }
  /// True when the record at dispatch_offset() should be offered now:
  /// members have credit the ready records do not cover, and the window has room.
  bool wants_records() const;
  /// Offers the record at dispatch_offset() (key_hash when it has a key).
  void offer(std::optional<uint64_t> key_hash);
  /// Records below `offset` are gone (retention): every unfinished one of
  /// them is dropped and counted in expired().
  void skip_to(uint64_t offset);

  // ---- delivering ----
  /// The next record to deliver and the member to take it, or nothing when
  /// no record is ready or no member has credit.
  std::optional<assignment> next_assignment(int64_t now_ms);

  // ---- outcomes ----
  /// Finishes the record (from any member: acks are group-wide). False when
  /// it was not pending (already finished, unknown, or from before a reset).
  bool ack(uint64_t offset);
  /// Redelivers after `delay_ms`. False when the record is not in flight, or
  /// is in flight to another member than `member` (0 = whoever holds it):
  /// a member whose delivery timed out cannot cancel the redelivery.
  bool nack(uint64_t offset, uint32_t delay_ms, int64_t now_ms, uint64_t member = 0);
  /// Gives a record back unprocessed: ready again at once, and this delivery
  /// does not count. False unless it is in flight to `member` (0 = anyone).
  bool release(uint64_t offset, uint64_t member = 0);
  /// Expires ack deadlines and ends nack delays that are due.
  void tick(int64_t now_ms);
  /// When tick() next has work, or INT64_MAX.
  int64_t next_deadline() const;

  // ---- dead letters ----
  /// Records that reached max_deliveries since the last call. Each stays
  /// unfinished until finish_dead_letter() (or retry_dead_letter()).
  std::vector<dead_letter> take_dead_letters();
  void finish_dead_letter(uint64_t offset);
  /// Moving it failed (e.g. storage full): offer it to take_dead_letters() again.
  void retry_dead_letter(uint64_t offset);

  // ---- admin and persistence ----
  /// Drops all pending work and restarts at `offset` (members stay; acks for
  /// earlier deliveries are ignored).
  void reset(uint64_t offset);
  /// Finished ranges above committed(), ascending, for persistence.
  std::vector<offset_range> finished_ranges() const;
  /// Records delivered at least once and not yet finished.
  uint64_t pending() const { return pending_; }
  uint64_t redeliveries() const { return redeliveries_; }
  uint64_t dead_lettered() const { return dead_lettered_; }
  uint64_t expired() const { return expired_; }
  void restore_counters(uint64_t redeliveries, uint64_t dead_lettered) {
    redeliveries_ = redeliveries;
    dead_lettered_ = dead_lettered;
  }
  /// True when committed/finished/counters changed since the last call.
  bool take_dirty() { return std::exchange(dirty_, false); }

 private:
  enum class status : uint8_t { finished, waiting, ready, in_flight, delayed, dead };
  struct slot {
    uint64_t key_hash = 0;
    int64_t deadline_ms = 0;     // in_flight: ack due; delayed: ready again
    uint64_t member = 0;         // in_flight: owner; otherwise the last owner
    uint16_t attempts = 0;       // deliveries so far
    status st = status::ready;
    bool has_key = false;
    failure_reason last_failure = failure_reason::nack;
  };
  struct member_rec {
    uint64_t id;
    uint32_t max_in_flight;
    uint32_t in_flight = 0;
    bool paused = false;
    uint32_t free() const { return paused ? 0 : max_in_flight - in_flight; }
  };
  struct gate {
    uint64_t holder;                // lowest unfinished offset of the key
    std::deque<uint64_t> waiting;   // later offsets of the key, ascending
  };
  using timed = std::pair<int64_t, uint64_t>;  // (deadline, offset)

  slot* find(uint64_t offset);
  const slot* find(uint64_t offset) const;
  void make_ready(uint64_t offset, slot& s);
  void release_member(slot& s);
  void uncount(uint64_t offset, slot& s);
  void fail(uint64_t offset, slot& s, failure_reason why, uint32_t delay_ms, int64_t now_ms);
  void finish(uint64_t offset, slot& s);
  void advance_committed();
  member_rec* pick_member(uint64_t avoid);
  void compact_deadlines();

  group_settings settings_;
  uint64_t committed_;
  uint64_t dispatch_;
  std::deque<slot> window_;                   // slot i is offset committed_ + i
  std::vector<member_rec> members_;
  size_t rr_ = 0;                             // round-robin cursor into members_
  uint32_t run_ = 0;                          // records given to members_[rr_] in a row
  uint32_t run_limit_ = 1;                    // length of the current run
  std::deque<uint64_t> fresh_;                // ready, never delivered, ascending
  std::priority_queue<uint64_t, std::vector<uint64_t>, std::greater<>> retry_;  // ready again
  std::vector<timed> ack_deadlines_;          // min-heap (std::greater); may hold stale entries
  std::priority_queue<timed, std::vector<timed>, std::greater<>> delays_;        // nack delays
  std::unordered_map<uint64_t, gate> gates_;  // by key hash
  std::vector<dead_letter> dead_;             // reached max_deliveries, not yet taken
  std::deque<offset_range> restored_;         // finished before a restart, not yet re-offered
  uint64_t ready_count_ = 0;                  // slots in state ready
  uint64_t pending_ = 0;                      // slots in_flight, delayed, dead, or ready after a delivery
  uint64_t redeliveries_ = 0;
  uint64_t dead_lettered_ = 0;
  uint64_t expired_ = 0;
  uint64_t free_credit_ = 0;                  // sum over members of max_in_flight - in_flight
  uint64_t in_flight_total_ = 0;              // slots in_flight
  bool dirty_ = false;
};

/// 64-bit hash of a record key (FNV-1a). Equal keys give equal hashes; a
/// collision only serialises two keys, it never reorders one.
uint64_t key_hash(const uint8_t* data, size_t size);

}  // namespace wharf
