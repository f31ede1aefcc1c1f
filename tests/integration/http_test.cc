// wharfd's HTTP face end to end: publishing with curl and a raw client (the
// record is consumable, with its key and headers), the 4xx answers, inbound
// Standard Webhooks (published once, 401 for bad signatures and stale
// timestamps), /healthz, and /metrics checked by `promtool check metrics`.
#include <doctest/doctest.h>

#include <atomic>
#include <future>
#include <thread>

#include "http_client.h"
#include "integration_support.h"
#include "webhooks/signature.h"

using namespace wharf::test;
using namespace std::chrono_literals;

namespace {

const std::string kSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

int64_t now_s() {
  return static_cast<int64_t>(wharf::wire::now_us() / 1000000);
}

/// The three Standard Webhooks headers for `body`, signed with kSecret.
std::vector<std::string> signed_headers(const std::string& id, int64_t ts, const std::string& body,
                                        const std::string& secret = kSecret) {
  auto key = wharf::webhooks::decode_secret(secret);
  REQUIRE(key);
  return {"webhook-id: " + id, "webhook-timestamp: " + std::to_string(ts),
          "webhook-signature: " + wharf::webhooks::sign(*key, id, ts, body)};
}

/// Records of `topic` as `wharf consume --json` prints them (one per line).
std::vector<std::string> consume_json(const std::string& broker, const std::string& topic,
                                      size_t count) {
  auto r = run_cli(broker, {"--json", "consume", topic, "--from", "earliest", "--count",
                            std::to_string(count), "--timeout", "10"});
  CHECK_MESSAGE(r.exit_code == 0, r.err);
  return lines(r.out);
}

uint64_t next_offset(wharf::client& c, const std::string& topic) {
  auto info = c.describe_topic(topic);
  REQUIRE_MESSAGE(info, info.err().to_string());
  return info->next_offset;
}

/// The value of the sample line that starts with `series` ("name{labels}").
std::optional<double> metric(const std::string& text, const std::string& series) {
  for (const auto& line : lines(text)) {
    if (line.size() > series.size() && line.compare(0, series.size(), series) == 0 &&
        line[series.size()] == ' ') {
      return std::stod(line.substr(series.size() + 1));
    }
  }
  return std::nullopt;
}

}  // namespace

TEST_CASE("http: curl publishes records that consumers then read, with key and headers") {
  http_broker hb;
  auto c = connect_client(hb.broker.address());
  REQUIRE(c->create_topic("orders"));

  auto curl = [&](std::vector<std::string> args) {
    args.insert(args.begin(), {"-sS", "-w", "\n%{http_code}"});
    return run_program("/usr/bin/curl", args, "", 30s);
  };
  auto r = curl({"-X", "POST", hb.url("/topics/orders/records?key=user-7"), "-H",
                 "Wharf-Header-Source: web", "-H", "Content-Type: text/plain", "--data-binary",
                 "kettle"});
  REQUIRE_MESSAGE(r.exit_code == 0, r.err);
  CHECK(r.out == "{\"offset\":0}\n\n200");
  // A body above curl's Expect: 100-continue threshold, key from the header.
  std::string big(200000, 'x');
  r = run_program("/usr/bin/curl",
                  {"-sS", "-w", "\n%{http_code}", "-H", "Wharf-Key: user-8", "--data-binary", "@-",
                   hb.url("/topics/orders/records")},
                  big, 30s);
  REQUIRE_MESSAGE(r.exit_code == 0, r.err);
  CHECK(r.out == "{\"offset\":1}\n\n200");

  auto got = read_from_earliest(*c, "orders", 2, 20s);
  REQUIRE(got.size() == 2);
  CHECK(got[0] == seen_record{0, "kettle"});
  CHECK(got[1] == seen_record{1, big});
  auto json = consume_json(hb.broker.address(), "orders", 1);
  REQUIRE(json.size() == 1);
  CHECK(json[0].find("\"key\":\"user-7\"") != std::string::npos);
  CHECK(json[0].find("\"headers\":{\"source\":\"web\"}") != std::string::npos);

  // Errors come back as JSON with the stable code.
  r = curl({"-X", "POST", hb.url("/topics/nope/records"), "--data-binary", "x"});
  CHECK(r.out == "{\"error\":\"unknown_topic\",\"message\":\"unknown topic nope\"}\n\n404");
}

