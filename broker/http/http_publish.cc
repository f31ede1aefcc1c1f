// Publishing one record from an HTTP request: shared by the records and
// ingest handlers. The same path as a Publish frame: a RecordBatch in a
// storage::batch, broker::append (or append_to, which creates the topic),
// answered from the writer's completion, i.e. after the commit.
#include "broker.h"
#include "errors.h"
#include "http/handlers.h"

namespace wharf::http {
namespace {

std::vector<uint8_t> one_record_batch(const http_record& r) {
  flatbuffers::FlatBufferBuilder fbb(r.payload.size() + 256);
  auto bytes = [&](std::string_view s) {
    return fbb.CreateVector(reinterpret_cast<const uint8_t*>(s.data()), s.size());
  };
  std::vector<flatbuffers::Offset<wire::Header>> headers;
  for (const auto& [name, value] : r.headers) {
    auto n = fbb.CreateString(name);
    headers.push_back(wire::CreateHeader(fbb, n, bytes(value)));
  }
  flatbuffers::Offset<flatbuffers::Vector<uint8_t>> key;
  if (r.key) key = bytes(*r.key);
  flatbuffers::Offset<flatbuffers::Vector<flatbuffers::Offset<wire::Header>>> hv;
  if (!headers.empty()) hv = fbb.CreateVector(headers);
  auto payload = bytes(r.payload);
  auto record = wire::CreateRecord(fbb, key, hv, payload);
  auto records = fbb.CreateVector(&record, 1);
  fbb.Finish(wire::CreateRecordBatch(fbb, records), wire::RecordBatchIdentifier());
  return {fbb.GetBufferPointer(), fbb.GetBufferPointer() + fbb.GetSize()};
}

}  // namespace

std::optional<std::string> request_key(const http_request& req) {
  if (auto k = req.query_param("key")) return k;
  if (auto k = req.header("wharf-key")) return std::string(*k);
  return std::nullopt;
}

void publish_record(broker& b, const std::string& topic_name, bool create_missing,
                    const http_record& r,
                    std::function<void(std::optional<uint64_t>, http_response)> done) {
  size_t size = (r.key ? r.key->size() : 0) + r.payload.size();
  for (const auto& [name, value] : r.headers) size += name.size() + value.size();
  uint32_t max = b.config().max_message_bytes;
  if (size > max) {
    return done(std::nullopt,
                error_response(wire::ErrorCode::too_large, "the record is " + std::to_string(size) +
                                                               " bytes; max_message_bytes is " +
                                                               std::to_string(max)));
  }
  if (!wire::valid_topic_name(topic_name)) {
    return done(std::nullopt,
                error_response(wire::ErrorCode::invalid_name,
                               "invalid topic name " + std::string(topic_name.substr(0, 256)) +
                                   " (1-200 characters of [A-Za-z0-9._-])"));
  }
  if (b.shutting_down()) {
    return done(std::nullopt,
                error_response(wire::ErrorCode::shutting_down, "the broker is shutting down"));
  }
  topic* t = b.topics().find(topic_name);
  if ((!t || t->deleting) && !create_missing) {
    return done(std::nullopt,
                error_response(wire::ErrorCode::unknown_topic, "unknown topic " + topic_name));
  }
  auto bytes = one_record_batch(r);
  auto data = storage::batch::copy_of(0, 1, bytes);
  auto completion = [done = std::move(done)](storage::store_error e, const storage::batch& batch) {
    if (e == storage::store_error::ok) return done(batch.base_offset, http_response{});
    if (e == storage::store_error::not_found) {
      return done(std::nullopt,
                  error_response(wire::ErrorCode::unknown_topic, "the topic was deleted"));
    }
    done(std::nullopt,
         error_response(to_wire(e), std::string("publish failed: ") + storage::to_string(e)));
  };
  if (t && !t->deleting) {
    b.append(*t, std::move(data), std::move(completion));
  } else {
    b.append_to(topic_name, std::move(data), std::move(completion));
  }
}

}  // namespace wharf::http
