#include "consumer_group.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <unordered_map>

#include "broker.h"
#include "groups/group_member.h"
#include "log.h"
#include "server/session.h"
#include "store_generated.h"
#include "subscriptions/delivery_frame.h"
#include "topics/topic.h"
#include "webhooks/webhook.h"

namespace wharf {
namespace {

uint64_t g_next_incarnation = 1;
constexpr int64_t kDlqRetryMs = 1000;  // after a failed move to the DLQ

std::optional<uint64_t> hash_of(const wire::Record& r) {
  if (!r.key()) return std::nullopt;
  return key_hash(r.key()->data(), r.key()->size());
}

/// Where the group reads: keeps the last batches it used so a round of
/// offers and assignments costs few lookups.
class batch_finder {
 public:
  batch_finder(broker& b, topic& t) : b_(b), t_(t) {}
  storage::batch_ptr at(uint64_t offset) {
    for (auto& c : recent_) {
      if (c && offset >= c->base_offset && offset < c->end_offset()) return c;
    }
    auto found = b_.batch_at(t_, offset);
    recent_[next_++ % recent_.size()] = found;
    return found;
  }

 private:
  broker& b_;
  topic& t_;
  std::array<storage::batch_ptr, 4> recent_;
  size_t next_ = 0;
};

/// One member's share of a dispatch round.
struct member_out {
  group_member* member;
  delivery_frame frame;
  storage::batch_ptr batch;      // batch of the selection being collected
  std::vector<uint32_t> indexes;
  std::vector<uint16_t> attempts;