TEST_CASE(
    "http: publish answers unknown topics, bad names, routes, methods and sizes with the right "
    "4xx") {
  http_broker hb({"--max-message-bytes", "4KiB", "--http-max-body-bytes", "8KiB"});
  auto c = connect_client(hb.broker.address());
  REQUIRE(c->create_topic("t"));
  struct expect {
    std::string method, target, body;
    int status;
    std::string code;
  };
  std::vector<expect> cases = {
      {"POST", "/topics/missing/records", "x", 404, "unknown_topic"},
      {"POST", "/topics/bad%20name/records", "x", 400, "invalid_name"},
      {"POST", "/topics/bad%zzname/records", "x", 400, "invalid_name"},
      {"POST", "/topics//records", "x", 400, "invalid_name"},
      {"POST", "/topics/" + std::string(201, 'a') + "/records", "x", 400, "invalid_name"},
      {"POST", "/nowhere", "x", 404, "invalid_argument"},
      {"POST", "/topics/t", "x", 404, "invalid_argument"},
      {"GET", "/topics/t/records", "", 405, "invalid_argument"},
      {"POST", "/healthz", "", 405, "invalid_argument"},
      {"POST", "/topics/t/records", std::string(5000, 'x'), 413,
       "too_large"},  // over max_message_bytes
      {"POST", "/topics/t/records", std::string(9000, 'x'), 413,
       "too_large"},  // over http_max_body_bytes
      {"POST", "/ingest/none", "x", 404, "invalid_argument"},
  };
  for (const auto& e : cases) {
    CAPTURE(e.method);
    CAPTURE(e.target);
    auto r = http_request(hb.port(), e.method, e.target, e.body);
    REQUIRE(r);
    CHECK(r->status == e.status);
    CHECK(r->headers["content-type"] == "application/json");
    CHECK(r->body.find("{\"error\":\"" + e.code + "\",\"message\":\"") == 0);
    if (e.status == 405) CHECK(!r->headers["allow"].empty());
  }
  CHECK(next_offset(*c, "t") == 0);
  CHECK_FALSE(c->describe_topic("missing"));
  // Still serving, and a record just under the limit goes in.
  auto ok = http_request(hb.port(), "POST", "/topics/t/records", std::string(4000, 'y'));
  REQUIRE(ok);
  CHECK(ok->status == 200);
  CHECK(ok->body == "{\"offset\":0}\n");
}

TEST_CASE("http: publish to an unknown topic creates it when auto_create_topics is on") {
  http_broker hb({"--auto-create-topics"});
  auto r = http_request(hb.port(), "POST", "/topics/fresh/records", "first");
  REQUIRE(r);
  CHECK(r->status == 200);
  CHECK(r->body == "{\"offset\":0}\n");
  auto c = connect_client(hb.broker.address());
  CHECK(next_offset(*c, "fresh") == 1);
}

TEST_CASE("http: ingest publishes a correctly signed request once even when sent twice") {
  http_broker hb({"--ingest", "crm:crm-events:" + kSecret});
  std::string body = R"({"event":"opportunity.won","id":42})";
  int64_t ts = now_s();

  // With curl, as a sender would.
  std::vector<std::string> args = {"-sS", "-w", "\n%{http_code}", "-H",
                                   "Content-Type: application/json"};
  for (const auto& h : signed_headers("msg_1", ts, body)) args.insert(args.end(), {"-H", h});
  args.insert(args.end(), {"--data-binary", body,
                           "http://" + hb.broker.http_address() + "/ingest/crm?key=acct-9"});
  auto first = run_program("/usr/bin/curl", args, "", 30s);
  REQUIRE_MESSAGE(first.exit_code == 0, first.err);
  CHECK(first.out == "{\"offset\":0}\n\n200");
  auto again = run_program("/usr/bin/curl", args, "", 30s);
  REQUIRE_MESSAGE(again.exit_code == 0, again.err);
  CHECK(again.out == "{\"offset\":0,\"duplicate\":true}\n\n200");

  // The same message on two connections at once: one record, both answered with it.
  std::string body2 = "second";
  auto h2 = signed_headers("msg_2", ts, body2);
  std::string req = "POST /ingest/crm HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\n";
  for (const auto& h : h2) req += h + "\r\n";
  req += "\r\n" + body2;
  http_client a(hb.port()), b(hb.port());
  REQUIRE(a.send(req));
  REQUIRE(b.send(req));
  auto ra = a.read_response(), rb = b.read_response();
  REQUIRE(ra);
  REQUIRE(rb);
  CHECK(ra->status == 200);
  CHECK(rb->status == 200);
  CHECK(ra->body.find("\"offset\":1") != std::string::npos);
  CHECK(rb->body.find("\"offset\":1") != std::string::npos);
  CHECK((ra->body.find("duplicate") == std::string::npos) !=
        (rb->body.find("duplicate") == std::string::npos));

  auto c = connect_client(hb.broker.address());
  CHECK(next_offset(*c, "crm-events") == 2);
  auto json = consume_json(hb.broker.address(), "crm-events", 1);
  REQUIRE(json.size() == 1);
  CHECK(json[0].find("\"key\":\"acct-9\"") != std::string::npos);
  CHECK(json[0].find("\"content-type\":\"application/json\"") != std::string::npos);
  CHECK(json[0].find("\"webhook-id\":\"msg_1\"") != std::string::npos);
  CHECK(json[0].find("\"wharf-ingest\":\"crm\"") != std::string::npos);
  CHECK(json[0].find("\"payload\":\"{\\\"event\\\":\\\"opportunity.won\\\",\\\"id\\\":42}\"") !=
        std::string::npos);
}

