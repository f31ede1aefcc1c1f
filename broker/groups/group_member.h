// group_member: one member of a consumer group, as seen by its session.
// Owned by the session (session::subscriptions); registered with its group.
// Acks and nacks are group-wide: they finish or retry the offset whoever
// holds it, so a member that reconnects can still ack what it processed.
#pragma once

#include "subscriptions/subscription.h"

namespace wharf {

class consumer_group;

class group_member final : public subscription {
 public:
  group_member(uint64_t id, session& owner, consumer_group& group, uint32_t max_in_flight);

  void dispatch(broker& b) override;
  void on_ack(broker& b, std::span<const uint64_t> offsets) override;
  void on_nack(broker& b, std::span<const uint64_t> offsets, uint32_t delay_ms, bool release) override;
  void set_held(std::vector<uint64_t> offsets) override { held_ = std::move(offsets); }
  void detach(broker& b, bool graceful) override;

  consumer_group* group() const { return group_; }
  uint32_t max_in_flight() const { return max_in_flight_; }
  uint64_t delivered = 0;  // records sent to this member

 private:
  consumer_group* group_;  // null once detached
  uint32_t max_in_flight_;
  std::vector<uint64_t> held_;  // from Unsubscribe: delivered to the application, not settled
};

}  // namespace wharf
