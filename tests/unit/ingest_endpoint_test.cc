// ingest_endpoint: webhook-ids are published once within their window
// (max(timestamp, publish time) + tolerance), duplicates arriving while the
// first is in flight learn its outcome, a failed publish is forgotten so the
// sender's retry can land, and memory stays bounded.
#include <doctest/doctest.h>

#include "http/ingest_endpoint.h"

using wharf::http::ingest_endpoint;
using state = ingest_endpoint::id_state;

namespace {

ingest_endpoint make(uint32_t tolerance_s = 300) {
  return ingest_endpoint({"crm", "crm-events", "key"}, tolerance_s);
}

ingest_endpoint::outcome ok(uint64_t offset) {
  ingest_endpoint::outcome o;
  o.ok = true;
  o.offset = offset;
  return o;
}

}  // namespace

TEST_CASE(
    "ingest_endpoint: an id is published once, then answered as a duplicate until its window "
    "ends") {
  auto ep = make(300);
  CHECK(ep.check("m1", 1000).state == state::fresh);
  ep.begin("m1", 1000);
  CHECK(ep.check("m1", 1000).state == state::in_flight);
  ep.finish("m1", ok(7), 1001);
  auto seen = ep.check("m1", 1200);
  CHECK(seen.state == state::published);
  CHECK(seen.offset == 7);
  CHECK(ep.check("m1", 1301).state == state::published);  // max(1000, 1001) + 300
  CHECK(ep.check("m1", 1302).state == state::fresh);
  CHECK(ep.remembered() == 0);
}

TEST_CASE(
    "ingest_endpoint: a timestamp ahead of the clock extends the window to cover its replays") {
  auto ep = make(300);
  ep.begin("m1", 1250);  // signed 250 s in the future, still within the tolerance at 1000
  ep.finish("m1", ok(1), 1000);
  CHECK(ep.check("m1", 1550).state == state::published);  // a replay is still timely until 1550
  CHECK(ep.check("m1", 1551).state == state::fresh);
}

TEST_CASE(
    "ingest_endpoint: duplicates that arrive in flight learn the outcome; failures are forgotten") {
  auto ep = make();
  ep.begin("m1", 1000);
  std::vector<ingest_endpoint::outcome> heard;
  ep.wait("m1", [&](const ingest_endpoint::outcome& o) { heard.push_back(o); });
  ep.wait("m1", [&](const ingest_endpoint::outcome& o) { heard.push_back(o); });
  ingest_endpoint::outcome failed;
  failed.status = 503;
  failed.error_body = "{\"error\":\"storage_full\"}";
  ep.finish("m1", failed, 1000);
  REQUIRE(heard.size() == 2);
  CHECK_FALSE(heard[0].ok);
  CHECK(heard[1].status == 503);
  CHECK(ep.check("m1", 1000).state == state::fresh);  // the retry may publish

  ep.begin("m1", 1000);
  heard.clear();
  ep.wait("m1", [&](const ingest_endpoint::outcome& o) { heard.push_back(o); });
  ep.finish("m1", ok(3), 1000);
  REQUIRE(heard.size() == 1);
  CHECK(heard[0].ok);
  CHECK(heard[0].offset == 3);
  ep.wait("m1", [&](const ingest_endpoint::outcome& o) {
    heard.push_back(o);
  });  // not in flight: ignored
  CHECK(heard.size() == 1);
}

TEST_CASE("ingest_endpoint: beyond kMaxRemembered ids the soonest to expire are forgotten") {
  auto ep = make(300);
  const size_t n = ingest_endpoint::kMaxRemembered + 10;
  for (size_t i = 0; i < n; ++i) {
    std::string id = std::string("m").append(
        std::to_string(i));  // ("m" + ... trips a GCC 12 -Wrestrict false positive)
    ep.begin(id, 1000 + static_cast<int64_t>(i % 100));
    ep.finish(id, ok(i), 1000);
  }
  CHECK(ep.remembered() == ingest_endpoint::kMaxRemembered);
  CHECK(ep.check("m0", 1000).state == state::fresh);       // expired first (timestamp 1000)
  CHECK(ep.check("m99", 1000).state == state::published);  // the latest timestamp of the cycle
  CHECK(ep.check(std::string("m").append(std::to_string(n - 1)), 1000).state == state::published);
}
