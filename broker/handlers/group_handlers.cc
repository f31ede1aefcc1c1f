// Consumer-group administration and group subscriptions (issue 3 fills these in).
#include "dispatch.h"
#include "groups/consumer_group.h"
#include "replies.h"

namespace wharf {
namespace {
void not_yet(session& s, uint64_t rid) {
  s.send_error(rid, wire::ErrorCode::invalid_argument, "consumer groups are not available yet");
}
}  // namespace

void subscribe_group(broker&, session& s, uint64_t rid, const wire::Subscribe&, topic&) { not_yet(s, rid); }
void handle_create_group(broker&, session& s, uint64_t rid, const wire::CreateGroup&) { not_yet(s, rid); }
void handle_list_groups(broker&, session& s, uint64_t rid, const wire::ListGroups&) { not_yet(s, rid); }
void handle_describe_group(broker&, session& s, uint64_t rid, const wire::DescribeGroup&) { not_yet(s, rid); }
void handle_reset_group(broker&, session& s, uint64_t rid, const wire::ResetGroup&) { not_yet(s, rid); }
void handle_delete_group(broker&, session& s, uint64_t rid, const wire::DeleteGroup&) { not_yet(s, rid); }

}  // namespace wharf
