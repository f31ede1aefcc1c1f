// The crash-loop checker (history.h) on hand-made histories: each anomaly it
// is meant to catch is caught, and what the issue allows (redeliveries,
// trimming, failed publishes stored or not) is not reported. Without these,
// a checker that never fails would pass the crash loop.
#include <doctest/doctest.h>

#include "history.h"
#include "payload.h"

using namespace wharf::fault;

namespace {

constexpr uint32_t kPid = 4242;
constexpr size_t kMain = 0, kTrim = 1;
const std::vector<char> kTags{'m', 't'};

/// Two topics (main without retention, trim with), one group on main.
struct fixture {
  history h{kPid, 2, kTags, 1};
  std::vector<topic_read> reads{2};
  std::vector<group_final> groups;

  fixture() {
    for (auto& r : reads) r.complete = true;
  }

  /// Producer `p` publishes `seq` to `topic`; the broker acks `offset`.
  void publish_acked(uint32_t p, uint64_t seq, size_t topic, uint64_t offset) {
    h.sent(p, seq, topic);
    h.completed(p, seq, topic, wharf::publish_ack{offset, 1});
  }
  void publish_failed(uint32_t p, uint64_t seq, size_t topic) {
    h.sent(p, seq, topic);
    h.completed(p, seq, topic, wharf::error(wharf::errc::disconnected, "lost"));
  }
  /// What the read-back found: `keys[i]` at offset first + i (-1: missing).
  void stored(size_t topic, uint64_t first, uint64_t next, std::vector<int64_t> keys) {
    auto& r = reads[topic];
    r.first = r.read_first = first;
    r.next = next;
    r.key_at = std::move(keys);
  }
  /// Delivers `offset` (holding producer p's seq) to the group; acks it.
  void consume(uint64_t offset, uint32_t p, uint64_t seq, bool ack = true) {
    h.delivered(0, offset, make_payload(kPid, 'm', p, seq));
    if (ack) {
      h.acked(0, offset);
    } else {
      h.nacked(0, offset);
    }
  }
  void group_at(uint64_t committed) {
    group_final g;
    g.name = "ga";
    g.topic = kMain;
    g.info.committed_offset = committed;
    g.drained = true;
    groups = {g};
  }
  report run() { return check(h, {"main", "trim"}, {false, true}, reads, groups); }
};

int64_t key(uint32_t p, uint64_t seq) {
  return static_cast<int64_t>(record_key(p, seq));
}

/// A clean run: three acked records on main, consumed, one redelivered.
void clean_main(fixture& f) {
  f.publish_acked(0, 0, kMain, 0);
  f.publish_acked(1, 0, kMain, 1);
  f.publish_acked(0, 1, kMain, 2);
  f.stored(kMain, 0, 3, {key(0, 0), key(1, 0), key(0, 1)});
  f.stored(kTrim, 0, 0, {});
  f.consume(0, 0, 0);
  f.consume(1, 1, 0, false);  // nacked, then redelivered and acked
  f.consume(1, 1, 0);
  f.consume(2, 0, 1);
  f.group_at(3);
}

}  // namespace

TEST_CASE("payloads: parse what make_payload made, reject any other bytes") {
  auto p = make_payload(kPid, 'm', 3, 77);
  auto id = parse_payload(p, kPid);
  REQUIRE(id);
  CHECK(id->tag == 'm');
  CHECK(id->producer == 3);
  CHECK(id->seq == 77);
  CHECK_FALSE(parse_payload(p, kPid + 1));  // another run's
  std::string flipped = p;
  flipped.back() = flipped.back() == 'a' ? 'b' : 'a';
  CHECK_FALSE(parse_payload(flipped, kPid));
  CHECK_FALSE(parse_payload(p.substr(0, p.size() - 1), kPid));
  CHECK_FALSE(parse_payload(p + "x", kPid));
}

TEST_CASE("checker: a clean history passes and counts redeliveries") {
  fixture f;
  clean_main(f);
  auto rep = f.run();
  CHECK(rep.failures().empty());
  CHECK(rep.publish.acked == 3);
  CHECK(rep.topics[kMain].lost == 0);
  REQUIRE(rep.groups.size() == 1);
  CHECK(rep.groups[0].redelivered == 1);
  CHECK(rep.groups[0].redeliveries == 1);
  CHECK(rep.groups[0].nacked == 1);
  CHECK(rep.groups[0].skips == 0);
}

TEST_CASE("checker: an acked record missing from the log is lost") {
  fixture f;
  clean_main(f);
  f.publish_acked(1, 1, kMain, 3);  // acked at 3, but the log ends at 3
  auto rep = f.run();
  CHECK(rep.topics[kMain].lost == 1);
  CHECK(rep.failed());
}

