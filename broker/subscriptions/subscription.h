// subscription: a stream of records from one topic to one session, either
// ephemeral (ephemeral_subscription.h) or as a consumer-group member
// (groups/group_member.h). Owned by its session (session::subscriptions),
// loop thread only. The broker calls dispatch() whenever it may be able to
// send more: new records committed, credit or acks returned, the session's
// write queue drained.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace wharf {

class broker;
class session;
class topic;

class subscription {
 public:
  subscription(uint64_t id, session& owner) : id_(id), owner_(owner) {}
  virtual ~subscription() = default;
  subscription(const subscription&) = delete;
  subscription& operator=(const subscription&) = delete;

  uint64_t id() const { return id_; }
  session& owner() { return owner_; }

  /// Sends what the flow-control window and the session allow.
  virtual void dispatch(broker& b) = 0;
  /// Client messages; each returns window space. Defaults ignore them.
  virtual void on_credit(broker& b, uint32_t records) {}
  virtual void on_ack(broker& b, std::span<const uint64_t> offsets) {}
  virtual void on_nack(broker& b, std::span<const uint64_t> offsets, uint32_t delay_ms, bool release) {}
  /// Before a graceful detach: what the client's application still holds.
  virtual void set_held(std::vector<uint64_t> offsets) {}
  /// The subscription is ending: unhook from the topic or group. `graceful`
  /// when the client asked (Unsubscribe); false when its connection closed or
  /// the topic or group was deleted. Called exactly once, before destruction.
  virtual void detach(broker& b, bool graceful) = 0;

 private:
  uint64_t id_;
  session& owner_;
};

}  // namespace wharf
