// Publish: append a producer's batch to a topic's log.
#include <memory>

#include "dispatch.h"
#include "errors.h"
#include "log.h"
#include "replies.h"

namespace wharf {
namespace {

/// Bytes of one record as max_message_bytes counts them.
size_t record_size(const wire::Record& r) {
  size_t n = (r.key() ? r.key()->size() : 0) + (r.payload() ? r.payload()->size() : 0);
  if (r.headers()) {
    for (auto h : *r.headers()) n += h->name()->size() + (h->value() ? h->value()->size() : 0);
  }
  return n;
}

void submit_append(broker& b, session& s, uint64_t rid, topic& t, std::shared_ptr<storage::batch> data) {
  size_t size = data->bytes().size();
  auto op = std::make_unique<storage::write_op>();
  op->what = storage::write_op::kind::append;
  op->data = std::move(data);
  op->done = [&b, sid = s.id(), rid, size](storage::write_op& op) {
    session* s = b.find_session(sid);
    if (s) s->publish_bytes_in_flight -= size;
    if (op.error != storage::store_error::ok) {
      if (!s) return;
      if (op.error == storage::store_error::not_found) {
        return s->send_error(rid, wire::ErrorCode::unknown_topic, "topic was deleted");
      }
      return s->send_error(rid, to_wire(op.error), std::string("publish failed: ") + storage::to_string(op.error));
    }
    const storage::batch& batch = *op.data;
    if (topic* t = b.topics().find(batch.topic_id)) {
      t->state = op.state;  // completions arrive in commit order
      b.topics().cache_batch(*t, op.data);
      b.notify_new_records(*t);
    }
    b.stats().publish_records += batch.count;
    b.stats().publish_bytes += batch.bytes().size();
    if (!s) return;
    flatbuffers::FlatBufferBuilder fbb(96);
    wire::finish_frame(fbb, rid, wire::CreatePublishAck(fbb, batch.base_offset, batch.count, batch.timestamp_us));
    s->send(fbb);
  };
  s.publish_bytes_in_flight += size;
  b.writer().submit(std::move(op));
  b.check_backpressure(s);
}

}  // namespace

// Publish{topic, batch} -> PublishAck{base_offset, count, timestamp_us}
//   | Error(unknown_topic, invalid_name, invalid_argument, too_large, storage_full, storage_error)
// The ack is sent once the batch is durable under the fsync policy. With
// auto_create_topics an unknown topic is created first.
void handle_publish(broker& b, session& s, uint64_t rid, const wire::Publish& req) {
  std::string_view name = req.topic()->string_view();
  const wire::RecordBatch* records = req.batch_nested_root();
  uint32_t count = records->records()->size();
  if (count == 0) return s.send_error(rid, wire::ErrorCode::invalid_argument, "empty batch");
  uint32_t max = b.config().max_message_bytes;
  for (uint32_t i = 0; i < count; ++i) {
    size_t n = record_size(*records->records()->Get(i));
    if (n > max) {
      return s.send_error(rid, wire::ErrorCode::too_large,
                          "record " + std::to_string(i) + " is " + std::to_string(n) +
                              " bytes; max_message_bytes is " + std::to_string(max));
    }
  }
  std::span<const uint8_t> bytes(req.batch()->data(), req.batch()->size());

  topic* t = b.topics().find(name);
  if (t && !t->deleting) {
    return submit_append(b, s, rid, *t, storage::batch::copy_of(t->config.id, count, bytes));
  }
  if (!wire::valid_name(name)) {
    return s.send_error(rid, wire::ErrorCode::invalid_name, "invalid topic name '" + std::string(name) + "'");
  }
  if (!b.config().auto_create_topics || t) return reply_unknown_topic(s, rid, name);

  // Auto-create, then append. Completions run in submission order, so later
  // publishes to the same topic still get later offsets.
  auto data = storage::batch::copy_of(0, count, bytes);
  auto op = std::make_unique<storage::write_op>();
  op->what = storage::write_op::kind::create_topic;
  op->config.name = std::string(name);
  op->config.retention_ms = b.config().default_retention_ms;
  op->config.retention_bytes = b.config().default_retention_bytes;
  op->done = [&b, sid = s.id(), rid, data](storage::write_op& op) {
    if (op.error == storage::store_error::ok) {
      b.topics().add(op.config, op.state);
      log_info("auto-created topic %s (id %u)", op.config.name.c_str(), op.config.id);
    }
    session* s = b.find_session(sid);
    if (!s) return;
    topic* t = b.topics().find(op.config.name);
    if (!t || t->deleting) {
      return s->send_error(rid, to_wire(op.error), std::string("cannot create topic: ") + storage::to_string(op.error));
    }
    data->topic_id = t->config.id;
    submit_append(b, *s, rid, *t, data);
  };
  b.writer().submit(std::move(op));
}

}  // namespace wharf