TEST_CASE("checker: another payload at an acked offset is corrupt") {
  fixture f;
  clean_main(f);
  f.publish_failed(1, 1, kMain);
  f.stored(kMain, 0, 3, {key(0, 0), key(1, 1), key(0, 1)});  // offset 1 acked for (1, 0)
  f.group_at(0);
  auto rep = f.run();
  CHECK(rep.topics[kMain].corrupt == 1);
  CHECK(rep.topics[kMain].unknown_stored == 1);
  CHECK(rep.failed());
}

TEST_CASE("checker: one publish stored at two offsets is a duplicate") {
  fixture f;
  clean_main(f);
  f.stored(kMain, 0, 4, {key(0, 0), key(1, 0), key(0, 1), key(1, 0)});
  f.consume(3, 1, 0);
  f.group_at(4);
  auto rep = f.run();
  CHECK(rep.topics[kMain].duplicated == 1);
  CHECK(rep.topics[kMain].lost == 0);
  CHECK(rep.failed());
}

TEST_CASE(
    "checker: a hole in the offsets is a gap, also at the start of a topic without retention") {
  fixture f;
  clean_main(f);
  f.publish_failed(1, 1, kMain);
  f.stored(kMain, 0, 4, {key(0, 0), key(1, 0), key(0, 1), -1});
  CHECK(f.run().topics[kMain].gaps == 1);

  fixture g;
  clean_main(g);
  g.stored(kMain, 1, 3, {key(1, 0), key(0, 1)});  // offset 0 gone, without retention
  g.group_at(0);
  auto rep = g.run();
  CHECK(rep.topics[kMain].gaps == 1);
  CHECK(rep.topics[kMain].lost == 1);
  CHECK(rep.failed());
}

TEST_CASE("checker: retention removes a prefix, not a hole, and keeps the newest record") {
  fixture f;
  clean_main(f);
  for (uint64_t s = 0; s < 5; ++s) f.publish_acked(0, 10 + s, kTrim, s);
  f.stored(kTrim, 3, 5, {key(0, 13), key(0, 14)});
  auto rep = f.run();
  CHECK(rep.failures().empty());
  CHECK(rep.topics[kTrim].trimmed == 3);
  CHECK(rep.topics[kTrim].lost == 0);

  f.stored(kTrim, 2, 5, {key(0, 12), -1, key(0, 14)});
  rep = f.run();
  CHECK(rep.topics[kTrim].gaps == 1);
  CHECK(rep.topics[kTrim].lost == 1);

  f.stored(kTrim, 5, 5, {});
  rep = f.run();
  CHECK(rep.topics[kTrim].newest_trimmed);
  CHECK(rep.failed());
}

TEST_CASE("checker: a committed offset past a record no member acked is a skip") {
  fixture f;
  clean_main(f);
  f.publish_acked(1, 1, kMain, 3);
  f.stored(kMain, 0, 4, {key(0, 0), key(1, 0), key(0, 1), key(1, 1)});
  f.consume(3, 1, 1, false);  // delivered and nacked, never acked
  f.group_at(4);
  auto rep = f.run();
  CHECK(rep.groups[0].skips == 1);
  CHECK(rep.failed());
}

TEST_CASE("checker: a delivery unlike the log is a wrong payload") {
  fixture f;
  clean_main(f);
  f.consume(2, 1, 0);  // offset 2 holds (0, 1)
  auto rep = f.run();
  CHECK(rep.groups[0].wrong_payload >= 1);
  CHECK(rep.failed());
}

TEST_CASE(
    "checker: a keyed record delivered before its key's previous record was acked breaks order") {
  // Two publishes of producer 0 with the same key, at offsets 0 and 1.
  uint64_t second = 2;
  while (key_index(0, second) != key_index(0, 0)) second += 2;
  REQUIRE(key_index(0, 0));
  auto two_keyed = [&](fixture& f) {
    f.publish_acked(0, 0, kMain, 0);
    f.publish_acked(0, second, kMain, 1);
    f.stored(kMain, 0, 2, {key(0, 0), key(0, second)});
    f.stored(kTrim, 0, 0, {});
    f.group_at(2);
  };

  fixture in_order;
  two_keyed(in_order);
  in_order.consume(0, 0, 0, false);  // nacked: the key stays closed
  in_order.consume(0, 0, 0);
  in_order.consume(1, 0, second);
  auto rep = in_order.run();
  CHECK(rep.groups[0].order_violations == 0);
  CHECK(rep.failures().empty());

  fixture early;
  two_keyed(early);
  early.consume(0, 0, 0, false);
  early.consume(1, 0, second);  // while offset 0 is unfinished
  early.consume(0, 0, 0);
  rep = early.run();
  CHECK(rep.groups[0].order_violations == 1);
  CHECK(rep.failed());
}
