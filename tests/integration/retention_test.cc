// Acceptance 5: retention by size and by age removes the oldest records in
// the background; first_offset moves up, offsets never restart, consumers
// from earliest start at the new first offset, and it all survives a restart.
//
// Retention has no event a client can wait on, so these tests poll describe
// a bounded number of times with a short pause between polls.
#include <doctest/doctest.h>

#include <functional>
#include <thread>

#include "integration_support.h"

using namespace wharf::test;
using namespace std::chrono_literals;

namespace {

/// Polls describe until `done` holds (at most `attempts` times, 25 ms apart).
std::optional<wharf::topic_info> poll_describe(
    wharf::client& c, const std::string& topic,
    const std::function<bool(const wharf::topic_info&)>& done, int attempts = 400) {
  for (int i = 0; i < attempts; ++i) {
    auto info = c.describe_topic(topic);
    if (!info) {
      FAIL_CHECK("describe " << topic << ": " << info.err().to_string());
      return std::nullopt;
    }
    if (done(*info)) return *info;
    std::this_thread::sleep_for(25ms);  // no event announces a trim
  }
  return std::nullopt;
}

std::string sized_payload(size_t i) {
  return "rec-" + std::to_string(i) + "-" + std::string(1000, static_cast<char>('a' + i % 26));
}

}  // namespace

TEST_CASE("retention_bytes: first_offset moves up until the topic fits, offsets go on") {
  temp_dir dir;
  broker_process broker(dir.file("data"), {"--retention-check-ms", "50"});
  REQUIRE(broker.start());
  const auto addr = broker.address();
  // Small batches, so that size retention has many batches to remove.
  auto c = connect_client(addr, [](wharf::client_options& o) { o.max_batch_bytes = 4000; });

  constexpr uint64_t kLimit = 64 * 1024;
  constexpr size_t kRecords = 400;  // ~400 KB, far above the limit
  auto created =
      run_cli(addr, {"topics", "create", "by-size", "--retention-bytes", std::to_string(kLimit)});
  REQUIRE(created.exit_code == 0);
  REQUIRE(c->create_topic("forever").ok());
  std::vector<std::string> sized;
  for (size_t i = 0; i < kRecords; ++i) {
    sized.push_back(sized_payload(i));
    c->publish_async("by-size", {.payload = sized.back()}, [](const auto&) {});
    c->publish_async("forever", {.payload = sized.back()}, [](const auto&) {});
  }
  REQUIRE(c->flush(30s).ok());

  auto info = poll_describe(*c, "by-size", [&](const wharf::topic_info& t) {
    return t.first_offset > 0 && t.bytes <= kLimit;
  });
  REQUIRE_MESSAGE(info.has_value(), "by-size was never trimmed below " << kLimit << " bytes");
  CHECK(info->next_offset == kRecords);  // offsets do not restart
  CHECK(info->records == info->next_offset - info->first_offset);
  CHECK(info->records > 0);  // the newest batch always stays
  CHECK(info->records < kRecords);
  CHECK(info->retention_bytes == kLimit);
  const uint64_t first = info->first_offset;

  // Consumers from earliest (or from an offset already removed) start at first_offset.
  auto got = read_from_earliest(*c, "by-size", info->records);
  REQUIRE(got.size() == info->records);
  CHECK(got.front().offset == first);
  size_t bad = 0;
  for (size_t i = 0; i < got.size(); ++i)
    bad += got[i].offset != first + i || got[i].payload != sized[first + i];
  CHECK(bad == 0);
  collector from_zero;
  wharf::subscribe_options o;
  o.start = wharf::start_position::at_offset(0);
  auto sub = c->subscribe("by-size", from_zero.handler(), o);
  REQUIRE(sub.ok());
  REQUIRE(from_zero.wait_for(1, 10s));
  CHECK(from_zero.snapshot().front().offset == first);
  (*sub)->close();
  auto cli = run_cli(
      addr, {"--timeout", "20", "consume", "by-size", "--from", "earliest", "--count", "1"});
  CHECK(cli.exit_code == 0);
  CHECK(lines(cli.out) == std::vector<std::string>{sized[first]});
  auto desc = run_cli(addr, {"--json", "topics", "describe", "by-size"});
  CHECK(json_u64(desc.out, "first_offset") == first);
  CHECK(json_u64(desc.out, "next_offset") == kRecords);

  // New records continue the offsets; the trim position survives a restart.
  auto next = c->publish("by-size", {.payload = "new"});
  REQUIRE(next.ok());
  CHECK(next->offset == kRecords);
  c.reset();
  REQUIRE(broker.stop() == 0);
  REQUIRE(broker.start());
  c = connect_client(addr);
  auto after = c->describe_topic("by-size");
  REQUIRE(after.ok());
  CHECK(after->first_offset >= first);
  CHECK(after->next_offset == kRecords + 1);
  auto next2 = c->publish("by-size", {.payload = "newer"});
  REQUIRE(next2.ok());
  CHECK(next2->offset == kRecords + 1);

  // A topic without retention keeps everything.
  auto forever = c->describe_topic("forever");
  REQUIRE(forever.ok());
  CHECK(forever->first_offset == 0);
  CHECK(forever->next_offset == kRecords);
  c.reset();
  CHECK(broker.stop() == 0);
}

