#include "ephemeral_subscription.h"

#include <algorithm>

#include "broker.h"
#include "delivery_frame.h"
#include "server/session.h"

namespace wharf {

ephemeral_subscription::ephemeral_subscription(uint64_t id, session& owner, topic& source,
                                               uint64_t start_offset, uint32_t window)
    : subscription(id, owner), source_(&source), next_offset_(start_offset), window_(window) {
  source.readers.push_back(this);
}

void ephemeral_subscription::dispatch(broker& b) {
  if (!source_) return;
  session& s = owner();
  delivery_frame frame(id());
  while (in_flight_ < window_ && next_offset_ < source_->state.next_offset && s.writable()) {
    auto batch = b.batch_at(*source_, next_offset_);
    if (!batch) break;
    // Records below the batch were removed by retention: skip ahead.
    next_offset_ = std::max(next_offset_, batch->base_offset);
    uint32_t first = static_cast<uint32_t>(next_offset_ - batch->base_offset);
    uint32_t n = std::min(window_ - in_flight_, batch->count - first);
    frame.add_range(*batch, first, n);
    next_offset_ += n;
    in_flight_ += n;
    b.stats().deliver_records += n;
    source_->counters.deliver_records += n;
    if (frame.bytes() >= delivery_frame::kTargetBytes) frame.send_to(s);
  }
  if (!frame.empty()) frame.send_to(s);
}

void ephemeral_subscription::on_credit(broker& b, uint32_t records) {
  in_flight_ -= std::min(in_flight_, records);
  dispatch(b);
}

void ephemeral_subscription::detach(broker& b, bool) {
  if (source_) source_->remove_reader(this);
  source_ = nullptr;
}

}  // namespace wharf
