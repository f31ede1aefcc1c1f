// Topic administration: CreateTopic, DeleteTopic, ListTopics, DescribeTopic.
#include <memory>

#include "dispatch.h"
#include "errors.h"
#include "log.h"
#include "replies.h"

namespace wharf {
namespace {

void reply_topic_info(session& s, uint64_t rid, const topic& t) {
  flatbuffers::FlatBufferBuilder fbb(256);
  wire::finish_frame(fbb, rid, build_topic_info(fbb, t));
  s.send(fbb);
}

}  // namespace

// CreateTopic{name, retention_ms?, retention_bytes?, if_not_exists}
//   -> TopicInfo | Error(invalid_name, topic_exists, storage_full, storage_error)
// Absent retention fields take default_retention_ms / default_retention_bytes.
void handle_create_topic(broker& b, session& s, uint64_t rid, const wire::CreateTopic& req) {
  std::string name = req.name()->str();
  if (!wire::valid_topic_name(name)) {
    return s.send_error(rid, wire::ErrorCode::invalid_name,
                        "invalid topic name '" + name + "': use 1-200 characters of [A-Za-z0-9._-]");
  }
  bool if_not_exists = req.if_not_exists();
  if (topic* t = b.topics().find(name); t && !t->deleting) {
    if (if_not_exists) return reply_topic_info(s, rid, *t);
    return s.send_error(rid, wire::ErrorCode::topic_exists, "topic '" + name + "' already exists");
  }
  auto op = std::make_unique<storage::write_op>();
  op->what = storage::write_op::kind::create_topic;
  op->config.name = name;
  op->config.retention_ms = req.retention_ms().value_or(b.config().default_retention_ms);
  op->config.retention_bytes = req.retention_bytes().value_or(b.config().default_retention_bytes);
  op->done = [&b, sid = s.id(), rid, if_not_exists](storage::write_op& op) {
    session* s = b.find_session(sid);
    if (op.error == storage::store_error::ok) {
      topic& t = b.topics().add(op.config, op.state);
      log_info("created topic %s (id %u, retention_ms=%lu, retention_bytes=%lu)", t.config.name.c_str(),
               t.config.id, t.config.retention_ms, t.config.retention_bytes);
      if (s) reply_topic_info(*s, rid, t);
      return;
    }
    if (!s) return;
    topic* existing = b.topics().find(op.config.name);
    if (op.error == storage::store_error::exists && if_not_exists && existing) {
      return reply_topic_info(*s, rid, *existing);
    }
    if (op.error == storage::store_error::exists) {
      return s->send_error(rid, wire::ErrorCode::topic_exists, "topic '" + op.config.name + "' already exists");
    }
    s->send_error(rid, to_wire(op.error), std::string("cannot create topic: ") + storage::to_string(op.error));
  };
  b.writer().submit(std::move(op));
}

// DeleteTopic{name} -> Ok | Error(unknown_topic, storage_error)
// Subscribers get SubscriptionEnded(unknown_topic); the log is purged in the background.
void handle_delete_topic(broker& b, session& s, uint64_t rid, const wire::DeleteTopic& req) {
  topic* t = b.topics().find(req.name()->string_view());
  if (!t || t->deleting) return reply_unknown_topic(s, rid, req.name()->string_view());
  t->deleting = true;
  auto op = std::make_unique<storage::write_op>();
  op->what = storage::write_op::kind::delete_topic;
  op->config = t->config;
  op->topic_id = t->config.id;
  op->done = [&b, sid = s.id(), rid](storage::write_op& op) {
    session* s = b.find_session(sid);
    topic* t = b.topics().find(op.topic_id);
    if (op.error != storage::store_error::ok) {
      if (t) t->deleting = false;
      if (s) s->send_error(rid, to_wire(op.error), std::string("cannot delete topic: ") + storage::to_string(op.error));
      return;
    }
    if (t) {
      log_info("deleted topic %s (id %u)", t->config.name.c_str(), t->config.id);
      b.remove_topic(*t);
    }
    if (s) reply_ok(*s, rid);
  };
  b.writer().submit(std::move(op));
}

// ListTopics{} -> TopicList
void handle_list_topics(broker& b, session& s, uint64_t rid, const wire::ListTopics&) {
  flatbuffers::FlatBufferBuilder fbb(1024);
  std::vector<flatbuffers::Offset<wire::TopicInfo>> infos;
  for (auto& [name, t] : b.topics().all()) {
    if (!t->deleting) infos.push_back(build_topic_info(fbb, *t));
  }
  auto v = fbb.CreateVector(infos);
  wire::finish_frame(fbb, rid, wire::CreateTopicList(fbb, v));
  s.send(fbb);
}

// DescribeTopic{name} -> TopicInfo | Error(unknown_topic)
void handle_describe_topic(broker& b, session& s, uint64_t rid, const wire::DescribeTopic& req) {
  topic* t = b.topics().find(req.name()->string_view());
  if (!t || t->deleting) return reply_unknown_topic(s, rid, req.name()->string_view());
  reply_topic_info(s, rid, *t);
}

}  // namespace wharf
