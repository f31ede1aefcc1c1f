// Consumer groups: group subscriptions and CreateGroup, ListGroups,
// DescribeGroup, ResetGroup, DeleteGroup.
#include <memory>

#include "dispatch.h"
#include "errors.h"
#include "group_helpers.h"
#include "groups/consumer_group.h"
#include "groups/group_member.h"
#include "log.h"
#include "replies.h"

namespace wharf {
namespace {

constexpr uint32_t kDefaultAckTimeoutMs = 30000;
constexpr uint32_t kDefaultMaxDeliveries = 5;

}  // namespace

void reply_group_info(broker& b, session& s, uint64_t rid, const consumer_group& g, const topic& t) {
  flatbuffers::FlatBufferBuilder fbb(512);
  wire::finish_frame(fbb, rid, g.build_info(fbb, t.state.next_offset));
  s.send(fbb);
}

/// Resolves topic and group names, answering the error itself when they are bad.
topic* find_topic(broker& b, session& s, uint64_t rid, const flatbuffers::String* name) {
  topic* t = b.topics().find(name->string_view());
  if (!t || t->deleting) {
    reply_unknown_topic(s, rid, name->string_view());
    return nullptr;
  }
  return t;
}

consumer_group* find_group(broker& b, session& s, uint64_t rid, topic& t, const flatbuffers::String* name) {
  auto it = t.groups.find(name->str());
  if (it == t.groups.end()) {
    s.send_error(rid, wire::ErrorCode::unknown_group,
                 "unknown group '" + name->str() + "' on topic '" + t.config.name + "'");
    return nullptr;
  }
  return it->second.get();
}

bool check_group_name(session& s, uint64_t rid, std::string_view name) {
  if (wire::valid_name(name)) return true;
  s.send_error(rid, wire::ErrorCode::invalid_name,
               "invalid group name '" + std::string(name) + "': use 1-200 characters of [A-Za-z0-9._-]");
  return false;
}

/// Creates a group in memory and saves it; `then` runs once it is durable.
consumer_group& create_group(broker& b, topic& t, const std::string& name, const wire::StartPosition* start,
                             group_settings settings, std::function<void(storage::store_error)> then,
                             const std::function<void(consumer_group&)>& prepare) {
  uint64_t committed = resolve_start(b, t, start);
  auto g = std::make_unique<consumer_group>(t, name, group_state(settings, committed), wire::now_us());
  consumer_group& ref = *g;
  t.groups[name] = std::move(g);
  if (prepare) prepare(ref);
  log_info("created group %s/%s at offset %lu (ack_timeout_ms=%u, max_deliveries=%u)", t.config.name.c_str(),
           name.c_str(), committed, settings.ack_timeout_ms, settings.max_deliveries);
  ref.save(b, std::move(then));
  return ref;
}

namespace {

/// Adds a member for session `sid` and answers SubscribeOk, then delivers.
void join(broker& b, uint64_t sid, uint64_t rid, uint32_t topic_id, const std::string& group, uint32_t window) {
  session* s = b.find_session(sid);
  topic* t = b.topics().find(topic_id);
  if (!s) return;
  if (!t || t->deleting) return s->send_error(rid, wire::ErrorCode::unknown_topic, "topic was deleted");
  auto it = t->groups.find(group);
  if (it == t->groups.end()) return s->send_error(rid, wire::ErrorCode::unknown_group, "group was deleted");
  consumer_group& g = *it->second;
  uint64_t id = b.next_subscription_id();
  auto m = std::make_unique<group_member>(id, *s, g, window);
  group_member& ref = *m;
  s->subscriptions[id] = std::move(m);
  g.add_member(b, ref);
  flatbuffers::FlatBufferBuilder fbb(96);
  wire::finish_frame(fbb, rid, wire::CreateSubscribeOk(fbb, id, g.state().committed()));
  s->send(fbb);
  g.dispatch(b);
}

}  // namespace

// Subscribe with a group: joins `group` (creating it from `start` when it
// does not exist) -> SubscribeOk{subscription_id, committed offset}.
// Explicit ack_timeout_ms / max_deliveries update the group's settings.
void subscribe_group(broker& b, session& s, uint64_t rid, const wire::Subscribe& req, topic& t) {
  std::string name = req.group()->str();
  if (!check_group_name(s, rid, name)) return;
  uint32_t window = req.max_in_flight() ? req.max_in_flight() : wire::kDefaultMaxInFlight;
  auto it = t.groups.find(name);
  if (it == t.groups.end()) {
    group_settings settings{req.ack_timeout_ms().value_or(kDefaultAckTimeoutMs),
                            req.max_deliveries().value_or(kDefaultMaxDeliveries)};
    create_group(b, t, name, req.start(), settings,
                 [&b, sid = s.id(), rid, topic_id = t.config.id, name, window](storage::store_error e) {
                   if (e != storage::store_error::ok) {
                     if (session* s = b.find_session(sid)) {
                       s->send_error(rid, to_wire(e), std::string("cannot create group: ") + storage::to_string(e));
                     }
                     return;
                   }
                   join(b, sid, rid, topic_id, name, window);
                 });
    return;
  }
  consumer_group& g = *it->second;
  if (g.webhook()) {
    return s.send_error(rid, wire::ErrorCode::invalid_argument,
                        "group '" + name + "' belongs to a webhook: the broker delivers it over HTTP");
  }
  if (req.ack_timeout_ms() || req.max_deliveries()) {
    group_settings settings = g.state().settings();
    settings.ack_timeout_ms = req.ack_timeout_ms().value_or(settings.ack_timeout_ms);
    settings.max_deliveries = req.max_deliveries().value_or(settings.max_deliveries);
    if (settings.ack_timeout_ms != g.state().settings().ack_timeout_ms ||
        settings.max_deliveries != g.state().settings().max_deliveries) {
      g.state().set_settings(settings);
      g.save(b);
    }
  }
  join(b, s.id(), rid, t.config.id, name, window);
}

// CreateGroup{topic, group, start, ack_timeout_ms?, max_deliveries?, if_not_exists}
//   -> GroupInfo | Error(unknown_topic, invalid_name, group_exists, storage_full)
void handle_create_group(broker& b, session& s, uint64_t rid, const wire::CreateGroup& req) {
  topic* t = find_topic(b, s, rid, req.topic());
  if (!t || !check_group_name(s, rid, req.group()->string_view())) return;
  std::string name = req.group()->str();
  if (auto it = t->groups.find(name); it != t->groups.end()) {
    if (req.if_not_exists()) return reply_group_info(b, s, rid, *it->second, *t);
    return s.send_error(rid, wire::ErrorCode::group_exists, "group '" + name + "' already exists on '" + t->config.name + "'");
  }
  group_settings settings{req.ack_timeout_ms().value_or(kDefaultAckTimeoutMs),
                          req.max_deliveries().value_or(kDefaultMaxDeliveries)};
  create_group(b, *t, name, req.start(), settings,
               [&b, sid = s.id(), rid, topic_id = t->config.id, name](storage::store_error e) {
                 session* s = b.find_session(sid);
                 if (!s) return;
                 topic* t = b.topics().find(topic_id);
                 auto it = t ? t->groups.find(name) : decltype(t->groups.end()){};
                 if (e != storage::store_error::ok || !t || it == t->groups.end()) {
                   return s->send_error(rid, e == storage::store_error::ok ? wire::ErrorCode::unknown_group : to_wire(e),
                                        std::string("cannot create group: ") + storage::to_string(e));
                 }
                 reply_group_info(b, *s, rid, *it->second, *t);
               });
}

// ListGroups{topic} -> GroupList | Error(unknown_topic)
void handle_list_groups(broker& b, session& s, uint64_t rid, const wire::ListGroups& req) {
  topic* t = find_topic(b, s, rid, req.topic());
  if (!t) return;
  flatbuffers::FlatBufferBuilder fbb(1024);
  std::vector<flatbuffers::Offset<wire::GroupInfo>> infos;
  for (auto& [name, g] : t->groups) infos.push_back(g->build_info(fbb, t->state.next_offset));
  auto v = fbb.CreateVector(infos);
  wire::finish_frame(fbb, rid, wire::CreateGroupList(fbb, v));
  s.send(fbb);
}

// DescribeGroup{topic, group} -> GroupInfo | Error(unknown_topic, unknown_group)
void handle_describe_group(broker& b, session& s, uint64_t rid, const wire::DescribeGroup& req) {
  topic* t = find_topic(b, s, rid, req.topic());
  if (!t) return;
  consumer_group* g = find_group(b, s, rid, *t, req.group());
  if (g) reply_group_info(b, s, rid, *g, *t);
}

// ResetGroup{topic, group, to} -> GroupInfo (after the new position is durable)
//   | Error(unknown_topic, unknown_group, storage_full)
// Unacked deliveries are dropped; members keep receiving from the new position.
void handle_reset_group(broker& b, session& s, uint64_t rid, const wire::ResetGroup& req) {
  topic* t = find_topic(b, s, rid, req.topic());
  if (!t) return;
  consumer_group* g = find_group(b, s, rid, *t, req.group());
  if (!g) return;
  g->reset(b, resolve_start(b, *t, req.to()));
  g->save(b, [&b, sid = s.id(), rid, topic_id = t->config.id, name = g->name()](storage::store_error e) {
    session* s = b.find_session(sid);
    topic* t = b.topics().find(topic_id);
    if (!s || !t) return;
    auto it = t->groups.find(name);
    if (e != storage::store_error::ok || it == t->groups.end()) {
      return s->send_error(rid, e == storage::store_error::ok ? wire::ErrorCode::unknown_group : to_wire(e),
                           std::string("cannot reset group: ") + storage::to_string(e));
    }
    reply_group_info(b, *s, rid, *it->second, *t);
    it->second->dispatch(b);
  });
  g->dispatch(b);
}

// DeleteGroup{topic, group} -> Ok | Error(unknown_topic, unknown_group)
// Members get SubscriptionEnded(unknown_group).
void handle_delete_group(broker& b, session& s, uint64_t rid, const wire::DeleteGroup& req) {
  topic* t = find_topic(b, s, rid, req.topic());
  if (!t) return;
  if (consumer_group* g = find_group(b, s, rid, *t, req.group())) delete_group(b, s, rid, *t, *g);
}

void delete_group(broker& b, session& s, uint64_t rid, topic& t, consumer_group& g) {
  std::string name = g.name();
  g.end_all_members(b, wire::ErrorCode::unknown_group, "group '" + name + "' was deleted");
  t.groups.erase(name);
  log_info("deleted group %s/%s", t.config.name.c_str(), name.c_str());
  auto op = std::make_unique<storage::write_op>();
  op->what = storage::write_op::kind::delete_group;
  op->topic_id = t.config.id;
  op->group = name;
  op->done = [&b, sid = s.id(), rid](storage::write_op& op) {
    session* s = b.find_session(sid);
    if (!s) return;
    if (op.error != storage::store_error::ok) {
      return s->send_error(rid, to_wire(op.error), std::string("cannot delete group: ") + storage::to_string(op.error));
    }
    reply_ok(*s, rid);
  };
  b.writer().submit(std::move(op));
}

}  // namespace wharf