TEST_CASE(
    "http: ingest answers a wrong signature, a stale timestamp or missing headers with 401 and "
    "publishes nothing") {
  http_broker hb({"--ingest", "crm:crm-events:" + kSecret, "--ingest-tolerance-s", "60"});
  std::string body = "payload";
  int64_t now = now_s();
  auto other = wharf::webhooks::generate_secret();
  struct attempt {
    std::string what;
    std::vector<std::string> headers;
    std::string body;
  };
  std::vector<attempt> attempts = {
      {"other secret", signed_headers("m1", now, body, other), body},
      {"body changed", signed_headers("m2", now, body), body + "!"},
      {"stale", signed_headers("m3", now - 120, body), body},
      {"future", signed_headers("m4", now + 120, body), body},
      {"no headers", {}, body},
      {"bad timestamp",
       {"webhook-id: m5", "webhook-timestamp: soon", "webhook-signature: v1,AAAA"},
       body},
  };
  for (const auto& a : attempts) {
    CAPTURE(a.what);
    auto r = http_request(hb.port(), "POST", "/ingest/crm", a.body, a.headers);
    REQUIRE(r);
    CHECK(r->status == 401);
    CHECK(r->body.find("{\"error\":\"unauthorized\"") == 0);
  }
  auto c = connect_client(hb.broker.address());
  CHECK_FALSE(c->describe_topic("crm-events"));  // created on the first good message only
  // A good one still goes through afterwards.
  auto ok = http_request(hb.port(), "POST", "/ingest/crm", body, signed_headers("m6", now, body));
  REQUIRE(ok);
  CHECK(ok->status == 200);
  CHECK(next_offset(*c, "crm-events") == 1);
}

