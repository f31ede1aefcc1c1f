#include "replies.h"

#include <algorithm>

#include "groups/consumer_group.h"

namespace wharf {

void reply_ok(session& s, uint64_t rid) {
  flatbuffers::FlatBufferBuilder fbb(64);
  wire::finish_frame(fbb, rid, wire::CreateOk(fbb));
  s.send(fbb);
}

void reply_unknown_topic(session& s, uint64_t rid, std::string_view name) {
  s.send_error(rid, wire::ErrorCode::unknown_topic, "unknown topic '" + std::string(name) + "'");
}

flatbuffers::Offset<wire::TopicInfo> build_topic_info(flatbuffers::FlatBufferBuilder& fbb, const topic& t) {
  std::vector<flatbuffers::Offset<flatbuffers::String>> groups;
  for (auto& [name, g] : t.groups) groups.push_back(fbb.CreateString(name));
  auto name = fbb.CreateString(t.config.name);
  auto gv = fbb.CreateVector(groups);
  const auto& st = t.state;
  return wire::CreateTopicInfo(fbb, name, st.first_offset, st.next_offset,
                               st.next_offset - st.first_offset, st.bytes, t.config.retention_ms,
                               t.config.retention_bytes, t.config.created_us, st.last_timestamp_us, gv);
}

uint64_t resolve_start(broker& b, const topic& t, const wire::StartPosition* start) {
  const auto& st = t.state;
  if (!start) return st.next_offset;
  switch (start->kind()) {
    case wire::StartKind::earliest: return st.first_offset;
    case wire::StartKind::offset: return std::clamp(start->value(), st.first_offset, st.next_offset);
    case wire::StartKind::timestamp: {
      auto txn = b.store().begin_read();
      if (!txn.ok()) return st.next_offset;
      return std::max(txn.offset_for_time(t.config.id, st, wire::ms_to_us(start->value())),
                      st.first_offset);
    }
    case wire::StartKind::latest:
    default: return st.next_offset;
  }
}

}  // namespace wharf
