#include "webhooks/webhook.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cctype>
#include <memory>

#include "broker.h"
#include "groups/consumer_group.h"
#include "log.h"
#include "topics/topic.h"
#include "webhooks/signature.h"

namespace wharf::webhooks {
namespace {

constexpr uint32_t kMaxScheduleEntries = 64;
constexpr uint32_t kMaxTimeoutMs = 600000;  // 10 min per attempt
constexpr uint32_t kMaxWebhookInFlight = 1000;
constexpr int64_t kMaxRetryAfterMs = 86400000;  // a day: longer Retry-After values are capped
constexpr uint32_t kAckMarginMs = 10000;        // the group's deadline trails curl's timeout

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(x) == std::tolower(y);
         });
}

bool valid_header_name(std::string_view n) {
  return !n.empty() && std::all_of(n.begin(), n.end(), [](unsigned char c) {
    return std::isalnum(c) ||
           std::string_view("!#$%&'*+-.^_`|~").find(static_cast<char>(c)) != std::string_view::npos;
  });
}

bool valid_header_value(std::string_view v) {
  return std::none_of(v.begin(), v.end(),
                      [](unsigned char c) { return c == '\r' || c == '\n' || c == 0; });
}

// Headers the broker sets itself; a configured header cannot replace them.
bool reserved_header(std::string_view n) {
  for (std::string_view r : {"webhook-id", "webhook-timestamp", "webhook-signature",
                             "content-length", "host", "transfer-encoding", "expect"}) {
    if (iequals(n, r)) return true;
  }
  return false;
}

/// The host of an absolute http(s) URL (libcurl's parser), or nullopt.
std::optional<std::string> url_host(const std::string& url) {
  bool http = url.starts_with("http://") || url.starts_with("https://");
  bool clean = std::none_of(url.begin(), url.end(),
                            [](unsigned char ch) { return ch <= ' ' || ch == 0x7f; });
  if (!http || !clean || url.size() > 2048) return std::nullopt;
  std::unique_ptr<CURLU, decltype(&curl_url_cleanup)> u(curl_url(), curl_url_cleanup);
  char* host = nullptr;
  if (!u || curl_url_set(u.get(), CURLUPART_URL, url.c_str(), 0) != CURLUE_OK ||
      curl_url_get(u.get(), CURLUPART_HOST, &host, 0) != CURLUE_OK || !host) {
    return std::nullopt;
  }
  std::string out(host);
  curl_free(host);
  return out.empty() ? std::nullopt : std::optional(out);
}

bool loopback_host(const std::string& host) {
  if (host == "localhost" || host == "[::1]") return true;
  in_addr a{};
  return inet_pton(AF_INET, host.c_str(), &a) == 1 && (ntohl(a.s_addr) >> 24) == 127;
}

}  // namespace

// ---------------------------------------------------------------------------
// Settings
// ---------------------------------------------------------------------------

uint32_t webhook_settings::attempts_allowed() const {
  return max_deliveries ? max_deliveries : static_cast<uint32_t>(retry_schedule_ms.size());
}

uint32_t webhook_settings::delay_before(uint32_t n) const {
  if (retry_schedule_ms.empty() || n == 0) return 0;
  return retry_schedule_ms[std::min<size_t>(n - 1, retry_schedule_ms.size() - 1)];
}

group_settings webhook_settings::group() const {
  return group_settings{timeout_ms + kAckMarginMs, attempts_allowed()};
}

std::optional<webhook_settings> webhook_settings::from_wire(const wire::WebhookConfig& c,
                                                            std::string& error,
                                                            bool loopback_only) {
  webhook_settings s;
  s.url = c.url()->str();
  auto host = url_host(s.url);
  if (!host) {
    error =
        "url must be an http:// or https:// URL with a host, without spaces (at most 2048 "
        "characters)";
    return std::nullopt;
  }
  if (loopback_only && !loopback_host(*host)) {
    error =
        "this broker only calls loopback URLs (webhook_loopback_only): '" + *host + "' is not one";
    return std::nullopt;
  }
  if (c.secrets()) {
    for (auto sec : *c.secrets()) {
      if (!decode_secret(sec->string_view())) {
        error = "secret must be \"whsec_\" followed by the base64 of 16 to 64 random bytes";
        return std::nullopt;
      }
      s.secrets.push_back(sec->str());
    }
  }
  if (s.secrets.size() > 8) {
    error = "at most 8 secrets";
    return std::nullopt;
  }
  if (c.headers()) {
    for (auto h : *c.headers()) {
      std::string_view value = h->value() ? h->value()->string_view() : std::string_view{};
      if (!valid_header_name(h->name()->string_view()) || !valid_header_value(value) ||
          reserved_header(h->name()->string_view())) {
        error = "invalid or reserved header '" + h->name()->str() + "'";
        return std::nullopt;
      }
      s.headers.emplace_back(h->name()->str(), std::string(value));
    }
  }
  if (c.timeout_ms()) s.timeout_ms = c.timeout_ms();
  if (c.max_in_flight()) s.max_in_flight = c.max_in_flight();
  if (c.retry_schedule_ms() && c.retry_schedule_ms()->size() > 0) {
    s.retry_schedule_ms.assign(c.retry_schedule_ms()->begin(), c.retry_schedule_ms()->end());
  }
  s.max_deliveries = c.max_deliveries();
  s.disable_after_ms = c.disable_after_ms().value_or(kDefaultDisableAfterMs);
  if (s.timeout_ms > kMaxTimeoutMs || s.max_in_flight > kMaxWebhookInFlight ||
      s.retry_schedule_ms.size() > kMaxScheduleEntries || s.max_deliveries > 1000) {
    error =
        "timeout_ms <= 600000, max_in_flight <= 1000, at most 64 schedule entries, max_deliveries "
        "<= 1000";
    return std::nullopt;
  }
  return s;
}