  void close_selection() {
    if (batch && !indexes.empty()) frame.add_selection(*batch, indexes, attempts);
    indexes.clear();
    attempts.clear();
    batch = nullptr;
  }
};

}  // namespace

consumer_group::consumer_group(topic& source, std::string name, group_state state, uint64_t created_us)
    : source_(&source), name_(std::move(name)), state_(std::move(state)), created_us_(created_us),
      incarnation_(g_next_incarnation++) {}

consumer_group::~consumer_group() = default;

void consumer_group::set_webhook(std::unique_ptr<webhooks::webhook> w) { webhook_ = std::move(w); }

group_member* consumer_group::member(uint64_t id) {
  for (auto* m : members_) {
    if (m->id() == id) return m;
  }
  return nullptr;
}

void consumer_group::add_member(broker& b, group_member& m) {
  members_.push_back(&m);
  state_.add_member(m.id(), m.max_in_flight());
  log_debug("group %s/%s: member %lu joined (%zu members)", source_->config.name.c_str(), name_.c_str(), m.id(),
            members_.size());
}

void consumer_group::remove_member(broker& b, group_member& m, bool graceful, const std::vector<uint64_t>& held) {
  members_.erase(std::remove(members_.begin(), members_.end(), &m), members_.end());
  state_.remove_member(m.id(), graceful, &held);  // its unacked records go to the others now
  log_debug("group %s/%s: member %lu left (%s, held %zu; %zu members)", source_->config.name.c_str(), name_.c_str(),
            m.id(), graceful ? "unsubscribed" : "connection closed", held.size(), members_.size());
  dispatch(b);
}

// ---------------------------------------------------------------------------
// Dispatch
// ---------------------------------------------------------------------------

void consumer_group::dispatch(broker& b) {
  topic& t = *source_;
  int64_t now = static_cast<int64_t>(uv_now(b.loop()));
  state_.tick(now);
  if (!dlq_failed_.empty() && now >= dlq_retry_ms_) {
    for (uint64_t o : dlq_failed_) state_.retry_dead_letter(o);
    dlq_failed_.clear();
  }
  batch_finder batches(b, t);
  // A member whose connection is backed up gets nothing new until it drains
  // (the broker calls dispatch again then), so memory stays bounded per member.
  for (auto* m : members_) state_.set_member_paused(m->id(), !m->owner().writable());
  if (webhook_ && webhook_->member_id()) state_.set_member_paused(webhook_->member_id(), !webhook_->accepting(b));

  // Offer new records while members have credit for them.
  while (state_.wants_records() && state_.dispatch_offset() < t.state.next_offset) {
    uint64_t o = state_.dispatch_offset();
    auto batch = batches.at(o);
    if (!batch) break;
    if (batch->base_offset > o) {  // removed by retention before we read it
      state_.skip_to(batch->base_offset);
      continue;
    }
    auto records = batch->records()->records();
    for (uint32_t i = static_cast<uint32_t>(o - batch->base_offset); i < batch->count && state_.wants_records(); ++i) {
      state_.offer(hash_of(*records->Get(i)));
    }
  }

  // Hand out what is ready; one frame per member for the round.
  std::vector<member_out> outs;
  while (auto a = state_.next_assignment(now)) {
    auto batch = batches.at(a->offset);
    if (!batch || batch->base_offset > a->offset) {
      state_.ack(a->offset);  // the record is gone (retention); nothing to deliver
      continue;
    }
    if (webhook_ && a->member == webhook_->member_id()) {
      webhook_->deliver(b, batch, a->offset, a->attempt);
      b.stats().deliver_records++;
      continue;
    }
    auto it = std::find_if(outs.begin(), outs.end(), [&](auto& o) { return o.member->id() == a->member; });
    if (it == outs.end()) {
      group_member* m = member(a->member);
      if (!m) continue;  // cannot happen: the state only assigns to members
      outs.push_back(member_out{m, delivery_frame(m->id()), nullptr, {}, {}});
      it = std::prev(outs.end());
    }
    if (it->batch != batch) it->close_selection();
    it->batch = batch;
    it->indexes.push_back(static_cast<uint32_t>(a->offset - batch->base_offset));
    it->attempts.push_back(a->attempt);
    it->member->delivered++;
    b.stats().deliver_records++;
    source_->counters.deliver_records++;
    if (it->frame.bytes() >= delivery_frame::kTargetBytes) {
      it->close_selection();
      it->frame.send_to(it->member->owner());
      // A backlog can fill a member's connection within this one round:
      // pause it as soon as that happens, or one member that does not read
      // would get the whole window queued in memory.
      if (!it->member->owner().writable()) state_.set_member_paused(it->member->id(), true);
    }
  }
  for (auto& out : outs) {
    out.close_selection();
    if (!out.frame.empty()) out.frame.send_to(out.member->owner());
  }

  for (auto& d : state_.take_dead_letters()) move_to_dlq(b, d);
  if (state_.take_dirty()) save(b);
}

void consumer_group::ack(broker& b, std::span<const uint64_t> offsets) {
  for (uint64_t o : offsets) state_.ack(o);
  dispatch(b);
}

void consumer_group::nack(broker& b, uint64_t member, std::span<const uint64_t> offsets, uint32_t delay_ms,
                          bool release) {
  int64_t now = static_cast<int64_t>(uv_now(b.loop()));
  for (uint64_t o : offsets) {
    if (release) {
      state_.release(o, member);
    } else {
      state_.nack(o, delay_ms, now, member);
    }
  }
  dispatch(b);
}

void consumer_group::on_timer(broker& b) {
  int64_t now = static_cast<int64_t>(uv_now(b.loop()));
  bool dlq_due = !dlq_failed_.empty() && now >= dlq_retry_ms_;
  if (state_.next_deadline() <= now || dlq_due) dispatch(b);
}

void consumer_group::on_trimmed(broker& b) {
  if (source_->state.first_offset > state_.committed()) {
    uint64_t before = state_.expired();
    state_.skip_to(source_->state.first_offset);
    if (state_.expired() > before) {
      log_warn("group %s/%s: %lu records removed by retention before the group finished them",
               source_->config.name.c_str(), name_.c_str(), state_.expired() - before);
    }
    dispatch(b);
  }
}

void consumer_group::reset(broker& b, uint64_t offset) {
  state_.reset(offset);
  log_info("group %s/%s: reset to offset %lu", source_->config.name.c_str(), name_.c_str(), offset);
}

void consumer_group::end_all_members(broker& b, wire::ErrorCode code, const std::string& message) {
  auto members = members_;
  for (auto* m : members) {
    session& s = m->owner();
    flatbuffers::FlatBufferBuilder fbb(128);
    auto msg = fbb.CreateString(message);
    wire::finish_frame(fbb, 0, wire::CreateSubscriptionEnded(fbb, m->id(), code, msg));
    s.send(fbb);
    auto it = s.subscriptions.find(m->id());
    if (it == s.subscriptions.end()) continue;
    auto owned = std::move(it->second);
    s.subscriptions.erase(it);
    owned->detach(b, false);
  }
}

// ---------------------------------------------------------------------------
// Dead letters
// ---------------------------------------------------------------------------

void consumer_group::move_to_dlq(broker& b, const dead_letter& d) {
  topic& t = *source_;
  auto batch = b.batch_at(t, d.offset);
  if (!batch || batch->base_offset > d.offset) {
    state_.finish_dead_letter(d.offset);  // gone already
    return;
  }
  const wire::Record& r = *batch->records()->records()->Get(static_cast<uint32_t>(d.offset - batch->base_offset));
  // The record as it was, plus headers naming where it came from and why.
  flatbuffers::FlatBufferBuilder fbb(256 + (r.payload() ? r.payload()->size() : 0));
  auto bytes = [&](std::string_view s) { return fbb.CreateVector(reinterpret_cast<const uint8_t*>(s.data()), s.size()); };
  std::vector<flatbuffers::Offset<wire::Header>> headers;
  if (r.headers()) {
    for (auto h : *r.headers()) {
      auto value = h->value() ? fbb.CreateVector(h->value()->data(), h->value()->size()) : 0;
      headers.push_back(wire::CreateHeader(fbb, fbb.CreateString(h->name()), value));
    }
  }
  auto add = [&](const char* name, const std::string& value) {
    headers.push_back(wire::CreateHeader(fbb, fbb.CreateString(name), bytes(value)));
  };
  add("wharf-dlq-topic", t.config.name);
  add("wharf-dlq-offset", std::to_string(d.offset));
  add("wharf-dlq-group", name_);
  add("wharf-dlq-reason", std::string("max_deliveries reached; last failure: ") + to_string(d.reason));
  add("wharf-dlq-deliveries", std::to_string(d.deliveries));
  add("wharf-dlq-timestamp-us", std::to_string(batch->timestamp_us));
  auto key = r.key() ? fbb.CreateVector(r.key()->data(), r.key()->size()) : 0;
  auto payload = r.payload() ? fbb.CreateVector(r.payload()->data(), r.payload()->size()) : 0;
  auto rec = wire::CreateRecord(fbb, key, fbb.CreateVector(headers), payload);
  fbb.Finish(wire::CreateRecordBatch(fbb, fbb.CreateVector(&rec, 1)), wire::RecordBatchIdentifier());
  auto data = storage::batch::copy_of(0, 1, {fbb.GetBufferPointer(), fbb.GetSize()});

  uint32_t topic_id = t.config.id;
  std::string topic_name = t.config.name, group = name_;
  uint64_t incarnation = incarnation_, offset = d.offset;
  b.append_to(wire::dead_letter_topic(topic_name), std::move(data),
              [&b, topic_id, group, incarnation, offset](storage::store_error e, const storage::batch& out) {
                topic* t = b.topics().find(topic_id);
                if (!t) return;
                auto it = t->groups.find(group);
                if (it == t->groups.end() || it->second->incarnation() != incarnation) return;
                consumer_group& g = *it->second;
                if (e != storage::store_error::ok) {
                  log_warn("group %s/%s: cannot move offset %lu to %s.dlq: %s; will retry", t->config.name.c_str(),
                           group.c_str(), offset, t->config.name.c_str(), storage::to_string(e));
                  g.dlq_failed_.push_back(offset);
                  g.dlq_retry_ms_ = static_cast<int64_t>(uv_now(b.loop())) + kDlqRetryMs;
                  return;
                }
                log_info("group %s/%s: offset %lu dead-lettered to %s.dlq at offset %lu", t->config.name.c_str(),
                         group.c_str(), offset, t->config.name.c_str(), out.base_offset);
                g.state_.finish_dead_letter(offset);
                g.dispatch(b);
              });
}

// ---------------------------------------------------------------------------
// Persistence
// ---------------------------------------------------------------------------

std::vector<uint8_t> consumer_group::encode() const {
  flatbuffers::FlatBufferBuilder fbb(256);
  auto ranges = state_.finished_ranges();
  std::vector<wharf::store::OffsetRange> rs;
  rs.reserve(ranges.size());
  for (auto& [first, end] : ranges) rs.emplace_back(first, end);
  auto name = fbb.CreateString(name_);
  auto finished = fbb.CreateVectorOfStructs(rs);
  flatbuffers::Offset<wharf::store::WebhookState> hook = 0;
  if (webhook_) {
    auto config = webhook_->settings().to_wire(fbb);
    auto& st = webhook_->status();
    hook = wharf::store::CreateWebhookState(fbb, config, st.paused, fbb.CreateString(st.disabled_reason),
                                            st.failing_since_us);
  }
  fbb.Finish(wharf::store::CreateGroupState(fbb, name, state_.committed(), finished, state_.settings().ack_timeout_ms,
                                            state_.settings().max_deliveries, created_us_, state_.redeliveries(),
                                            state_.dead_lettered(), hook));
  return {fbb.GetBufferPointer(), fbb.GetBufferPointer() + fbb.GetSize()};
}

std::unique_ptr<consumer_group> consumer_group::decode(topic& source, const std::string& name,
                                                       std::span<const uint8_t> bytes) {
  std::vector<uint64_t> aligned(bytes.size() / 8 + 1);
  std::memcpy(aligned.data(), bytes.data(), bytes.size());
  auto p = reinterpret_cast<const uint8_t*>(aligned.data());
  flatbuffers::Verifier v(p, bytes.size());
  if (!v.VerifyBuffer<wharf::store::GroupState>(nullptr)) return nullptr;
  auto gs = flatbuffers::GetRoot<wharf::store::GroupState>(p);
  std::vector<offset_range> finished;
  if (gs->finished()) {
    for (auto r : *gs->finished()) finished.push_back({r->begin(), r->end()});
  }
  group_state state(group_settings{gs->ack_timeout_ms(), gs->max_deliveries()}, gs->committed_offset(), finished);
  state.restore_counters(gs->redeliveries(), gs->dead_lettered());
  auto g = std::make_unique<consumer_group>(source, name, std::move(state), gs->created_us());
  if (auto hook = gs->webhook()) {
    std::string error;
    auto settings = webhooks::webhook_settings::from_wire(*hook->config(), error);
    if (!settings) return nullptr;
    webhooks::webhook_status status{hook->paused(), hook->disabled_reason() ? hook->disabled_reason()->str() : "",
                                    hook->failing_since_us()};
    g->set_webhook(std::make_unique<webhooks::webhook>(*g, std::move(*settings), std::move(status)));
  }
  return g;
}

void consumer_group::save(broker& b, std::function<void(storage::store_error)> done) {
  if (done) save_waiters_.push_back(std::move(done));
  if (save_in_flight_) {
    save_again_ = true;  // the completion submits the next one
    return;
  }
  submit_save(b);
}

void consumer_group::submit_save(broker& b) {
  save_in_flight_ = true;
  save_again_ = false;
  inflight_waiters_ = std::move(save_waiters_);
  save_waiters_.clear();
  auto op = std::make_unique<storage::write_op>();
  op->what = storage::write_op::kind::save_group;
  op->topic_id = source_->config.id;
  op->group = name_;
  op->value = encode();
  op->done = [&b, topic_id = source_->config.id, group = name_, incarnation = incarnation_](storage::write_op& op) {
    topic* t = b.topics().find(topic_id);
    if (!t) return;
    auto it = t->groups.find(group);
    if (it == t->groups.end() || it->second->incarnation() != incarnation) return;
    consumer_group& g = *it->second;
    g.save_in_flight_ = false;
    if (op.error != storage::store_error::ok) {
      log_warn("group %s/%s: saving progress failed: %s", t->config.name.c_str(), group.c_str(),
               storage::to_string(op.error));
    }
    auto waiters = std::move(g.inflight_waiters_);
    g.inflight_waiters_.clear();
    // Progress that changed meanwhile goes out now; a failed save is
    // retried with the next change (at-least-once either way).
    if (g.save_again_) g.submit_save(b);
    for (auto& w : waiters) w(op.error);
  };
  b.writer().submit(std::move(op));
}

// ---------------------------------------------------------------------------
// Describe
// ---------------------------------------------------------------------------

flatbuffers::Offset<wire::GroupInfo> consumer_group::build_info(flatbuffers::FlatBufferBuilder& fbb,
                                                               uint64_t topic_next_offset) const {
  std::vector<flatbuffers::Offset<wire::MemberInfo>> members;
  for (auto* m : members_) {
    members.push_back(wire::CreateMemberInfo(fbb, m->id(), fbb.CreateString(m->owner().peer()),
                                             state_.in_flight(m->id()), m->delivered));
  }
  auto topic = fbb.CreateString(source_->config.name);
  auto group = fbb.CreateString(name_);
  auto mv = fbb.CreateVector(members);
  uint64_t committed = state_.committed();
  return wire::CreateGroupInfo(fbb, topic, group, committed, state_.dispatch_offset(),
                               topic_next_offset > committed ? topic_next_offset - committed : 0, state_.pending(),
                               state_.redeliveries(), state_.dead_lettered(), state_.settings().ack_timeout_ms,
                               state_.settings().max_deliveries, created_us_, mv, webhook_ != nullptr);
}

}  // namespace wharf
