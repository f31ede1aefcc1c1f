// Subscribe, Unsubscribe, Credit, Ack, Nack.
#include <memory>

#include "dispatch.h"
#include "replies.h"
#include "subscriptions/ephemeral_subscription.h"

namespace wharf {

void subscribe_group(broker& b, session& s, uint64_t rid, const wire::Subscribe& req, topic& t);

// Subscribe{topic, group?, start, max_in_flight, ack_timeout_ms?, max_deliveries?}
//   -> SubscribeOk{subscription_id, start_offset} | Error(unknown_topic, invalid_name, invalid_argument)
// Without a group: an ephemeral subscription from `start` (default latest).
// Records follow in Deliver frames after the SubscribeOk.
void handle_subscribe(broker& b, session& s, uint64_t rid, const wire::Subscribe& req) {
  topic* t = b.topics().find(req.topic()->string_view());
  if (!t || t->deleting) return reply_unknown_topic(s, rid, req.topic()->string_view());
  if (req.group() && req.group()->size() > 0) return subscribe_group(b, s, rid, req, *t);

  uint32_t window = req.max_in_flight() ? req.max_in_flight() : wire::kDefaultMaxInFlight;
  uint64_t start = resolve_start(b, *t, req.start());
  uint64_t id = b.next_subscription_id();
  auto sub = std::make_unique<ephemeral_subscription>(id, s, *t, start, window);
  auto* raw = sub.get();
  s.subscriptions[id] = std::move(sub);

  flatbuffers::FlatBufferBuilder fbb(96);
  wire::finish_frame(fbb, rid, wire::CreateSubscribeOk(fbb, id, start));
  s.send(fbb);
  raw->dispatch(b);
}

// Unsubscribe{subscription_id, held} -> Ok | Error(unknown_subscription)
// A group member's unacked records go back to the group at once; only the
// `held` ones (its application had them) count as a delivery.
void handle_unsubscribe(broker& b, session& s, uint64_t rid, const wire::Unsubscribe& req) {
  auto it = s.subscriptions.find(req.subscription_id());
  if (it == s.subscriptions.end()) {
    return s.send_error(rid, wire::ErrorCode::unknown_subscription, "no such subscription");
  }
  auto sub = std::move(it->second);
  s.subscriptions.erase(it);
  if (req.held()) sub->set_held({req.held()->begin(), req.held()->end()});
  sub->detach(b, true);
  reply_ok(s, rid);
}

namespace {
subscription* find_subscription(session& s, uint64_t id) {
  auto it = s.subscriptions.find(id);
  return it == s.subscriptions.end() ? nullptr : it->second.get();
}
}  // namespace

// Credit{subscription_id, records}: no reply. Unknown ids are ignored (the
// subscription may have just ended).
void handle_credit(broker& b, session& s, const wire::Credit& req) {
  if (auto sub = find_subscription(s, req.subscription_id())) sub->on_credit(b, req.records());
}

// Ack{subscription_id, offsets}: no reply.
void handle_ack(broker& b, session& s, const wire::Ack& req) {
  auto sub = find_subscription(s, req.subscription_id());
  if (sub) sub->on_ack(b, {req.offsets()->data(), req.offsets()->size()});
}

// Nack{subscription_id, offsets, delay_ms, release}: no reply. Only records
// still in flight to this member are affected.
void handle_nack(broker& b, session& s, const wire::Nack& req) {
  auto sub = find_subscription(s, req.subscription_id());
  if (sub) sub->on_nack(b, {req.offsets()->data(), req.offsets()->size()}, req.delay_ms(), req.release());
}

}  // namespace wharf
