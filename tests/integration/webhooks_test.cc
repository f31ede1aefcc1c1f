// Outbound webhooks against a real receiver on loopback (tools/common/
// http_receiver.h): signatures, per-key order, the retry schedule,
// Retry-After, dead-lettering, pause/resume, disable_after, restart after
// kill -9, and the admin paths' errors through the SDK and the CLI.
#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <set>

#include "http_receiver.h"
#include "integration_support.h"
#include "webhooks/signature.h"

namespace wharf::test {
namespace {

using clock_type = std::chrono::steady_clock;

/// One POST as the receiver saw it.
struct arrival {
  std::string id, body;
  clock_type::time_point at;
  int answered = 0;
};

/// Distinct webhook-ids answered with a 2xx.
std::set<std::string> succeeded_ids(const std::vector<arrival>& all) {
  std::set<std::string> ids;
  for (auto& a : all) {
    if (a.answered / 100 == 2) ids.insert(a.id);
  }
  return ids;
}

/// A webhook endpoint: verifies every signature with `secret`, records every
/// request, and answers what `decide` says (default 204).
class endpoint {
 public:
  using decide_fn = std::function<tools::http_answer(const tools::http_request&, int attempt)>;
  explicit endpoint(decide_fn decide = {})
      : decide_(std::move(decide)),
        server_("127.0.0.1", 0, [this](const tools::http_request& r) { return on_request(r); }) {}

  std::string url() const { return server_.url("/hook"); }
  void set_secret(const std::string& secret) {
    std::lock_guard lk(mu_);
    key_ = *webhooks::decode_secret(secret);
  }
  /// Waits until `pred(arrivals)` holds, up to `timeout`.
  template <class Pred>
  bool wait(Pred pred, std::chrono::milliseconds timeout = 30s) {
    std::unique_lock lk(mu_);
    return cv_.wait_for(lk, timeout, [&] { return pred(arrivals_); });
  }
  std::vector<arrival> arrivals() const {
    std::lock_guard lk(mu_);
    return arrivals_;
  }
  int bad_signatures() const {
    std::lock_guard lk(mu_);
    return bad_signatures_;
  }
  std::set<std::string> succeeded() const { return succeeded_ids(arrivals()); }

 private:
  tools::http_answer on_request(const tools::http_request& r) {
    std::unique_lock lk(mu_);
    std::string id = r.header("webhook-id");
    auto now_s = std::chrono::duration_cast<std::chrono::seconds>(
        std::chrono::system_clock::now().time_since_epoch());
    if (!key_.empty() &&
        webhooks::verify(key_, id, r.header("webhook-timestamp"), r.header("webhook-signature"),
                         r.body, now_s.count(), 300) != webhooks::verify_result::ok) {
      ++bad_signatures_;
    }
    int attempt = ++attempts_[id];
    lk.unlock();
    tools::http_answer a = decide_ ? decide_(r, attempt) : tools::http_answer{204, {}, ""};
    lk.lock();
    arrivals_.push_back({id, r.body, clock_type::now(), a.status});
    cv_.notify_all();
    return a;
  }