flatbuffers::Offset<wire::WebhookConfig> webhook_settings::to_wire(
    flatbuffers::FlatBufferBuilder& fbb) const {
  std::vector<flatbuffers::Offset<wire::HttpHeader>> hs;
  for (auto& [n, v] : headers)
    hs.push_back(wire::CreateHttpHeader(fbb, fbb.CreateString(n), fbb.CreateString(v)));
  auto u = fbb.CreateString(url);
  auto sec = fbb.CreateVectorOfStrings(secrets);
  auto hv = fbb.CreateVector(hs);
  auto sched = fbb.CreateVector(retry_schedule_ms);
  return wire::CreateWebhookConfig(fbb, u, sec, hv, timeout_ms, max_in_flight, sched,
                                   max_deliveries, disable_after_ms);
}

// ---------------------------------------------------------------------------
// Delivery
// ---------------------------------------------------------------------------

webhook::webhook(consumer_group& group, webhook_settings settings, webhook_status status)
    : group_(group), settings_(std::move(settings)), status_(std::move(status)) {
  for (auto& s : settings_.secrets) keys_.push_back(*decode_secret(s));
}

webhook::~webhook() {
  stop();
}

void webhook::start(broker& b) {
  http_ = &b.webhook_client();
  member_id_ = b.next_subscription_id();
  group_.state().add_member(member_id_, settings_.max_in_flight);
}

void webhook::stop() {
  if (http_) {
    for (uint64_t t : transfers_) http_->cancel(t);
  }
  transfers_.clear();
}

bool webhook::accepting(const broker& b) const {
  return http_ && !status_.paused && !b.shutting_down();
}

void webhook::update(broker& b, webhook_settings settings) {
  settings_ = std::move(settings);
  keys_.clear();
  for (auto& s : settings_.secrets) keys_.push_back(*decode_secret(s));
  group_.state().set_settings(settings_.group());
  if (http_) {
    // A new in-flight limit: re-register with the same id (the state keeps
    // its records in flight to this member).
    group_.state().remove_member(member_id_, true);
    stop();
    group_.state().add_member(member_id_, settings_.max_in_flight);
  }
}

void webhook::set_paused(broker& b, bool paused) {
  status_.paused = paused;
  if (!paused) {
    status_.disabled_reason.clear();
    status_.failing_since_us = 0;
  }
}

