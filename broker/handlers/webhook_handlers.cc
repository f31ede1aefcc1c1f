// Webhooks: AddWebhook, ListWebhooks, DescribeWebhook, PauseWebhook,
// RemoveWebhook. A webhook is a consumer group with a webhooks::webhook
// attached, so creating, saving and removing it go through the group code.
#include <memory>

#include "dispatch.h"
#include "errors.h"
#include "group_helpers.h"
#include "log.h"
#include "webhooks/signature.h"
#include "webhooks/webhook.h"

namespace wharf {
namespace {

using webhooks::webhook;

void reply_webhook_info(session& s, uint64_t rid, const webhook& w, const topic& t) {
  flatbuffers::FlatBufferBuilder fbb(1024);
  wire::finish_frame(fbb, rid, w.build_info(fbb, t.state.next_offset));
  s.send(fbb);
}

webhook* find_webhook(broker& b, session& s, uint64_t rid, topic& t,
                      const flatbuffers::String* name) {
  auto it = t.groups.find(name->str());
  if (it == t.groups.end() || !it->second->webhook()) {
    s.send_error(rid, wire::ErrorCode::unknown_group,
                 "unknown webhook '" + name->str() + "' on topic '" + t.config.name + "'");
    return nullptr;
  }
  return it->second->webhook();
}

/// Answers `rid` with the webhook's info once its group's state is durable.
std::function<void(storage::store_error)> reply_when_saved(broker& b, session& s, uint64_t rid,
                                                           const topic& t, const std::string& name,
                                                           const char* what) {
  return [&b, sid = s.id(), rid, topic_id = t.config.id, name, what](storage::store_error e) {
    session* s = b.find_session(sid);
    topic* t = b.topics().find(topic_id);
    if (!s) return;
    auto it = t ? t->groups.find(name) : decltype(t->groups.end()){};
    if (e != storage::store_error::ok || !t || it == t->groups.end() || !it->second->webhook()) {
      return s->send_error(
          rid, e == storage::store_error::ok ? wire::ErrorCode::unknown_group : to_wire(e),
          std::string("cannot ") + what + " webhook: " + storage::to_string(e));
    }
    reply_webhook_info(*s, rid, *it->second->webhook(), *t);
  };
}

}  // namespace

// AddWebhook{topic, name, config, start, update} -> WebhookInfo (once durable)
//   | Error(unknown_topic, invalid_name, invalid_argument, group_exists, storage_full)
void handle_add_webhook(broker& b, session& s, uint64_t rid, const wire::AddWebhook& req) {
  topic* t = find_topic(b, s, rid, req.topic());
  if (!t || !check_group_name(s, rid, req.name()->string_view())) return;
  std::string error;
  auto settings = webhooks::webhook_settings::from_wire(*req.config(), error, b.config().webhook_loopback_only);
  if (!settings) return s.send_error(rid, wire::ErrorCode::invalid_argument, error);
  std::string name = req.name()->str();
  auto it = t->groups.find(name);
  if (it != t->groups.end()) {
    consumer_group& g = *it->second;
    if (!g.webhook() || !req.update()) {
      return s.send_error(rid, wire::ErrorCode::group_exists,
                          std::string(g.webhook() ? "webhook" : "a consumer group named") + " '" +
                              name + "' already exists on '" + t->config.name + "'" +
                              (g.webhook() ? " (use update to change it)" : ""));
    }
    if (settings->secrets.empty()) settings->secrets = g.webhook()->settings().secrets;
    g.webhook()->update(b, std::move(*settings));
    log_info("webhook %s/%s updated: %s", t->config.name.c_str(), name.c_str(),
             g.webhook()->settings().url.c_str());
    g.save(b, reply_when_saved(b, s, rid, *t, name, "update"));
    g.dispatch(b);
    return;
  }
  if (req.update()) {
    return s.send_error(rid, wire::ErrorCode::unknown_group,
                        "unknown webhook '" + name + "' on topic '" + t->config.name + "'");
  }
  if (settings->secrets.empty()) settings->secrets.push_back(webhooks::generate_secret());
  group_settings gs = settings->group();
  std::string url = settings->url;
  auto reply = reply_when_saved(b, s, rid, *t, name, "add");
  create_group(
      b, *t, name, req.start(), gs,
      [&b, reply, topic_id = t->config.id, name](storage::store_error e) {
        topic* t = b.topics().find(topic_id);
        auto it = t ? t->groups.find(name) : decltype(t->groups.end()){};
        // Deliveries start once the webhook is durable, so a crash cannot
        // leave a receiver with records from a webhook that never existed.
        if (e == storage::store_error::ok && t && it != t->groups.end() && it->second->webhook()) {
          it->second->webhook()->start(b);
          it->second->dispatch(b);
        }
        reply(e);
      },
      [&settings](consumer_group& g) {
        g.set_webhook(
            std::make_unique<webhook>(g, std::move(*settings), webhooks::webhook_status{}));
      });
  log_info("webhook %s/%s added: %s", t->config.name.c_str(), name.c_str(), url.c_str());
}

// ListWebhooks{topic?} -> WebhookList | Error(unknown_topic)
void handle_list_webhooks(broker& b, session& s, uint64_t rid, const wire::ListWebhooks& req) {
  std::vector<topic*> topics;
  if (req.topic() && req.topic()->size() > 0) {
    topic* t = find_topic(b, s, rid, req.topic());
    if (!t) return;
    topics.push_back(t);
  } else {
    for (auto& [name, t] : b.topics().all()) {
      if (!t->deleting) topics.push_back(t.get());
    }
  }
  flatbuffers::FlatBufferBuilder fbb(2048);
  std::vector<flatbuffers::Offset<wire::WebhookInfo>> infos;
  for (topic* t : topics) {
    for (auto& [name, g] : t->groups) {
      if (g->webhook()) infos.push_back(g->webhook()->build_info(fbb, t->state.next_offset));
    }
  }
  auto v = fbb.CreateVector(infos);
  wire::finish_frame(fbb, rid, wire::CreateWebhookList(fbb, v));
  s.send(fbb);
}

// DescribeWebhook{topic, name} -> WebhookInfo | Error(unknown_topic, unknown_group)
void handle_describe_webhook(broker& b, session& s, uint64_t rid,
                             const wire::DescribeWebhook& req) {
  topic* t = find_topic(b, s, rid, req.topic());
  if (!t) return;
  if (webhook* w = find_webhook(b, s, rid, *t, req.name())) reply_webhook_info(s, rid, *w, *t);
}

// PauseWebhook{topic, name, paused} -> WebhookInfo (once durable)
// Pausing stops new requests (those in flight finish); resuming also clears
// a pause the broker made after disable_after.
void handle_pause_webhook(broker& b, session& s, uint64_t rid, const wire::PauseWebhook& req) {
  topic* t = find_topic(b, s, rid, req.topic());
  if (!t) return;
  webhook* w = find_webhook(b, s, rid, *t, req.name());
  if (!w) return;
  consumer_group& g = *t->groups.at(req.name()->str());
  w->set_paused(b, req.paused());
  log_info("webhook %s/%s %s", t->config.name.c_str(), g.name().c_str(),
           req.paused() ? "paused" : "resumed");
  g.save(b, reply_when_saved(b, s, rid, *t, g.name(), req.paused() ? "pause" : "resume"));
  g.dispatch(b);
}

// RemoveWebhook{topic, name} -> Ok | Error(unknown_topic, unknown_group)
void handle_remove_webhook(broker& b, session& s, uint64_t rid, const wire::RemoveWebhook& req) {
  topic* t = find_topic(b, s, rid, req.topic());
  if (!t) return;
  if (!find_webhook(b, s, rid, *t, req.name())) return;
  delete_group(b, s, rid, *t, *t->groups.at(req.name()->str()));
}

}  // namespace wharf
