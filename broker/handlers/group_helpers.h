// Helpers shared by the group and webhook handlers (group_handlers.cc).
#pragma once

#include <functional>
#include <string>

#include "groups/consumer_group.h"
#include "replies.h"

namespace wharf {

void reply_group_info(broker& b, session& s, uint64_t rid, const consumer_group& g, const topic& t);
/// Resolve names, answering unknown_topic / unknown_group / invalid_name themselves.
topic* find_topic(broker& b, session& s, uint64_t rid, const flatbuffers::String* name);
consumer_group* find_group(broker& b, session& s, uint64_t rid, topic& t,
                           const flatbuffers::String* name);
bool check_group_name(session& s, uint64_t rid, std::string_view name);
/// Creates a group in memory at `start`, lets `prepare` finish it, and saves
/// it; `then` runs once it is durable (or failed).
consumer_group& create_group(broker& b, topic& t, const std::string& name,
                             const wire::StartPosition* start, group_settings settings,
                             std::function<void(storage::store_error)> then,
                             const std::function<void(consumer_group&)>& prepare = {});
/// Ends its members, drops it, and answers Ok once the deletion is durable.
void delete_group(broker& b, session& s, uint64_t rid, topic& t, consumer_group& g);

}  // namespace wharf