void webhook::deliver(broker& b, const storage::batch_ptr& batch, uint64_t offset,
                      uint16_t attempt) {
  const wire::Record& r =
      *batch->records()->records()->Get(static_cast<uint32_t>(offset - batch->base_offset));
  std::string id = group_.source().config.name + ":" + std::to_string(offset);
  int64_t ts = static_cast<int64_t>(wire::now_us() / 1000000);
  http_request req;
  req.url = settings_.url;
  req.timeout_ms = settings_.timeout_ms;
  if (r.payload()) {
    req.body = r.payload()->data();
    req.body_size = r.payload()->size();
  }
  req.keep = batch;  // the body points into the batch
  std::string content_type = "application/octet-stream";
  if (r.headers()) {
    for (auto h : *r.headers()) {
      if (h->value() && iequals(h->name()->string_view(), "content-type")) {
        std::string v(reinterpret_cast<const char*>(h->value()->data()), h->value()->size());
        if (valid_header_value(v)) content_type = v;
      }
    }
  }
  std::string signatures;
  std::string_view body(reinterpret_cast<const char*>(req.body), req.body_size);
  for (auto& k : keys_) {
    if (!signatures.empty()) signatures += ' ';
    signatures += sign(k, id, ts, body);
  }
  req.headers.push_back("Content-Type: " + content_type);
  req.headers.push_back("webhook-id: " + id);
  req.headers.push_back("webhook-timestamp: " + std::to_string(ts));
  if (!signatures.empty()) req.headers.push_back("webhook-signature: " + signatures);
  for (auto& [n, v] : settings_.headers) req.headers.push_back(n + ": " + v);

  uint64_t transfer =
      http_->post(std::move(req), [this, &b, offset, attempt](const http_response& resp) {
        on_done(b, offset, attempt, resp);
      });
  if (transfer == 0) {
    // Could not even start (out of memory): try again a second later. Only
    // the state is told, so the group's dispatch round is not re-entered.
    log_warn("webhook %s/%s: cannot start a request for offset %lu",
             group_.source().config.name.c_str(), group_.name().c_str(), offset);
    group_.state().nack(offset, 1000, static_cast<int64_t>(uv_now(b.loop())), member_id_);
    return;
  }
  transfers_.insert(transfer);
}

void webhook::on_done(broker& b, uint64_t offset, uint16_t attempt, const http_response& r) {
  transfers_.erase(r.id);
  uint64_t now = wire::now_us();
  recent_.push_back({now, offset, r.latency_us, attempt, r.status, r.error});
  if (recent_.size() > kRecentAttempts) recent_.pop_front();
  totals_.attempts++;
  const std::string& topic_name = group_.source().config.name;
  uint64_t one[] = {offset};
  if (r.result == http_response::outcome::ok) {
    totals_.succeeded++;
    if (status_.failing_since_us) {
      status_.failing_since_us = 0;
      group_.save(b);
    }
    group_.ack(b, one);
    return;
  }
  switch (r.result) {
    case http_response::outcome::status:
      totals_.failed_status++;
      break;
    case http_response::outcome::timeout:
      totals_.timeouts++;
      break;
    case http_response::outcome::connect:
      totals_.connect_errors++;
      break;
    default:
      totals_.other_errors++;
      break;
  }
  log_debug("webhook %s/%s: offset %lu attempt %u failed: %s", topic_name.c_str(),
            group_.name().c_str(), offset, attempt, r.error.c_str());
  if (!status_.failing_since_us) {
    status_.failing_since_us = now;
    group_.save(b);
  } else if (settings_.disable_after_ms && !status_.paused &&
             now - status_.failing_since_us >= wire::ms_to_us(settings_.disable_after_ms)) {
    status_.paused = true;
    status_.disabled_reason = "paused by the broker: every attempt failed for " +
                              std::to_string((now - status_.failing_since_us) / 1000000) +
                              " s (disable_after_ms=" + std::to_string(settings_.disable_after_ms) +
                              "); last error: " + r.error;
    log_warn("webhook %s/%s: %s", topic_name.c_str(), group_.name().c_str(),
             status_.disabled_reason.c_str());
    group_.save(b);
  }
  int64_t delay = settings_.delay_before(attempt + 1u);
  if ((r.status == 429 || r.status == 503) && r.retry_after_ms >= 0) {
    delay = std::max(delay, std::min(r.retry_after_ms, kMaxRetryAfterMs));
  }
  group_.nack(b, member_id_, one, static_cast<uint32_t>(delay), false);
}

flatbuffers::Offset<wire::WebhookInfo> webhook::build_info(flatbuffers::FlatBufferBuilder& fbb,
                                                           uint64_t topic_next_offset) const {
  auto topic = fbb.CreateString(group_.source().config.name);
  auto name = fbb.CreateString(group_.name());
  auto config = settings_.to_wire(fbb);
  auto reason = fbb.CreateString(status_.disabled_reason);
  auto group = group_.build_info(fbb, topic_next_offset);
  std::vector<flatbuffers::Offset<wire::WebhookAttempt>> recent;
  for (auto& a : recent_) {
    recent.push_back(wire::CreateWebhookAttempt(fbb, a.time_us, a.offset, a.attempt, a.status,
                                                a.latency_us, fbb.CreateString(a.error)));
  }
  auto rv = fbb.CreateVector(recent);
  uint32_t in_flight = static_cast<uint32_t>(transfers_.size());
  return wire::CreateWebhookInfo(fbb, topic, name, config, status_.paused, reason,
                                 status_.failing_since_us, totals_.attempts, totals_.succeeded,
                                 totals_.failed_status, totals_.timeouts, totals_.connect_errors,
                                 totals_.other_errors, in_flight, group, rv);
}

}  // namespace wharf::webhooks
