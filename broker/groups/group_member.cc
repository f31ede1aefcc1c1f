#include "group_member.h"

#include "consumer_group.h"

namespace wharf {

group_member::group_member(uint64_t id, session& owner, consumer_group& group, uint32_t max_in_flight)
    : subscription(id, owner), group_(&group), max_in_flight_(max_in_flight) {}

void group_member::dispatch(broker& b) {
  if (group_) group_->dispatch(b);
}

void group_member::on_ack(broker& b, std::span<const uint64_t> offsets) {
  if (group_) group_->ack(b, offsets);
}

void group_member::on_nack(broker& b, std::span<const uint64_t> offsets, uint32_t delay_ms, bool release) {
  if (group_) group_->nack(b, id(), offsets, delay_ms, release);
}

void group_member::detach(broker& b, bool graceful) {
  consumer_group* g = group_;
  group_ = nullptr;
  if (g) g->remove_member(b, *this, graceful, held_);
}

}  // namespace wharf