  decide_fn decide_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::string key_;
  std::vector<arrival> arrivals_;
  std::map<std::string, int> attempts_;
  int bad_signatures_ = 0;
  tools::http_receiver server_;  // last: stops before the rest goes
};

/// The error code of a failed result, or nothing when it succeeded.
template <class R>
std::optional<wharf::errc> code_of(const R& r) {
  if (r) return std::nullopt;
  return r.err().code;
}

/// Polls `describe` (bounded) until `pred` holds: group progress and the
/// webhook's state have no event a client can wait on.
template <class Pred>
std::optional<wharf::webhook_info> describe_until(wharf::client& c, const std::string& topic,
                                                  const std::string& name, Pred pred) {
  std::optional<wharf::webhook_info> info;
  for (int i = 0; i < 1000; ++i) {
    auto d = c.describe_webhook(topic, name);
    if (d) {
      info = *d;
      if (pred(*info)) break;
    }
    std::this_thread::sleep_for(10ms);
  }
  return info;
}

}  // namespace

TEST_CASE(
    "webhooks: every record arrives signed and in key order, retries follow the schedule, "
    "Retry-After is honoured, and exhausted records go to the DLQ") {
  temp_dir dir;
  broker_process broker(dir.path());
  REQUIRE(broker.start());
  auto c = connect_client(broker.address());
  REQUIRE(c->create_topic("orders"));

  // Payload "<key>/<n>/<rule>": rule "ok", "500x2" (two failures), "429"
  // (one 429 with Retry-After: 1), "dead" (always 500).
  endpoint ep([](const tools::http_request& r, int attempt) -> tools::http_answer {
    std::string rule = r.body.substr(r.body.rfind('/') + 1);
    if (rule == "dead" || (rule == "500x2" && attempt <= 2)) return {500, {}, "no"};
    if (rule == "429" && attempt == 1) return {429, {{"Retry-After", "1"}}, "slow down"};
    return {204, {}, ""};
  });
  wharf::webhook_options o;
  o.url = ep.url();
  o.retry_schedule = {0ms, 100ms, 300ms};  // 3 attempts
  o.max_in_flight = 8;
  o.start = wharf::start_position::earliest();
  auto added = c->add_webhook("orders", "billing", o);
  REQUIRE(added);
  REQUIRE(added->secrets.size() == 1);
  ep.set_secret(added->secrets[0]);

  constexpr int kRecords = 120, kKeys = 6;
  std::map<std::string, std::vector<std::string>> by_key;  // payloads in offset order
  std::set<std::string> dead;
  for (int i = 0; i < kRecords; ++i) {
    std::string key = "k" + std::to_string(i % kKeys);
    std::string rule = i % 40 == 7 ? "dead" : i % 10 == 3 ? "500x2" : i % 25 == 11 ? "429" : "ok";
    std::string payload = key + "/" + std::to_string(i) + "/" + rule;
    auto ack = c->publish("orders", {.payload = payload, .key = key});
    REQUIRE(ack);
    if (rule == "dead") dead.insert("orders:" + std::to_string(ack->offset));
    by_key[key].push_back(payload);
  }
  size_t live = kRecords - dead.size();
  REQUIRE(ep.wait([&](auto& a) { return succeeded_ids(a).size() >= live; }, 60s));
  auto settled = describe_until(*c, "orders", "billing",
                                [&](auto& i) { return i.group.dead_lettered == dead.size(); });
  REQUIRE(settled);
  REQUIRE(settled->group.dead_lettered == dead.size());
  auto dlq = read_from_earliest(*c, "orders.dlq", dead.size());
  CHECK(dlq.size() == dead.size());
  CHECK(ep.bad_signatures() == 0);

  auto all = ep.arrivals();
  // Per key: the first successful delivery of each record in publish order,
  // and no record of a key sent before the previous one finished.
  std::map<std::string, std::vector<std::string>> done_by_key;
  for (auto& a : all) {
    std::string key = a.body.substr(0, a.body.find('/'));
    if (a.answered / 100 == 2 || a.body.ends_with("dead")) {
      auto& v = done_by_key[key];
      if (std::find(v.begin(), v.end(), a.body) == v.end() && a.answered / 100 == 2)
        v.push_back(a.body);
    }
  }
  for (auto& [key, expected] : by_key) {
    std::vector<std::string> want;
    for (auto& p : expected) {
      if (!p.ends_with("dead")) want.push_back(p);
    }
    CHECK_MESSAGE(done_by_key[key] == want, "key " << key);
  }
  // Retry timing: per record, gaps between attempts follow the schedule.
  std::map<std::string, std::vector<arrival>> by_id;
  for (auto& a : all) by_id[a.id].push_back(a);
  int checked_500 = 0, checked_429 = 0;
  for (auto& [id, tries] : by_id) {
    std::string rule = tries[0].body.substr(tries[0].body.rfind('/') + 1);
    auto gap = [&](size_t i) { return tries[i].at - tries[i - 1].at; };
    if (rule == "500x2") {
      REQUIRE(tries.size() == 3);
      CHECK(gap(1) >= 90ms);
      CHECK(gap(2) >= 290ms);
      ++checked_500;
    } else if (rule == "429") {
      REQUIRE(tries.size() == 2);
      CHECK(gap(1) >= 990ms);  // Retry-After: 1 beats the schedule's 100 ms
      ++checked_429;
    } else if (rule == "dead") {
      CHECK(tries.size() == 3);  // the schedule's three attempts, then the DLQ
    } else {
      CHECK(tries.size() == 1);
    }
  }
  CHECK(checked_500 > 0);
  CHECK(checked_429 > 0);

  // The dead letters name their origin.
  auto info = c->describe_webhook("orders", "billing");
  REQUIRE(info);
  CHECK(info->group.dead_lettered == dead.size());
  CHECK(info->succeeded == live);
  CHECK(info->failed_status > 0);
  CHECK(info->recent.size() == 20);
  CHECK(info->group.webhook);
  CHECK(info->group.lag == 0);
}

TEST_CASE("webhooks: dead letters carry the origin headers") {
  temp_dir dir;
  broker_process broker(dir.path());
  REQUIRE(broker.start());
  auto c = connect_client(broker.address());
  REQUIRE(c->create_topic("events"));
  endpoint ep([](const tools::http_request&, int) -> tools::http_answer {
    return {500, {}, "down"};
  });
  wharf::webhook_options o;
  o.url = ep.url();
  o.retry_schedule = {0ms, 20ms};
  REQUIRE(c->add_webhook("events", "crm", o));
  REQUIRE(c->publish("events", {.payload = "p"}));
  wharf::subscribe_options so;
  so.start = wharf::start_position::earliest();
  // The DLQ topic appears with its first record.
  REQUIRE(ep.wait([](auto& a) { return a.size() >= 2; }));
  auto settled =
      describe_until(*c, "events", "crm", [](auto& i) { return i.group.dead_lettered == 1; });
  REQUIRE(settled->group.dead_lettered == 1);
  std::optional<wharf::message> m;
  std::mutex mu;
  std::condition_variable cv;
  auto sub = c->subscribe(
      "events.dlq",
      [&](wharf::message msg) {
        std::lock_guard lk(mu);
        m = msg;
        cv.notify_all();
      },
      so);
  REQUIRE(sub);
  std::unique_lock lk(mu);
  REQUIRE(cv.wait_for(lk, 10s, [&] { return m.has_value(); }));
  std::map<std::string, std::string> h;
  for (auto& [k, v] : m->headers()) h[std::string(k)] = std::string(v);
  CHECK(h["wharf-dlq-topic"] == "events");
  CHECK(h["wharf-dlq-group"] == "crm");
  CHECK(h["wharf-dlq-offset"] == "0");
  CHECK(h["wharf-dlq-deliveries"] == "2");
  CHECK(m->payload() == "p");
}

TEST_CASE("webhooks: pause holds records back, resume sends them, continuous failure disables") {
  temp_dir dir;
  broker_process broker(dir.path());
  REQUIRE(broker.start());
  auto c = connect_client(broker.address());
  REQUIRE(c->create_topic("t"));
  endpoint ep;
  wharf::webhook_options o;
  o.url = ep.url();
  REQUIRE(c->add_webhook("t", "w", o));
  auto paused = c->pause_webhook("t", "w");
  REQUIRE(paused);
  CHECK(paused->paused);
  for (int i = 0; i < 5; ++i) REQUIRE(c->publish("t", {.payload = "r" + std::to_string(i)}));
  // Dispatch runs right after each commit, before the broker reads our next
  // request: had the paused webhook sent anything, describe would show it.
  auto d = c->describe_webhook("t", "w");
  REQUIRE(d);
  CHECK(d->attempts == 0);
  CHECK(d->in_flight == 0);
  CHECK(d->group.lag == 5);
  REQUIRE(c->pause_webhook("t", "w", false));
  CHECK(ep.wait([](auto& a) { return a.size() >= 5; }));

  // An endpoint that always fails is paused once it has failed for
  // disable_after; describe says why; resume clears it.
  endpoint down([](const tools::http_request&, int) -> tools::http_answer {
    return {503, {}, ""};
  });
  wharf::webhook_options f;
  f.url = down.url();
  f.retry_schedule = {0ms, 30ms};
  f.max_deliveries = 50;
  f.disable_after = 1ms;
  REQUIRE(c->add_webhook("t", "flaky", f));
  REQUIRE(c->publish("t", {.payload = "x"}));
  auto info = describe_until(*c, "t", "flaky", [](auto& i) { return i.paused; });
  REQUIRE(info);
  REQUIRE(info->paused);
  CHECK(info->disabled_reason.find("failed") != std::string::npos);
  CHECK(info->failing_since_us > 0);
  auto resumed = c->pause_webhook("t", "flaky", false);
  REQUIRE(resumed);
  CHECK_FALSE(resumed->paused);
  CHECK(resumed->disabled_reason.empty());
}

TEST_CASE("webhooks: after kill -9 and a restart, delivery resumes and no record is lost") {
  temp_dir dir;
  broker_process broker(dir.path());
  REQUIRE(broker.start());
  auto c = connect_client(broker.address());
  REQUIRE(c->create_topic("t"));
  endpoint ep([](const tools::http_request&, int) -> tools::http_answer {
    std::this_thread::sleep_for(2ms);  // a slow receiver, so the kill lands mid-stream
    return {200, {}, "ok"};
  });
  wharf::webhook_options o;
  o.url = ep.url();
  o.max_in_flight = 4;
  o.start = wharf::start_position::earliest();
  auto added = c->add_webhook("t", "w", o);
  REQUIRE(added);
  ep.set_secret(added->secrets[0]);
  constexpr int kRecords = 600;
  for (int i = 0; i < kRecords; ++i) {
    c->publish_async("t", {.payload = "r" + std::to_string(i)},
                     [](const wharf::result<wharf::publish_ack>&) {});
  }
  REQUIRE(c->flush());
  REQUIRE(ep.wait([](auto& a) { return a.size() >= 100; }));
  c.reset();
  broker.kill9();
  REQUIRE(ep.succeeded().size() < kRecords);
  REQUIRE(broker.start());
  CHECK(ep.wait([&](auto& a) { return succeeded_ids(a).size() == kRecords; }, 60s));
  CHECK(ep.bad_signatures() == 0);
  auto c2 = connect_client(broker.address());
  auto info = c2->describe_webhook("t", "w");
  REQUIRE(info);
  CHECK(info->url == ep.url());
}

TEST_CASE("webhooks: admin errors through the SDK and the CLI") {
  temp_dir dir;
  broker_process broker(dir.path(), {"--webhook-loopback-only"});
  REQUIRE(broker.start());
  auto c = connect_client(broker.address());
  REQUIRE(c->create_topic("t"));
  wharf::webhook_options o;
  o.url = "ftp://example.com/x";
  CHECK(code_of(c->add_webhook("t", "w", o)) == wharf::errc::invalid_argument);
  o.url = "http://example.com/hook";  // not loopback: refused by --webhook-loopback-only
  CHECK(code_of(c->add_webhook("t", "w", o)) == wharf::errc::invalid_argument);
  o.url = "http://127.0.0.1:9/hook";
  o.secrets = {"whsec_c2hvcnQ="};
  CHECK(code_of(c->add_webhook("t", "w", o)) == wharf::errc::invalid_argument);
  o.secrets = {};
  o.headers = {{"webhook-id", "mine"}};
  CHECK(code_of(c->add_webhook("t", "w", o)) == wharf::errc::invalid_argument);
  o.headers = {{"X-Team", "billing"}};
  CHECK(code_of(c->add_webhook("nope", "w", o)) == wharf::errc::unknown_topic);
  CHECK(code_of(c->add_webhook("t", "bad name", o)) == wharf::errc::invalid_name);
  REQUIRE(c->add_webhook("t", "w", o));
  CHECK(code_of(c->add_webhook("t", "w", o)) == wharf::errc::group_exists);
  REQUIRE(c->create_group("t", "plain"));
  CHECK(code_of(c->add_webhook("t", "plain", o)) == wharf::errc::group_exists);
  CHECK(code_of(c->describe_webhook("t", "plain")) == wharf::errc::unknown_group);
  // A webhook's group takes no SDK members.
  CHECK(code_of(c->subscribe("t", "w", [](wharf::message) {})) == wharf::errc::invalid_argument);

  // The CLI: add --update keeps the secret, list/describe/pause/resume/remove.
  auto before = c->describe_webhook("t", "w");
  REQUIRE(before);
  auto up = run_cli(broker.address(),
                    {"--json", "webhooks", "add", "t", "w", "--url", "http://127.0.0.1:10/new",
                     "--update", "--retry-schedule", "0,1s,1m", "--timeout-ms", "500"});
  REQUIRE(up.exit_code == 0);
  CHECK(up.out.find("\"url\":\"http://127.0.0.1:10/new\"") != std::string::npos);
  CHECK(up.out.find(before->secrets[0]) != std::string::npos);
  CHECK(up.out.find("\"retry_schedule_ms\":[0,1000,60000]") != std::string::npos);
  auto list = run_cli(broker.address(), {"webhooks", "list"});
  CHECK(list.exit_code == 0);
  CHECK(list.out.find("http://127.0.0.1:10/new") != std::string::npos);
  CHECK(run_cli(broker.address(), {"webhooks", "pause", "t", "w"})
            .out.find("state:            paused") != std::string::npos);
  CHECK(run_cli(broker.address(), {"webhooks", "resume", "t", "w"}).exit_code == 0);
  auto bad = run_cli(broker.address(), {"webhooks", "add", "t", "x", "--url", "http://h/",
                                        "--retry-schedule", "5 s"});
  CHECK(bad.exit_code == 2);
  CHECK(cli_failed_with(run_cli(broker.address(), {"webhooks", "describe", "t", "nope"}),
                        "unknown_group"));
  CHECK(run_cli(broker.address(), {"webhooks", "remove", "t", "w"}).exit_code == 0);
  CHECK(code_of(c->describe_webhook("t", "w")) == wharf::errc::unknown_group);
  auto groups = c->list_groups("t");
  REQUIRE(groups);
  CHECK(groups->size() == 1);  // only "plain" is left
}

}  // namespace wharf::test
