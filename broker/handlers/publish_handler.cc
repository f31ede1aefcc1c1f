// Publish: append a producer's batch to a topic's log.
#include <memory>

#include "dispatch.h"
#include "errors.h"
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
  topic* t = b.topics().find(name);
  if (!t || t->deleting) {
    if (!wire::valid_topic_name(name)) {
      return s.send_error(rid, wire::ErrorCode::invalid_name, "invalid topic name '" + std::string(name) + "'");
    }
    if (!b.config().auto_create_topics || t) return reply_unknown_topic(s, rid, name);
  }

  auto data = storage::batch::copy_of(0, count, {req.batch()->data(), req.batch()->size()});
  size_t size = data->bytes().size();
  auto done = [&b, sid = s.id(), rid, size](storage::store_error e, const storage::batch& batch) {
    session* s = b.find_session(sid);
    if (!s) return;
    s->publish_bytes_in_flight -= size;
    if (e == storage::store_error::not_found) {
      return s->send_error(rid, wire::ErrorCode::unknown_topic, "topic was deleted");
    }
    if (e != storage::store_error::ok) {
      return s->send_error(rid, to_wire(e), std::string("publish failed: ") + storage::to_string(e));
    }
    flatbuffers::FlatBufferBuilder fbb(96);
    wire::finish_frame(fbb, rid, wire::CreatePublishAck(fbb, batch.base_offset, batch.count, batch.timestamp_us));
    s->send(fbb);
  };
  s.publish_bytes_in_flight += size;
  if (t && !t->deleting) {
    b.append(*t, std::move(data), std::move(done));
  } else {
    b.append_to(std::string(name), std::move(data), std::move(done));
  }
  b.check_backpressure(s);
}

}  // namespace wharf