TEST_CASE("http: /healthz answers and /metrics passes promtool and counts what happened") {
  http_broker hb({"--ingest", "crm:crm-events:" + kSecret});
  auto health = http_request(hb.port(), "GET", "/healthz");
  REQUIRE(health);
  CHECK(health->status == 200);
  CHECK(health->body == "{\"status\":\"ok\"}\n");

  auto c = connect_client(hb.broker.address());
  REQUIRE(c->create_topic("orders"));
  for (int i = 0; i < 3; ++i) {
    auto r = http_request(hb.port(), "POST", "/topics/orders/records", "o" + std::to_string(i));
    REQUIRE(r);
    REQUIRE(r->status == 200);
  }
  REQUIRE(c->publish("orders", {.payload = "sdk"}));
  // A group that takes one record and does not ack it: lag 4, pending 1.
  std::promise<void> got_one;
  std::atomic<int> seen{0};
  wharf::subscribe_options so;
  so.start = wharf::start_position::earliest();
  so.max_in_flight = 1;
  so.auto_ack = false;
  auto sub = c->subscribe(
      "orders", "billing",
      [&](wharf::message) {
        if (seen++ == 0) got_one.set_value();
      },
      so);
  REQUIRE(sub);
  REQUIRE(got_one.get_future().wait_for(10s) == std::future_status::ready);
  auto ingest =
      http_request(hb.port(), "POST", "/ingest/crm", "x", signed_headers("m1", now_s(), "x"));
  REQUIRE(ingest);
  REQUIRE(ingest->status == 200);
  REQUIRE(http_request(hb.port(), "POST", "/ingest/crm", "x", {"webhook-id: m2"}));

  // A webhook, so its families are in the text too (port 1: refused).
  wharf::webhook_options wo;
  wo.url = "http://127.0.0.1:1/refused";
  wo.start = wharf::start_position::earliest();
  wo.retry_schedule = {0ms};
  REQUIRE(c->add_webhook("orders", "hook", wo));

  auto m = http_request(hb.port(), "GET", "/metrics");
  REQUIRE(m);
  CHECK(m->status == 200);
  CHECK(m->body.find("wharf_webhook_attempts_total{topic=\"orders\",webhook=\"hook\",outcome=\"connect_error\"}") !=
        std::string::npos);
  CHECK(m->body.find("wharf_webhook_paused{topic=\"orders\",webhook=\"hook\"} 0") != std::string::npos);
  CHECK(m->headers["content-type"].find("text/plain; version=0.0.4") == 0);
  const std::string& text = m->body;
  auto promtool = run_program("/usr/bin/promtool", {"check", "metrics"}, text, 60s);
  CHECK_MESSAGE(promtool.exit_code == 0, promtool.out << promtool.err << "\n" << text);
  CHECK(promtool.out.empty());
  CHECK(promtool.err.empty());

  CHECK(metric(text, "wharf_publish_records_total{topic=\"orders\"}") == 4);
  CHECK(metric(text, "wharf_publish_records_total{topic=\"crm-events\"}") == 1);
  CHECK(metric(text, "wharf_publish_bytes_total{topic=\"orders\"}") > 0);
  CHECK(metric(text, "wharf_deliver_records_total{topic=\"orders\"}") >= 1);
  CHECK(metric(text, "wharf_group_lag{topic=\"orders\",group=\"billing\"}") == 4);
  CHECK(metric(text, "wharf_group_pending{topic=\"orders\",group=\"billing\"}") == 1);
  CHECK(metric(text, "wharf_group_redeliveries_total{topic=\"orders\",group=\"billing\"}") == 0);
  CHECK(metric(text, "wharf_group_dead_lettered_total{topic=\"orders\",group=\"billing\"}") == 0);
  CHECK(metric(text, "wharf_connections{protocol=\"wharf\"}") >= 1);
  CHECK(metric(text, "wharf_connections{protocol=\"http\"}") >=
        1);  // this request (earlier ones may linger)
  CHECK(metric(text, "wharf_storage_bytes{kind=\"used\"}") > 0);
  CHECK(metric(text, "wharf_storage_bytes{kind=\"file\"}") > 0);
  CHECK(metric(text, "wharf_commit_latency_seconds_count") >= 5);
  CHECK(metric(text, "wharf_commit_latency_seconds_bucket{le=\"+Inf\"}") ==
        metric(text, "wharf_commit_latency_seconds_count"));
  CHECK(metric(text, "wharf_ingest_requests_total{endpoint=\"crm\",outcome=\"published\"}") == 1);
  CHECK(metric(text, "wharf_ingest_requests_total{endpoint=\"crm\",outcome=\"unauthorized\"}") ==
        1);
  CHECK(metric(text, "wharf_http_responses_total{code=\"200\"}") >= 5);
  CHECK(metric(text, "wharf_http_responses_total{code=\"401\"}") == 1);
  (*sub)->close();
}

TEST_CASE(
    "http: HTTP is off unless http_listen is set, and SIGTERM with open HTTP connections exits 0") {
  temp_dir dir;
  broker_process plain(dir.file("plain"));
  REQUIRE(plain.start());
  CHECK(plain.log().find("http listening") == std::string::npos);
  CHECK(plain.stop() == 0);

  http_broker hb;
  http_client idle(hb.port());  // keep-alive, between requests
  REQUIRE(idle.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"));
  auto r = idle.read_response();
  REQUIRE(r);
  CHECK(r->status == 200);
  http_client partial(hb.port());  // half a request
  REQUIRE(partial.send("POST /topics/t/records HTTP/1.1\r\nContent-Le"));
  auto started = std::chrono::steady_clock::now();
  CHECK(hb.broker.stop() == 0);
  CHECK(std::chrono::steady_clock::now() - started < 5s);
  CHECK(idle.wait_closed(5s));
  CHECK(partial.wait_closed(5s));
}

TEST_CASE(
    "http: an http_listen address already in use fails the start with exit 1 and one error line") {
  temp_dir dir;
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  REQUIRE(fd >= 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  REQUIRE(::listen(fd, 1) == 0);
  socklen_t len = sizeof a;
  REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0);
  std::string taken = "127.0.0.1:" + std::to_string(ntohs(a.sin_port));
  auto r = run_tool(
      "wharfd", {"--data-dir", dir.file("data"), "--listen", "127.0.0.1:0", "--http-listen", taken},
      "", 30s);
  ::close(fd);
  CHECK(r.exit_code == 1);
  CHECK(r.err.find("ERROR cannot listen for HTTP on " + taken + ": address already in use") !=
        std::string::npos);
}
