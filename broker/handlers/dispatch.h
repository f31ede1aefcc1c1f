// Request handlers: the only code that reads request frames and writes
// replies. dispatch_frame() routes a verified frame to its handler; each
// handler answers exactly once (a reply or an Error with the request's id),
// possibly later, from a writer completion. Loop thread.
#pragma once

#include "wire.h"

namespace wharf {

class broker;
class session;

void dispatch_frame(broker& b, session& s, const wire::Frame& frame);

// One per request kind (handlers/*.cc).
void handle_create_topic(broker& b, session& s, uint64_t rid, const wire::CreateTopic& req);
void handle_delete_topic(broker& b, session& s, uint64_t rid, const wire::DeleteTopic& req);
void handle_list_topics(broker& b, session& s, uint64_t rid, const wire::ListTopics& req);
void handle_describe_topic(broker& b, session& s, uint64_t rid, const wire::DescribeTopic& req);
void handle_publish(broker& b, session& s, uint64_t rid, const wire::Publish& req);
void handle_subscribe(broker& b, session& s, uint64_t rid, const wire::Subscribe& req);
void handle_unsubscribe(broker& b, session& s, uint64_t rid, const wire::Unsubscribe& req);
void handle_credit(broker& b, session& s, const wire::Credit& req);
void handle_ack(broker& b, session& s, const wire::Ack& req);
void handle_nack(broker& b, session& s, const wire::Nack& req);
void handle_create_group(broker& b, session& s, uint64_t rid, const wire::CreateGroup& req);
void handle_list_groups(broker& b, session& s, uint64_t rid, const wire::ListGroups& req);
void handle_describe_group(broker& b, session& s, uint64_t rid, const wire::DescribeGroup& req);
void handle_reset_group(broker& b, session& s, uint64_t rid, const wire::ResetGroup& req);
void handle_delete_group(broker& b, session& s, uint64_t rid, const wire::DeleteGroup& req);
void handle_get_stats(broker& b, session& s, uint64_t rid, const wire::GetStats& req);
void handle_add_webhook(broker& b, session& s, uint64_t rid, const wire::AddWebhook& req);
void handle_list_webhooks(broker& b, session& s, uint64_t rid, const wire::ListWebhooks& req);
void handle_describe_webhook(broker& b, session& s, uint64_t rid, const wire::DescribeWebhook& req);
void handle_pause_webhook(broker& b, session& s, uint64_t rid, const wire::PauseWebhook& req);
void handle_remove_webhook(broker& b, session& s, uint64_t rid, const wire::RemoveWebhook& req);

}  // namespace wharf
