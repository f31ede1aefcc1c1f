// Acceptance 6: a client created before a broker restart keeps working after
// it: publishes succeed once it has reconnected, publishes while the broker
// is down fail with unavailable/disconnected (or succeed after reconnecting),
// and an ephemeral subscription resumes without gaps or duplicates.
#include <doctest/doctest.h>

#include <signal.h>

#include "integration_support.h"

using namespace wharf::test;
using namespace std::chrono_literals;
using wharf::errc;

namespace {

bool lost_or_unreachable(errc e) {
  return e == errc::unavailable || e == errc::disconnected;
}

}  // namespace

TEST_CASE("SDK reconnects after a broker restart and the subscription resumes exactly") {
  temp_dir dir;
  broker_process broker(dir.file("data"));
  REQUIRE(broker.start());
  const auto addr = broker.address();
  auto c = connect_client(addr, [](wharf::client_options& o) {
    o.request_timeout = 2s;
    o.reconnect_backoff_min = 20ms;
    o.reconnect_backoff_max = 200ms;
  });
  REQUIRE(c->create_topic("feed").ok());

  std::map<uint64_t, std::string> acked;  // what the subscriber must see
  auto publish_batch = [&](const std::string& prefix, int n) {
    for (int i = 0; i < n; ++i) {
      std::string payload = prefix + "-" + std::to_string(i);
      auto r = c->publish("feed", {.payload = payload});
      if (!r) {
        FAIL_CHECK("publish " << payload << ": " << r.err().to_string());
        return;
      }
      CHECK_MESSAGE(acked.emplace(r->offset, payload).second,
                    "offset " << r->offset << " acked twice");
    }
  };

  collector seen;
  wharf::subscribe_options o;
  o.start = wharf::start_position::earliest();
  o.max_in_flight = 64;  // several windows per phase
  auto sub = c->subscribe("feed", seen.handler(), o);
  REQUIRE(sub.ok());
  publish_batch("before", 150);
  REQUIRE(seen.wait_for(150, 20s));

  // ---- restart 1: SIGTERM ----
  REQUIRE(broker.stop(SIGTERM) == 0);
  // While the broker is down a synchronous publish cannot succeed.
  auto down = c->publish("feed", {.payload = "while-down"});
  REQUIRE_FALSE(down.ok());
  CHECK_MESSAGE(lost_or_unreachable(down.err().code), down.err().to_string());
  CHECK_FALSE(c->connected());
  auto describe_down = c->describe_topic("feed");
  REQUIRE_FALSE(describe_down.ok());
  CHECK_MESSAGE(lost_or_unreachable(describe_down.err().code), describe_down.err().to_string());
  // Queued while down, the broker comes back: either outcome is allowed.
  auto pending = c->publish_future("feed", {.payload = "queued-while-down"});
  REQUIRE(broker.start());
  REQUIRE(pending.wait_for(15s) == std::future_status::ready);
  auto queued = pending.get();
  if (queued) {
    acked.emplace(queued->offset, "queued-while-down");
  } else {
    CHECK_MESSAGE(lost_or_unreachable(queued.err().code), queued.err().to_string());
  }
  publish_batch("after-term", 100);
  CHECK(c->connected());

  // ---- restart 2: SIGKILL, while the subscriber is catching up ----
  publish_batch("before-kill", 100);
  broker.kill9();
  REQUIRE(broker.start());
  publish_batch("after-kill", 100);

  // A sentinel marks the end: the subscriber must have seen exactly the
  // acked records before it, each once, in offset order.
  publish_batch("sentinel", 1);
  REQUIRE_MESSAGE(seen.wait_for_payload("sentinel-0", 30s),
                  "subscription stalled at " << seen.size());
  auto got = seen.snapshot();
  std::vector<seen_record> expected;
  for (auto& [offset, payload] : acked) expected.push_back({offset, payload});
  CHECK(got.size() == expected.size());
  for (size_t i = 0; i < std::min(got.size(), expected.size()); ++i) {
    if (!(got[i] == expected[i])) {
      FAIL_CHECK("record " << i << ": got " << got[i] << ", expected " << expected[i]);
      break;
    }
  }
  // Offsets are dense: nothing acked is missing between the restarts.
  CHECK(acked.rbegin()->first == acked.size() - 1);
  (*sub)->close();
  c.reset();
  CHECK(broker.stop() == 0);
}

TEST_CASE("SDK without reconnect: a request while the broker is down fails fast and cleanly") {
  temp_dir dir;
  broker_process broker(dir.file("data"));
  REQUIRE(broker.start());
  const auto addr = broker.address();
  auto c = connect_client(addr, [](wharf::client_options& o) {
    o.reconnect = false;
    o.request_timeout = 2s;
  });
  REQUIRE(c->create_topic("t").ok());
  REQUIRE(c->publish("t", {.payload = "x"}).ok());
  REQUIRE(broker.stop() == 0);
  auto r = c->publish("t", {.payload = "y"});
  REQUIRE_FALSE(r.ok());
  CHECK_MESSAGE(lost_or_unreachable(r.err().code), r.err().to_string());
  auto f = c->flush(5s);
  CHECK(f.ok());  // nothing is left pending

  // connect() to a broker that is not there: unavailable within connect_timeout.
  wharf::client_options o;
  o.broker = addr;
  o.connect_timeout = 1s;
  auto start = std::chrono::steady_clock::now();
  auto none = wharf::client::connect(o);
  REQUIRE_FALSE(none.ok());
  CHECK(none.err().code == errc::unavailable);
  CHECK(std::chrono::steady_clock::now() - start < 10s);
}
