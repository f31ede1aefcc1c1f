#include "dispatch.h"

#include "server/session.h"

namespace wharf {

void dispatch_frame(broker& b, session& s, const wire::Frame& f) {
  using wire::Body;
  uint64_t rid = f.request_id();
  switch (f.body_type()) {
    case Body::CreateTopic: return handle_create_topic(b, s, rid, *f.body_as_CreateTopic());
    case Body::DeleteTopic: return handle_delete_topic(b, s, rid, *f.body_as_DeleteTopic());
    case Body::ListTopics: return handle_list_topics(b, s, rid, *f.body_as_ListTopics());
    case Body::DescribeTopic: return handle_describe_topic(b, s, rid, *f.body_as_DescribeTopic());
    case Body::Publish: return handle_publish(b, s, rid, *f.body_as_Publish());
    case Body::Subscribe: return handle_subscribe(b, s, rid, *f.body_as_Subscribe());
    case Body::Unsubscribe: return handle_unsubscribe(b, s, rid, *f.body_as_Unsubscribe());
    case Body::Credit: return handle_credit(b, s, *f.body_as_Credit());
    case Body::Ack: return handle_ack(b, s, *f.body_as_Ack());
    case Body::Nack: return handle_nack(b, s, *f.body_as_Nack());
    case Body::CreateGroup: return handle_create_group(b, s, rid, *f.body_as_CreateGroup());
    case Body::ListGroups: return handle_list_groups(b, s, rid, *f.body_as_ListGroups());
    case Body::DescribeGroup: return handle_describe_group(b, s, rid, *f.body_as_DescribeGroup());
    case Body::ResetGroup: return handle_reset_group(b, s, rid, *f.body_as_ResetGroup());
    case Body::DeleteGroup: return handle_delete_group(b, s, rid, *f.body_as_DeleteGroup());
    case Body::GetStats: return handle_get_stats(b, s, rid, *f.body_as_GetStats());
    case Body::AddWebhook: return handle_add_webhook(b, s, rid, *f.body_as_AddWebhook());
    case Body::ListWebhooks: return handle_list_webhooks(b, s, rid, *f.body_as_ListWebhooks());
    case Body::DescribeWebhook: return handle_describe_webhook(b, s, rid, *f.body_as_DescribeWebhook());
    case Body::PauseWebhook: return handle_pause_webhook(b, s, rid, *f.body_as_PauseWebhook());
    case Body::RemoveWebhook: return handle_remove_webhook(b, s, rid, *f.body_as_RemoveWebhook());
    default:
      // Replies, pushes, a second Hello, or a kind this broker does not know.
      s.close(wire::ErrorCode::protocol,
              std::string("unexpected frame kind ") + wire::EnumNameBody(f.body_type()));
  }
}

}  // namespace wharf
