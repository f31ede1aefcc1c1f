// Public surface of the SDK: thin wrappers that build request frames, wait
// for the reply through client::impl, and turn replies into plain structs.
#include "wharf/client.h"

#include <charconv>

#include "client_impl.h"

namespace wharf {

// ---------------------------------------------------------------------------
// errors
// ---------------------------------------------------------------------------

std::string_view to_string(errc code) {
  auto c = static_cast<wire::ErrorCode>(code);
  if (c >= wire::ErrorCode::MIN && c <= wire::ErrorCode::MAX) {
    return code == errc::ok ? "ok" : wire::EnumNameErrorCode(c);
  }
  return "unknown_error";
}

std::string error::to_string() const { return std::string(wharf::to_string(code)) + ": " + message; }

static_assert(static_cast<int>(errc::unavailable) == static_cast<int>(wire::ErrorCode::unavailable),
              "errc must mirror wire::ErrorCode");
static_assert(static_cast<int>(errc::storage_full) == static_cast<int>(wire::ErrorCode::storage_full),
              "errc must mirror wire::ErrorCode");

std::optional<start_position> start_position::parse(std::string_view text) {
  if (text == "earliest") return earliest();
  if (text == "latest") return latest();
  bool at = !text.empty() && text[0] == '@';
  if (at) text.remove_prefix(1);
  uint64_t v = 0;
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (text.empty() || ec != std::errc() || p != text.data() + text.size()) return std::nullopt;
  return at ? at_time_ms(v) : at_offset(v);
}

// ---------------------------------------------------------------------------
// message
// ---------------------------------------------------------------------------

namespace {
const wire::Record* rec(const void* p) { return static_cast<const wire::Record*>(p); }
std::string_view view(const flatbuffers::Vector<uint8_t>* v) {
  return v ? std::string_view(reinterpret_cast<const char*>(v->data()), v->size()) : std::string_view();
}
const std::string kNoTopic;
}  // namespace

const std::string& message::topic() const { return sub_ ? sub_->topic : kNoTopic; }

std::optional<std::string_view> message::key() const {
  if (!record_ || !rec(record_)->key()) return std::nullopt;
  return view(rec(record_)->key());
}

std::string_view message::payload() const { return record_ ? view(rec(record_)->payload()) : std::string_view(); }

std::optional<std::string_view> message::header(std::string_view name) const {
  if (!record_ || !rec(record_)->headers()) return std::nullopt;
  for (auto h : *rec(record_)->headers()) {
    if (h->name()->string_view() == name) return view(h->value());
  }
  return std::nullopt;
}

std::vector<std::pair<std::string_view, std::string_view>> message::headers() const {
  std::vector<std::pair<std::string_view, std::string_view>> out;
  if (!record_ || !rec(record_)->headers()) return out;
  for (auto h : *rec(record_)->headers()) out.emplace_back(h->name()->string_view(), view(h->value()));
  return out;
}

void message::ack() const {
  if (sub_) sub_->settle(offset_, detail::settle_kind::ack, 0);
}

void message::nack(std::chrono::milliseconds delay) const {
  if (sub_) sub_->settle(offset_, detail::settle_kind::nack, static_cast<uint32_t>(std::max<int64_t>(0, delay.count())));
}

void message::release() const {
  if (sub_) sub_->settle(offset_, detail::settle_kind::release, 0);
}

// ---------------------------------------------------------------------------
// subscription
// ---------------------------------------------------------------------------

subscription::~subscription() { close(); }

void subscription::close() {
  if (!state_) return;
  client::impl* owner;
  {
    std::lock_guard lk(state_->owner_mu);
    owner = state_->owner;
  }
  if (owner) {
    owner->unsubscribe(state_);
  } else {
    state_->stop_worker();
  }
  state_.reset();
}

uint64_t subscription::delivered() const { return state_ ? state_->delivered.load() : 0; }

// ---------------------------------------------------------------------------
// client
// ---------------------------------------------------------------------------

client::client(std::unique_ptr<impl> p) : impl_(std::move(p)) {}
client::~client() { close(); }

result<std::unique_ptr<client>> client::connect(client_options options) {
  auto p = std::make_unique<impl>(std::move(options));
  auto r = p->start();
  if (!r) return r.err();
  return std::unique_ptr<client>(new client(std::move(p)));
}

void client::close(std::chrono::milliseconds timeout) {
  if (impl_) impl_->close(timeout);
}

bool client::connected() const { return impl_->connected(); }
const client_options& client::options() const { return impl_->options(); }

result<publish_ack> client::publish(std::string_view topic, const record& r) {
  auto promise = std::make_shared<std::promise<result<publish_ack>>>();
  auto future = promise->get_future();
  impl_->publish_async(topic, r, [promise](const result<publish_ack>& res) { promise->set_value(res); }, true);
  if (future.wait_for(impl_->options().request_timeout + std::chrono::seconds(5)) != std::future_status::ready) {
    return error(errc::timeout, "no answer to publish");
  }
  return future.get();
}

void client::publish_async(std::string_view topic, const record& r, publish_callback done) {
  impl_->publish_async(topic, r, std::move(done), false);
}

std::future<result<publish_ack>> client::publish_future(std::string_view topic, const record& r) {
  auto promise = std::make_shared<std::promise<result<publish_ack>>>();
  auto future = promise->get_future();
  impl_->publish_async(topic, r, [promise](const result<publish_ack>& res) { promise->set_value(res); }, false);
  return future;
}

result<void> client::flush(std::chrono::milliseconds timeout) { return impl_->flush(timeout); }

namespace {

error unexpected(const char* what) { return error(errc::protocol, std::string("unexpected reply to ") + what); }

topic_info to_topic_info(const wire::TopicInfo& t) {
  topic_info i;
  i.name = t.name() ? t.name()->str() : "";
  i.first_offset = t.first_offset();
  i.next_offset = t.next_offset();
  i.records = t.records();
  i.bytes = t.bytes();
  i.retention_ms = t.retention_ms();
  i.retention_bytes = t.retention_bytes();
  i.created_us = t.created_us();
  i.last_timestamp_us = t.last_timestamp_us();
  if (t.groups()) {
    for (auto g : *t.groups()) i.groups.push_back(g->str());
  }
  return i;
}

group_info to_group_info(const wire::GroupInfo& g) {
  group_info i;
  i.topic = g.topic() ? g.topic()->str() : "";
  i.group = g.group() ? g.group()->str() : "";
  i.committed_offset = g.committed_offset();
  i.dispatch_offset = g.dispatch_offset();
  i.lag = g.lag();
  i.pending = g.pending();
  i.redeliveries = g.redeliveries();
  i.dead_lettered = g.dead_lettered();
  i.ack_timeout_ms = g.ack_timeout_ms();
  i.max_deliveries = g.max_deliveries();
  i.created_us = g.created_us();
  if (g.members()) {
    for (auto m : *g.members()) {
      i.members.push_back({m->id(), m->peer() ? m->peer()->str() : "", m->in_flight(), m->delivered()});
    }
  }
  i.webhook = g.webhook();
  return i;
}

webhook_info to_webhook_info(const wire::WebhookInfo& w) {
  webhook_info i;
  i.topic = w.topic() ? w.topic()->str() : "";
  i.name = w.name() ? w.name()->str() : "";
  if (auto c = w.config()) {
    i.url = c->url()->str();
    if (c->secrets()) {
      for (auto sec : *c->secrets()) i.secrets.push_back(sec->str());
    }
    if (c->headers()) {
      for (auto h : *c->headers()) i.headers.emplace_back(h->name()->str(), h->value() ? h->value()->str() : "");
    }
    i.timeout_ms = c->timeout_ms();
    i.max_in_flight = c->max_in_flight();
    i.max_deliveries = c->max_deliveries();
    if (c->retry_schedule_ms()) i.retry_schedule_ms.assign(c->retry_schedule_ms()->begin(), c->retry_schedule_ms()->end());
    i.disable_after_ms = c->disable_after_ms().value_or(0);
  }
  i.paused = w.paused();
  i.disabled_reason = w.disabled_reason() ? w.disabled_reason()->str() : "";
  i.failing_since_us = w.failing_since_us();
  i.attempts = w.attempts();
  i.succeeded = w.succeeded();
  i.failed_status = w.failed_status();
  i.timeouts = w.timeouts();
  i.connect_errors = w.connect_errors();
  i.other_errors = w.other_errors();
  i.in_flight = w.in_flight();
  if (w.group()) i.group = to_group_info(*w.group());
  if (w.recent()) {
    for (auto a : *w.recent()) {
      i.recent.push_back({a->time_us(), a->offset(), a->attempt(), a->status(), a->latency_us(),
                          a->error() ? a->error()->str() : ""});
    }
  }
  return i;
}

/// Sends the request `build` makes and returns the reply frame.
template <class Build>
result<detail::reply_ptr> call(client::impl& impl, Build build) {
  flatbuffers::FlatBufferBuilder fbb(256);
  uint64_t rid = impl.next_request_id();
  wire::finish_frame(fbb, rid, build(fbb));
  return impl.roundtrip(fbb, rid);
}

}  // namespace

result<topic_info> client::create_topic(std::string_view name, const topic_options& o) {
  auto r = call(*impl_, [&](flatbuffers::FlatBufferBuilder& fbb) {
    auto n = fbb.CreateString(name.data(), name.size());
    return wire::CreateCreateTopic(fbb, n, o.retention_ms ? flatbuffers::Optional<uint64_t>(*o.retention_ms) : flatbuffers::nullopt,
                                   o.retention_bytes ? flatbuffers::Optional<uint64_t>(*o.retention_bytes) : flatbuffers::nullopt,
                                   o.if_not_exists);
  });
  if (!r) return r.err();
  auto t = (*r)->frame()->body_as_TopicInfo();
  if (!t) return unexpected("CreateTopic");
  return to_topic_info(*t);
}

result<void> client::delete_topic(std::string_view name) {
  auto r = call(*impl_, [&](flatbuffers::FlatBufferBuilder& fbb) {
    return wire::CreateDeleteTopic(fbb, fbb.CreateString(name.data(), name.size()));
  });
  if (!r) return r.err();
  if (!(*r)->frame()->body_as_Ok()) return unexpected("DeleteTopic");
  return {};
}

result<std::vector<topic_info>> client::list_topics() {
  auto r = call(*impl_, [&](flatbuffers::FlatBufferBuilder& fbb) { return wire::CreateListTopics(fbb); });
  if (!r) return r.err();
  auto l = (*r)->frame()->body_as_TopicList();
  if (!l) return unexpected("ListTopics");
  std::vector<topic_info> out;
  if (l->topics()) {
    for (auto t : *l->topics()) out.push_back(to_topic_info(*t));
  }
  return out;
}

result<topic_info> client::describe_topic(std::string_view name) {
  auto r = call(*impl_, [&](flatbuffers::FlatBufferBuilder& fbb) {
    return wire::CreateDescribeTopic(fbb, fbb.CreateString(name.data(), name.size()));
  });
  if (!r) return r.err();
  auto t = (*r)->frame()->body_as_TopicInfo();
  if (!t) return unexpected("DescribeTopic");
  return to_topic_info(*t);
}

result<group_info> client::create_group(std::string_view topic, std::string_view group, const group_options& o) {
  auto r = call(*impl_, [&](flatbuffers::FlatBufferBuilder& fbb) {
    auto t = fbb.CreateString(topic.data(), topic.size());
    auto g = fbb.CreateString(group.data(), group.size());
    wire::StartPosition start(static_cast<wire::StartKind>(o.start.what), o.start.value);
    return wire::CreateCreateGroup(
        fbb, t, g, &start,
        o.ack_timeout ? flatbuffers::Optional<uint32_t>(static_cast<uint32_t>(o.ack_timeout->count())) : flatbuffers::nullopt,
        o.max_deliveries ? flatbuffers::Optional<uint32_t>(*o.max_deliveries) : flatbuffers::nullopt, o.if_not_exists);
  });
  if (!r) return r.err();
  auto g = (*r)->frame()->body_as_GroupInfo();
  if (!g) return unexpected("CreateGroup");
  return to_group_info(*g);
}

result<std::vector<group_info>> client::list_groups(std::string_view topic) {
  auto r = call(*impl_, [&](flatbuffers::FlatBufferBuilder& fbb) {
    return wire::CreateListGroups(fbb, fbb.CreateString(topic.data(), topic.size()));
  });
  if (!r) return r.err();
  auto l = (*r)->frame()->body_as_GroupList();
  if (!l) return unexpected("ListGroups");
  std::vector<group_info> out;
  if (l->groups()) {
    for (auto g : *l->groups()) out.push_back(to_group_info(*g));
  }
  return out;
}

result<group_info> client::describe_group(std::string_view topic, std::string_view group) {
  auto r = call(*impl_, [&](flatbuffers::FlatBufferBuilder& fbb) {
    auto t = fbb.CreateString(topic.data(), topic.size());
    auto g = fbb.CreateString(group.data(), group.size());
    return wire::CreateDescribeGroup(fbb, t, g);
  });
  if (!r) return r.err();
  auto g = (*r)->frame()->body_as_GroupInfo();
  if (!g) return unexpected("DescribeGroup");
  return to_group_info(*g);
}

result<group_info> client::reset_group(std::string_view topic, std::string_view group, start_position to) {
  auto r = call(*impl_, [&](flatbuffers::FlatBufferBuilder& fbb) {
    auto t = fbb.CreateString(topic.data(), topic.size());
    auto g = fbb.CreateString(group.data(), group.size());
    wire::StartPosition pos(static_cast<wire::StartKind>(to.what), to.value);
    return wire::CreateResetGroup(fbb, t, g, &pos);
  });
  if (!r) return r.err();
  auto g = (*r)->frame()->body_as_GroupInfo();
  if (!g) return unexpected("ResetGroup");
  return to_group_info(*g);
}

result<void> client::delete_group(std::string_view topic, std::string_view group) {
  auto r = call(*impl_, [&](flatbuffers::FlatBufferBuilder& fbb) {
    auto t = fbb.CreateString(topic.data(), topic.size());
    auto g = fbb.CreateString(group.data(), group.size());
    return wire::CreateDeleteGroup(fbb, t, g);
  });
  if (!r) return r.err();
  if (!(*r)->frame()->body_as_Ok()) return unexpected("DeleteGroup");
  return {};
}

result<webhook_info> client::add_webhook(std::string_view topic, std::string_view name, const webhook_options& o) {
  auto r = call(*impl_, [&](flatbuffers::FlatBufferBuilder& fbb) {
    auto t = fbb.CreateString(topic.data(), topic.size());
    auto n = fbb.CreateString(name.data(), name.size());
    std::vector<flatbuffers::Offset<wire::HttpHeader>> hs;
    for (auto& [k, v] : o.headers) hs.push_back(wire::CreateHttpHeader(fbb, fbb.CreateString(k), fbb.CreateString(v)));
    std::vector<uint32_t> schedule;
    for (auto d : o.retry_schedule) schedule.push_back(static_cast<uint32_t>(d.count()));
    auto url = fbb.CreateString(o.url);
    auto secrets = fbb.CreateVectorOfStrings(o.secrets);
    auto headers = fbb.CreateVector(hs);
    auto sched = fbb.CreateVector(schedule);
    auto config = wire::CreateWebhookConfig(
        fbb, url, secrets, headers, o.timeout ? static_cast<uint32_t>(o.timeout->count()) : 0, o.max_in_flight.value_or(0),
        sched, o.max_deliveries.value_or(0),
        o.disable_after ? flatbuffers::Optional<uint64_t>(static_cast<uint64_t>(o.disable_after->count()))
                        : flatbuffers::nullopt);
    wire::StartPosition start(static_cast<wire::StartKind>(o.start.what), o.start.value);
    return wire::CreateAddWebhook(fbb, t, n, config, &start, o.update);
  });
  if (!r) return r.err();
  auto w = (*r)->frame()->body_as_WebhookInfo();
  if (!w) return unexpected("AddWebhook");
  return to_webhook_info(*w);
}

result<std::vector<webhook_info>> client::list_webhooks(std::string_view topic) {
  auto r = call(*impl_, [&](flatbuffers::FlatBufferBuilder& fbb) {
    return wire::CreateListWebhooks(fbb, fbb.CreateString(topic.data(), topic.size()));
  });
  if (!r) return r.err();
  auto l = (*r)->frame()->body_as_WebhookList();
  if (!l) return unexpected("ListWebhooks");
  std::vector<webhook_info> out;
  if (l->webhooks()) {
    for (auto w : *l->webhooks()) out.push_back(to_webhook_info(*w));
  }
  return out;
}

result<webhook_info> client::describe_webhook(std::string_view topic, std::string_view name) {
  auto r = call(*impl_, [&](flatbuffers::FlatBufferBuilder& fbb) {
    auto t = fbb.CreateString(topic.data(), topic.size());
    return wire::CreateDescribeWebhook(fbb, t, fbb.CreateString(name.data(), name.size()));
  });
  if (!r) return r.err();
  auto w = (*r)->frame()->body_as_WebhookInfo();
  if (!w) return unexpected("DescribeWebhook");
  return to_webhook_info(*w);
}

result<webhook_info> client::pause_webhook(std::string_view topic, std::string_view name, bool paused) {
  auto r = call(*impl_, [&](flatbuffers::FlatBufferBuilder& fbb) {
    auto t = fbb.CreateString(topic.data(), topic.size());
    return wire::CreatePauseWebhook(fbb, t, fbb.CreateString(name.data(), name.size()), paused);
  });
  if (!r) return r.err();
  auto w = (*r)->frame()->body_as_WebhookInfo();
  if (!w) return unexpected("PauseWebhook");
  return to_webhook_info(*w);
}

result<void> client::remove_webhook(std::string_view topic, std::string_view name) {
  auto r = call(*impl_, [&](flatbuffers::FlatBufferBuilder& fbb) {
    auto t = fbb.CreateString(topic.data(), topic.size());
    return wire::CreateRemoveWebhook(fbb, t, fbb.CreateString(name.data(), name.size()));
  });
  if (!r) return r.err();
  if (!(*r)->frame()->body_as_Ok()) return unexpected("RemoveWebhook");
  return {};
}

result<std::unique_ptr<subscription>> client::subscribe(std::string_view topic, message_handler handler,
                                                        subscribe_options options) {
  auto s = impl_->subscribe(topic, "", std::move(handler), std::move(options));
  if (!s) return s.err();
  return std::unique_ptr<subscription>(new subscription(std::move(*s)));
}

result<std::unique_ptr<subscription>> client::subscribe(std::string_view topic, std::string_view group,
                                                        message_handler handler, subscribe_options options) {
  if (group.empty()) return error(errc::invalid_argument, "group name is empty");
  auto s = impl_->subscribe(topic, group, std::move(handler), std::move(options));
  if (!s) return s.err();
  return std::unique_ptr<subscription>(new subscription(std::move(*s)));
}

result<broker_stats> client::stats() {
  auto r = call(*impl_, [&](flatbuffers::FlatBufferBuilder& fbb) { return wire::CreateGetStats(fbb); });
  if (!r) return r.err();
  auto s = (*r)->frame()->body_as_Stats();
  if (!s) return unexpected("GetStats");
  broker_stats b;
  b.broker_version = s->broker_version() ? s->broker_version()->str() : "";
  b.uptime_ms = s->uptime_ms();
  b.connections = s->connections();
  b.topics = s->topics();
  b.groups = s->groups();
  b.publish_records_total = s->publish_records_total();
  b.publish_bytes_total = s->publish_bytes_total();
  b.deliver_records_total = s->deliver_records_total();
  b.publish_records_per_s = s->publish_records_per_s();
  b.deliver_records_per_s = s->deliver_records_per_s();
  b.commits_total = s->commits_total();
  b.syncs_total = s->syncs_total();
  b.storage_used_bytes = s->storage_used_bytes();
  b.map_size_bytes = s->map_size_bytes();
  b.fsync = s->fsync() ? s->fsync()->str() : "";
  return b;
}

}  // namespace wharf
