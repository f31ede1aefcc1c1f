// consumer_group: runs one group of one topic on the broker loop thread.
//
// It binds the pure group_state to the rest of the broker: reads records
// (from the topic's tail cache or LMDB) and offers them to the state, sends
// each member the records assigned to it (one Deliver frame per member per
// round, sharing the batch bytes), moves dead letters to <topic>.dlq, and
// persists progress (committed offset + finished ranges + counters) through
// the group-commit writer: at most one save in flight per group, so many
// acks ride in one transaction.
//
// Lifecycle: owned by its topic (topic::groups). Created on first subscribe,
// by CreateGroup, or loaded at start-up; destroyed by DeleteGroup or with its
// topic, after end_all_members(). Completions that arrive later find it by
// (topic id, name, incarnation) and do nothing if it is gone.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "groups/group_state.h"
#include "storage/batch.h"
#include "storage/log_store.h"
#include "wire.h"

namespace wharf {

class broker;
class topic;
class group_member;
namespace webhooks {
class webhook;
}

class consumer_group {
 public:
  consumer_group(topic& source, std::string name, group_state state, uint64_t created_us);
  ~consumer_group();

  const std::string& name() const { return name_; }
  group_state& state() { return state_; }
  const group_state& state() const { return state_; }
  uint64_t created_us() const { return created_us_; }
  uint64_t incarnation() const { return incarnation_; }
  const std::vector<group_member*>& members() const { return members_; }
  topic& source() const { return *source_; }

  /// The webhook whose group this is (its member is the broker), or null.
  webhooks::webhook* webhook() const { return webhook_.get(); }
  void set_webhook(std::unique_ptr<webhooks::webhook> w);

  void add_member(broker& b, group_member& m);
  /// `graceful`: the member unsubscribed, so what it still held was not
  /// processed and goes back without counting as a delivery.
  void remove_member(broker& b, group_member& m, bool graceful, const std::vector<uint64_t>& held);

  /// Offers new records, delivers what members have credit for, moves dead
  /// letters, and saves progress when it changed.
  void dispatch(broker& b);
  void ack(broker& b, std::span<const uint64_t> offsets);
  /// Nacks from `member` (only records it still holds are redelivered).
  void nack(broker& b, uint64_t member, std::span<const uint64_t> offsets, uint32_t delay_ms, bool release);
  /// Ack deadlines and nack delays; called by the broker's group timer.
  void on_timer(broker& b);
  /// Retention removed records: forget the ones the group had not finished.
  void on_trimmed(broker& b);
  void reset(broker& b, uint64_t offset);
  /// Ends every member's subscription with SubscriptionEnded(code).
  void end_all_members(broker& b, wire::ErrorCode code, const std::string& message);

  /// Persists the current progress; `done` (optional) runs once a save that
  /// includes it has committed or failed.
  void save(broker& b, std::function<void(storage::store_error)> done = {});

  /// GroupInfo for describe/list.
  flatbuffers::Offset<wire::GroupInfo> build_info(flatbuffers::FlatBufferBuilder& fbb, uint64_t topic_next_offset) const;

  /// GroupState bytes for LMDB, and back.
  std::vector<uint8_t> encode() const;
  static std::unique_ptr<consumer_group> decode(topic& source, const std::string& name, std::span<const uint8_t> bytes);

 private:
  group_member* member(uint64_t id);
  void move_to_dlq(broker& b, const dead_letter& d);
  void submit_save(broker& b);

  topic* source_;
  std::string name_;
  group_state state_;
  uint64_t created_us_;
  uint64_t incarnation_;
  std::vector<group_member*> members_;
  std::unique_ptr<webhooks::webhook> webhook_;
  bool save_in_flight_ = false;
  bool save_again_ = false;
  std::vector<std::function<void(storage::store_error)>> save_waiters_;      // for the next save
  std::vector<std::function<void(storage::store_error)>> inflight_waiters_;  // for the save in flight
  std::vector<uint64_t> dlq_failed_;  // dead letters whose move failed; retried after dlq_retry_ms_
  int64_t dlq_retry_ms_ = 0;
};

}  // namespace wharf
