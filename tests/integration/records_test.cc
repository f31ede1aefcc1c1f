// Records as SPEC.md describes them, end to end: keys, headers and empty
// payloads round-trip; timestamps never decrease; ephemeral subscriptions
// honour their start position; deleting a topic ends its subscriptions.
#include <doctest/doctest.h>

#include <future>

#include "integration_support.h"

using namespace wharf::test;
using namespace std::chrono_literals;

namespace {

/// Collects whole messages (for keys, headers and timestamps).
class message_collector {
 public:
  wharf::message_handler handler() {
    return [this](wharf::message m) {
      std::lock_guard lk(mu_);
      messages_.push_back(std::move(m));
      cv_.notify_all();
    };
  }
  bool wait_for(size_t n, std::chrono::milliseconds timeout) {
    std::unique_lock lk(mu_);
    return cv_.wait_for(lk, timeout, [&] { return messages_.size() >= n; });
  }
  std::vector<wharf::message> snapshot() {
    std::lock_guard lk(mu_);
    return messages_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<wharf::message> messages_;
};

}  // namespace

TEST_CASE("keys, headers, empty and binary payloads round-trip through SDK and CLI") {
  temp_dir dir;
  broker_process broker(dir.file("data"));
  REQUIRE(broker.start());
  const auto addr = broker.address();
  auto c = connect_client(addr);
  REQUIRE(c->create_topic("rich").ok());

  const std::string binary("\x00\x01\xff\n\r\"\\end", 10);
  const wharf::header hs[] = {{"trace-id", "abc123"}, {"empty", ""}, {"bin", binary}};
  REQUIRE(
      c->publish("rich", {.payload = "with key and headers", .key = "user-7", .headers = hs}).ok());
  REQUIRE(c->publish("rich", {.payload = ""}).ok());
  REQUIRE(c->publish("rich", {.payload = binary, .key = ""}).ok());
  auto cli = run_cli(
      addr, {"publish", "rich", "--key", "k-cli", "--header", "h1=v1", "--header", "h2=a=b"},
      "from-cli\n");
  REQUIRE(cli.exit_code == 0);
  CHECK(lines(cli.out) == std::vector<std::string>{"3"});

  message_collector got;
  wharf::subscribe_options o;
  o.start = wharf::start_position::earliest();
  auto sub = c->subscribe("rich", got.handler(), o);
  REQUIRE(sub.ok());
  REQUIRE(got.wait_for(4, 10s));
  auto m = got.snapshot();
  (*sub)->close();
  REQUIRE(m.size() == 4);

  CHECK(m[0].topic() == "rich");
  CHECK(m[0].payload() == "with key and headers");
  REQUIRE(m[0].key().has_value());
  CHECK(*m[0].key() == "user-7");
  CHECK(m[0].header("trace-id") == std::optional<std::string_view>("abc123"));
  CHECK(m[0].header("empty") == std::optional<std::string_view>(""));
  CHECK(m[0].header("bin") == std::optional<std::string_view>(binary));
  CHECK_FALSE(m[0].header("missing").has_value());
  CHECK(m[0].headers().size() == 3);

  CHECK(m[1].payload().empty());
  CHECK_FALSE(m[1].key().has_value());  // absent key stays absent
  CHECK(m[1].headers().empty());

  CHECK(m[2].payload() == binary);
  REQUIRE(m[2].key().has_value());  // an empty key is a key
  CHECK(m[2].key()->empty());

  CHECK(m[3].payload() == "from-cli");
  CHECK(m[3].key() == std::optional<std::string_view>("k-cli"));
  CHECK(m[3].header("h1") == std::optional<std::string_view>("v1"));
  CHECK(m[3].header("h2") == std::optional<std::string_view>("a=b"));

  // Timestamps: broker append time, never decreasing, close to now.
  auto now_us = static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(
                                          std::chrono::system_clock::now().time_since_epoch())
                                          .count());
  for (size_t i = 0; i < m.size(); ++i) {
    CHECK(m[i].offset() == i);
    CHECK(m[i].delivery_count() == 1);
    CHECK(m[i].timestamp_us() <= now_us);
    CHECK(m[i].timestamp_us() + 60'000'000 > now_us);
    if (i > 0) CHECK(m[i].timestamp_us() >= m[i - 1].timestamp_us());
  }

  // CLI --json consume prints every field.
  auto json = run_cli(
      addr, {"--json", "--timeout", "20", "consume", "rich", "--from", "earliest", "--count", "4"});
  REQUIRE(json.exit_code == 0);
  auto out = lines(json.out);
  REQUIRE(out.size() == 4);
  CHECK(out[0].find("\"key\":\"user-7\"") != std::string::npos);
  CHECK(out[0].find("\"trace-id\":\"abc123\"") != std::string::npos);
  CHECK(out[0].find("\"payload\":\"with key and headers\"") != std::string::npos);
  CHECK(json_u64(out[0], "offset") == 0u);
  CHECK(json_u64(out[0], "timestamp_us") == m[0].timestamp_us());
  CHECK(out[1].find("\"key\":null") != std::string::npos);
  CHECK(out[1].find("\"payload\":\"\"") != std::string::npos);
  CHECK(out[3].find("\"h2\":\"a=b\"") != std::string::npos);
}