TEST_CASE("retention_ms: records older than the limit go, offsets stay") {
  temp_dir dir;
  broker_process broker(dir.file("data"), {"--retention-check-ms", "50"});
  REQUIRE(broker.start());
  const auto addr = broker.address();
  auto c = connect_client(addr);
  REQUIRE(c->create_topic("by-time", {.retention_ms = 300, .retention_bytes = {}}).ok());
  for (size_t i = 0; i < 50; ++i) {
    c->publish_async("by-time", {.payload = "old-" + std::to_string(i)}, [](const auto&) {});
  }
  REQUIRE(c->flush(30s).ok());

  auto info =
      poll_describe(*c, "by-time", [](const wharf::topic_info& t) { return t.records == 0; });
  REQUIRE_MESSAGE(info.has_value(), "by-time still holds records");
  CHECK(info->first_offset == 50);
  CHECK(info->next_offset == 50);
  CHECK(info->retention_ms == 300);

  // A consumer from earliest on the empty topic starts at the new first offset.
  collector got;
  wharf::subscribe_options o;
  o.start = wharf::start_position::earliest();
  auto sub = c->subscribe("by-time", got.handler(), o);
  REQUIRE(sub.ok());
  auto next = c->publish("by-time", {.payload = "fresh"});
  REQUIRE(next.ok());
  CHECK(next->offset == 50);
  REQUIRE(got.wait_for(1, 10s));
  CHECK(got.snapshot().front() == seen_record{50, "fresh"});
  (*sub)->close();
  // And the fresh record ages out too.
  auto later =
      poll_describe(*c, "by-time", [](const wharf::topic_info& t) { return t.records == 0; });
  REQUIRE(later.has_value());
  CHECK(later->first_offset == 51);
  CHECK(later->next_offset == 51);

  // After a restart the empty topic still continues at 51.
  c.reset();
  REQUIRE(broker.stop() == 0);
  REQUIRE(broker.start());
  c = connect_client(addr);
  auto after = c->describe_topic("by-time");
  REQUIRE(after.ok());
  CHECK(after->first_offset == 51);
  CHECK(after->next_offset == 51);
  auto again = c->publish("by-time", {.payload = "after-restart"});
  REQUIRE(again.ok());
  CHECK(again->offset == 51);
  c.reset();
  CHECK(broker.stop() == 0);
}

TEST_CASE("retention_ms: a limit too large to count in microseconds keeps everything") {
  // 2^64 / 1000, rounded up: times 1000 it wraps to 384 us, which once made
  // the broker trim every record older than 384 us.
  constexpr uint64_t kHuge = 18446744073709552ull;
  temp_dir dir;
  broker_process broker(dir.file("data"), {"--retention-check-ms", "20"});
  REQUIRE(broker.start());
  auto c = connect_client(broker.address());
  REQUIRE(c->create_topic("huge", {.retention_ms = kHuge, .retention_bytes = {}}).ok());
  REQUIRE(c->create_topic("probe", {.retention_ms = 1, .retention_bytes = {}}).ok());
  for (size_t i = 0; i < 20; ++i) {
    c->publish_async("huge", {.payload = "kept-" + std::to_string(i)}, [](const auto&) {});
  }
  REQUIRE(c->flush(30s).ok());

  // Two retention passes that each saw "huge" holding its records: the probe
  // topic (1 ms) is emptied by a pass after each of its records is stored.
  for (uint64_t n = 1; n <= 2; ++n) {
    REQUIRE(c->publish("probe", {.payload = "probe"}).ok());
    auto probe = poll_describe(*c, "probe", [n](const wharf::topic_info& t) {
      return t.first_offset == n;
    });
    REQUIRE_MESSAGE(probe.has_value(), "the probe topic was not trimmed (pass " << n << ")");
  }
  // Any trim of "huge" those passes submitted commits before this publish.
  auto last = c->publish("huge", {.payload = "last"});
  REQUIRE(last.ok());
  CHECK(last->offset == 20);
  auto info = c->describe_topic("huge");
  REQUIRE(info.ok());
  CHECK(info->first_offset == 0);
  CHECK(info->records == 21);
  CHECK(info->retention_ms == kHuge);
  c.reset();
  CHECK(broker.stop() == 0);
}
