// ephemeral_subscription: a reader without a group. It starts at an offset,
// receives every record from there in order, keeps nothing durable and needs
// no acks. Flow control is a window of records sent and not yet credited back
// by the client (Credit frames), so a slow reader holds at most `window`
// records plus one frame in broker memory; the rest waits on disk.
#pragma once

#include "subscription.h"

namespace wharf {

class ephemeral_subscription final : public subscription {
 public:
  ephemeral_subscription(uint64_t id, session& owner, topic& source, uint64_t start_offset,
                         uint32_t window);

  void dispatch(broker& b) override;
  void on_credit(broker& b, uint32_t records) override;
  void detach(broker& b, bool graceful) override;

  uint64_t next_offset() const { return next_offset_; }

 private:
  topic* source_;         // null once detached
  uint64_t next_offset_;  // next record to send
  uint32_t window_;       // records sent and not credited, at most
  uint32_t in_flight_ = 0;
};

}  // namespace wharf
