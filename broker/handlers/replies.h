// Small helpers shared by the handlers to build replies.
#pragma once

#include <string>

#include "broker.h"
#include "server/session.h"
#include "wire.h"

namespace wharf {

/// Sends Ok for `rid`.
void reply_ok(session& s, uint64_t rid);
/// Serializes a topic for TopicInfo / TopicList.
flatbuffers::Offset<wire::TopicInfo> build_topic_info(flatbuffers::FlatBufferBuilder& fbb, const topic& t);
/// The offset a start position means for `t` now (clamped to what is stored).
uint64_t resolve_start(broker& b, const topic& t, const wire::StartPosition* start);
/// "unknown topic 'x'" error for `rid`.
void reply_unknown_topic(session& s, uint64_t rid, std::string_view name);

}  // namespace wharf