TEST_CASE("ephemeral subscriptions start at latest, an offset, a time, or earliest") {
  temp_dir dir;
  broker_process broker(dir.file("data"));
  REQUIRE(broker.start());
  const auto addr = broker.address();
  auto c = connect_client(addr);
  REQUIRE(c->create_topic("pos").ok());
  std::vector<uint64_t> stamps;
  for (int i = 0; i < 10; ++i) {
    auto r = c->publish("pos", {.payload = "old-" + std::to_string(i)});
    REQUIRE(r.ok());
    stamps.push_back(r->timestamp_us);
  }

  auto first_seen = [&](wharf::start_position start, size_t n) {
    collector got;
    wharf::subscribe_options o;
    o.start = start;
    auto sub = c->subscribe("pos", got.handler(), o);
    REQUIRE(sub.ok());
    bool enough = got.wait_for(n, 10s);
    (*sub)->close();
    CHECK(enough);
    return got.snapshot();
  };

  // latest: only what is published after subscribing.
  {
    collector got;
    auto sub = c->subscribe("pos", got.handler());  // default start: latest
    REQUIRE(sub.ok());
    auto r = c->publish("pos", {.payload = "new-10"});
    REQUIRE(r.ok());
    stamps.push_back(r->timestamp_us);
    REQUIRE(got.wait_for(1, 10s));
    CHECK(got.snapshot().front() == seen_record{10, "new-10"});
  }
  CHECK(first_seen(wharf::start_position::at_offset(7), 4).front() == seen_record{7, "old-7"});
  CHECK(first_seen(wharf::start_position::earliest(), 11).front() == seen_record{0, "old-0"});
  // A time: the first record appended at or after it.
  uint64_t at_ms = (stamps[5] + 999) / 1000;
  size_t expected_offset = 0;
  while (expected_offset < stamps.size() && stamps[expected_offset] < at_ms * 1000)
    ++expected_offset;
  REQUIRE(expected_offset < stamps.size());
  auto by_time = first_seen(wharf::start_position::at_time_ms(at_ms), 1);
  REQUIRE_FALSE(by_time.empty());
  CHECK(by_time.front().offset == expected_offset);
  // An offset past the end is clamped to the next offset: nothing old arrives.
  {
    collector got;
    wharf::subscribe_options o;
    o.start = wharf::start_position::at_offset(1000);
    auto sub = c->subscribe("pos", got.handler(), o);
    REQUIRE(sub.ok());
    REQUIRE(c->publish("pos", {.payload = "new-11"}).ok());
    REQUIRE(got.wait_for(1, 10s));
    CHECK(got.snapshot().front() == seen_record{11, "new-11"});
  }
  // The CLI accepts the same positions.
  auto cli = run_cli(addr, {"--timeout", "20", "consume", "pos", "--from", "3", "--count", "2"});
  CHECK(cli.exit_code == 0);
  CHECK(lines(cli.out) == std::vector<std::string>{"old-3", "old-4"});
  auto bad = run_cli(addr, {"consume", "pos", "--from", "yesterday", "--count", "1"});
  CHECK(bad.exit_code != 0);
  CHECK(lines(bad.err).size() == 1);
}

TEST_CASE("deleting a topic ends its subscriptions with unknown_topic") {
  temp_dir dir;
  broker_process broker(dir.file("data"));
  REQUIRE(broker.start());
  const auto addr = broker.address();
  auto c = connect_client(addr);
  REQUIRE(c->create_topic("doomed").ok());
  std::promise<wharf::error> ended;
  auto ended_future = ended.get_future();
  collector got;
  wharf::subscribe_options o;
  o.start = wharf::start_position::earliest();
  o.on_end = [&](const wharf::error& e) { ended.set_value(e); };
  auto sub = c->subscribe("doomed", got.handler(), o);
  REQUIRE(sub.ok());
  REQUIRE(c->publish("doomed", {.payload = "last words"}).ok());
  REQUIRE(got.wait_for(1, 10s));

  auto other = connect_client(addr);
  REQUIRE(other->delete_topic("doomed").ok());
  REQUIRE(ended_future.wait_for(10s) == std::future_status::ready);
  CHECK(ended_future.get().code == wharf::errc::unknown_topic);
  // A topic of the same name starts over, and the old subscription stays ended.
  REQUIRE(other->create_topic("doomed").ok());
  auto r = other->publish("doomed", {.payload = "new life"});
  REQUIRE(r.ok());
  CHECK(r->offset == 0);
  auto fresh = read_from_earliest(*other, "doomed", 1);
  CHECK(fresh == std::vector<seen_record>{{0, "new life"}});
  CHECK(got.size() == 1);
  (*sub)->close();
}
