// Acceptance 1: publishing and consuming through the SDK and the CLI, topic
// administration, CLI failure reporting, and that everything survives a
// broker restart on the same data dir.
#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "integration_support.h"

using namespace wharf::test;
using namespace std::chrono_literals;

namespace {

std::string sync_payload(size_t i) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "sync-%05zu", i);
  return buf;
}

std::string async_payload(size_t i) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "async-%06zu", i);
  return buf;
}

/// Checks that `got` holds offsets first..first+expected.size()-1 with
/// exactly the expected payloads, in order; reports only the first mismatch.
void check_records(const std::vector<seen_record>& got, const std::vector<std::string>& expected,
                   uint64_t first = 0) {
  CHECK(got.size() == expected.size());
  size_t n = std::min(got.size(), expected.size());
  for (size_t i = 0; i < n; ++i) {
    if (got[i].offset != first + i || got[i].payload != expected[i]) {
      FAIL_CHECK("record " << i << ": got " << got[i] << ", expected {" << first + i << ", '"
                           << expected[i] << "'}");
      return;
    }
  }
}

}  // namespace

TEST_CASE("publish 10k sync + 100k async via SDK, describe via CLI, read back, survive restart") {
  constexpr size_t kSync = 10000, kAsync = 100000, kTotal = kSync + 1 + kAsync;
  temp_dir dir;
  broker_process broker(dir.file("data"));
  REQUIRE(broker.start());
  const auto addr = broker.address();

  auto created = run_cli(addr, {"topics", "create", "orders"});
  REQUIRE(created.exit_code == 0);

  // expected[offset] = payload
  std::vector<std::string> expected(kSync);
  {
    auto c = connect_client(addr);
    // Synchronous: each call returns once the record is durable (fsync
    // always). Several threads share the client, so the broker's group
    // commit can merge their records; each thread's offsets must increase.
    constexpr size_t kThreads = 32;
    std::vector<std::thread> threads;
    std::vector<std::string> failures(kThreads);
    std::mutex mu;
    for (size_t t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        uint64_t last = 0;
        for (size_t i = t; i < kSync; i += kThreads) {
          auto payload = sync_payload(i);
          auto ack = c->publish("orders", {.payload = payload});
          std::lock_guard lk(mu);
          if (!ack) {
            failures[t] = "sync publish " + payload + ": " + ack.err().to_string();
            return;
          }
          if (ack->offset >= kSync || !expected[ack->offset].empty() ||
              (i != t && ack->offset <= last)) {
            failures[t] = "sync publish " + payload + " got offset " + std::to_string(ack->offset);
            return;
          }
          expected[ack->offset] = payload;
          last = ack->offset;
        }
      });
    }
    for (auto& th : threads) th.join();
    for (auto& f : failures) CHECK_MESSAGE(f.empty(), f);
    REQUIRE(std::count(expected.begin(), expected.end(), std::string()) == 0);
    auto single = c->publish("orders", {.payload = "one-more-sync"});
    REQUIRE(single.ok());
    CHECK(single->offset == kSync);
    expected.push_back("one-more-sync");
    // Asynchronous: one producer, one topic, so offsets follow publish order.
    ack_log acks;
    for (size_t i = 0; i < kAsync; ++i) {
      expected.push_back(async_payload(i));
      c->publish_async("orders", {.payload = expected.back()}, acks.callback(expected.back()));
    }
    auto flushed = c->flush(60s);
    REQUIRE_MESSAGE(flushed.ok(), flushed.err().to_string());
    REQUIRE(acks.done_count() == kAsync);
    CHECK(acks.errors().empty());
    auto acked = acks.acked();
    REQUIRE(acked.size() == kAsync);
    CHECK(acked.begin()->first == kSync + 1);
    CHECK(acked.rbegin()->first == kTotal - 1);
    bool in_order = true;
    for (auto& [offset, payload] : acked) in_order = in_order && payload == expected[offset];
    CHECK(in_order);

    auto info = c->describe_topic("orders");
    REQUIRE(info.ok());
    CHECK(info->first_offset == 0);
    CHECK(info->next_offset == kTotal);
    CHECK(info->records == kTotal);
    CHECK(info->bytes > 0);
  }

  auto describe = run_cli(addr, {"--json", "topics", "describe", "orders"});
  REQUIRE(describe.exit_code == 0);
  CHECK(json_u64(describe.out, "first_offset") == 0u);
  CHECK(json_u64(describe.out, "next_offset") == kTotal);
  CHECK(json_u64(describe.out, "last_offset") == kTotal - 1);
  CHECK(json_u64(describe.out, "records") == kTotal);

  {
    auto c = connect_client(addr);
    check_records(read_from_earliest(*c, "orders", kTotal), expected);
  }

  // Restart on the same data dir: everything is still there and offsets go on.
  REQUIRE(broker.stop() == 0);
  REQUIRE(broker.start());
  auto after = run_cli(addr, {"--json", "topics", "describe", "orders"});
  REQUIRE(after.exit_code == 0);
  CHECK(json_u64(after.out, "first_offset") == 0u);
  CHECK(json_u64(after.out, "next_offset") == kTotal);
  CHECK(json_u64(after.out, "records") == kTotal);

  auto c = connect_client(addr);
  expected.push_back("after-restart");
  auto ack = c->publish("orders", {.payload = expected.back()});
  REQUIRE_MESSAGE(ack.ok(), ack.err().to_string());
  CHECK(ack->offset == kTotal);
  auto pub = run_cli(addr, {"publish", "orders"}, "via-cli-1\nvia-cli-2\n");
  CHECK(pub.exit_code == 0);
  CHECK(lines(pub.out) ==
        std::vector<std::string>{std::to_string(kTotal + 1), std::to_string(kTotal + 2)});
  expected.push_back("via-cli-1");
  expected.push_back("via-cli-2");
  check_records(read_from_earliest(*c, "orders", expected.size()), expected);

  auto tail = run_cli(addr, {"--timeout", "20", "consume", "orders", "--from",
                             std::to_string(kTotal - 1), "--count", "4"});
  CHECK(tail.exit_code == 0);
  CHECK(lines(tail.out) == std::vector<std::string>{async_payload(kAsync - 1), "after-restart",
                                                    "via-cli-1", "via-cli-2"});
  c.reset();
  CHECK(broker.stop() == 0);
}

TEST_CASE("topics create, list, describe, delete via CLI and SDK - CLI failures name the code") {
  temp_dir dir;
  broker_process broker(dir.file("data"));
  REQUIRE(broker.start());
  const auto addr = broker.address();

  CHECK(run_cli(addr, {"topics", "create", "alpha"}).exit_code == 0);
  CHECK(run_cli(addr, {"topics", "create", "beta.events_v-2", "--retention-ms", "3600000",
                       "--retention-bytes", "1048576"})
            .exit_code == 0);

  // Creating an existing topic fails with topic_exists unless --if-not-exists.
  auto again = run_cli(addr, {"topics", "create", "alpha"});
  CHECK_MESSAGE(cli_failed_with(again, "topic_exists"),
                "exit " << again.exit_code << " stderr: " << again.err);
  CHECK(again.out.empty());
  auto tolerant = run_cli(addr, {"topics", "create", "alpha", "--if-not-exists"});
  CHECK(tolerant.exit_code == 0);
  CHECK(tolerant.err.empty());

  auto c = connect_client(addr);
  auto dup = c->create_topic("alpha");
  REQUIRE_FALSE(dup.ok());
  CHECK(dup.err().code == wharf::errc::topic_exists);
  auto dup_ok =
      c->create_topic("alpha", {.retention_ms = {}, .retention_bytes = {}, .if_not_exists = true});
  REQUIRE(dup_ok.ok());
  CHECK(dup_ok->name == "alpha");
  CHECK(c->create_topic("gamma").ok());

  auto beta = run_cli(addr, {"--json", "topics", "describe", "beta.events_v-2"});
  REQUIRE(beta.exit_code == 0);
  CHECK(json_u64(beta.out, "retention_ms") == 3600000u);
  CHECK(json_u64(beta.out, "retention_bytes") == 1048576u);
  CHECK(json_u64(beta.out, "records") == 0u);

  // list shows every topic (CLI --json and SDK).
  auto list = run_cli(addr, {"--json", "topics", "list"});
  REQUIRE(list.exit_code == 0);
  for (auto name : {"\"alpha\"", "\"beta.events_v-2\"", "\"gamma\""}) {
    CHECK_MESSAGE(list.out.find(name) != std::string::npos, name << " missing from " << list.out);
  }
  auto listed = c->list_topics();
  REQUIRE(listed.ok());
  CHECK(listed->size() == 3);

  // Publish to gamma, then delete it: it disappears and its name is free.
  CHECK(run_cli(addr, {"publish", "gamma"}, "one\ntwo\n").exit_code == 0);
  auto del = run_cli(addr, {"topics", "delete", "gamma"});
  CHECK(del.exit_code == 0);
  auto list2 = c->list_topics();
  REQUIRE(list2.ok());
  CHECK(list2->size() == 2);
  for (auto& t : *list2) CHECK(t.name != "gamma");
  auto gone = run_cli(addr, {"topics", "describe", "gamma"});
  CHECK_MESSAGE(cli_failed_with(gone, "unknown_topic"), "stderr: " << gone.err);
  auto del_again = run_cli(addr, {"topics", "delete", "gamma"});
  CHECK_MESSAGE(cli_failed_with(del_again, "unknown_topic"), "stderr: " << del_again.err);
  auto sdk_del = c->delete_topic("gamma");
  REQUIRE_FALSE(sdk_del.ok());
  CHECK(sdk_del.err().code == wharf::errc::unknown_topic);
  auto recreated = c->create_topic("gamma");
  REQUIRE(recreated.ok());
  CHECK(recreated->next_offset == 0);  // a new topic: no records of the deleted one
  CHECK(recreated->records == 0);

  // CLI failures: non-zero exit, one line on stderr naming the code.
  auto pub_unknown = run_cli(addr, {"publish", "nope"}, "x\n");
  CHECK_MESSAGE(cli_failed_with(pub_unknown, "unknown_topic"), "stderr: " << pub_unknown.err);
  auto con_unknown = run_cli(addr, {"consume", "nope", "--count", "1"});
  CHECK_MESSAGE(cli_failed_with(con_unknown, "unknown_topic"), "stderr: " << con_unknown.err);
  auto bad_name = run_cli(addr, {"topics", "create", "bad name!"});
  CHECK_MESSAGE(cli_failed_with(bad_name, "invalid_name"), "stderr: " << bad_name.err);
  auto starved =
      run_cli(addr, {"--timeout", "1", "consume", "alpha", "--from", "earliest", "--count", "5"});
  CHECK_MESSAGE(cli_failed_with(starved, "timeout"), "stderr: " << starved.err);
  auto usage = run_cli(addr, {"topics", "frobnicate"});
  CHECK(usage.exit_code == 2);  // usage errors are told apart from broker errors
  auto unreachable = run_cli("127.0.0.1:1", {"--timeout", "2", "topics", "list"});
  CHECK_MESSAGE(cli_failed_with(unreachable, "unavailable"), "stderr: " << unreachable.err);

  // Topics survive a restart; the deleted one stays deleted.
  c.reset();
  REQUIRE(broker.stop() == 0);
  REQUIRE(broker.start());
  auto c2 = connect_client(addr);
  auto names = c2->list_topics();
  REQUIRE(names.ok());
  std::vector<std::string> got;
  for (auto& t : *names) got.push_back(t.name);
  std::sort(got.begin(), got.end());
  CHECK(got == std::vector<std::string>{"alpha", "beta.events_v-2", "gamma"});
  auto g = c2->describe_topic("gamma");
  REQUIRE(g.ok());
  CHECK(g->records == 0);
}

// Known SDK bug: a subscription opened right after client::connect() may be
// sent to the broker twice (client::impl::on_hello_ok re-opens every
// subscription in subs_ after connect() has already returned, racing with
// subscribe()), so records arrive twice. `wharf consume` subscribes right
// after connecting, so it is the most exposed. may_fail until it is fixed.
TEST_CASE("CLI consume --from earliest --count N prints exactly the published payloads") {
  constexpr size_t kRecords = 100000;
  temp_dir dir;
  broker_process broker(dir.file("data"));
  REQUIRE(broker.start());
  const auto addr = broker.address();
  auto c = connect_client(addr);
  REQUIRE(c->create_topic("events").ok());
  std::vector<std::string> expected;
  ack_log acks;
  for (size_t i = 0; i < kRecords; ++i) {
    expected.push_back(async_payload(i));
    c->publish_async("events", {.payload = expected.back()}, acks.callback(expected.back()));
  }
  auto flushed = c->flush(60s);
  REQUIRE_MESSAGE(flushed.ok(), flushed.err().to_string());
  REQUIRE(acks.ok_count() == kRecords);

  // Several runs: the duplicate subscription depends on thread timing.
  for (int run = 0; run < 3; ++run) {
    CAPTURE(run);
    auto consumed = run_cli(addr, {"--timeout", "60", "consume", "events", "--from", "earliest",
                                   "--count", std::to_string(kRecords)});
    CHECK(consumed.exit_code == 0);
    CHECK(consumed.err.empty());
    auto printed = lines(consumed.out);
    CHECK(printed.size() == kRecords);
    for (size_t i = 0; i < std::min(printed.size(), expected.size()); ++i) {
      if (printed[i] != expected[i]) {
        FAIL_CHECK("CLI consume line " << i << ": '" << printed[i] << "', expected '" << expected[i]
                                       << "'");
        break;
      }
    }
  }
}

// The same bug through the SDK alone: connect, subscribe at once, and check
// that every record arrives exactly once. The race window is small inside
// one process, so this fails only sometimes; may_fail until it is fixed.
TEST_CASE("SDK subscription opened right after connect delivers each record once") {
  constexpr size_t kRecords = 100;
  constexpr uint32_t kWindow = 10;  // duplicates show up after the first window
  constexpr int kRuns = 100;
  temp_dir dir;
  broker_process broker(dir.file("data"));
  REQUIRE(broker.start());
  const auto addr = broker.address();
  std::vector<std::string> expected;
  {
    auto c = connect_client(addr);
    REQUIRE(c->create_topic("events").ok());
    for (size_t i = 0; i < kRecords; ++i) {
      expected.push_back(async_payload(i));
      c->publish_async("events", {.payload = expected.back()}, [](const auto&) {});
    }
    REQUIRE(c->flush(30s).ok());
  }
  // Busy threads make it likelier that the client's I/O thread is preempted
  // inside the race window. They stop when the runs end.
  std::atomic<bool> busy{true};
  std::vector<std::thread> burners;
  for (int i = 0; i < 3; ++i) {
    burners.emplace_back([&] {
      auto until = std::chrono::steady_clock::now() + 30s;
      while (busy && std::chrono::steady_clock::now() < until) {
      }
    });
  }
  int bad_runs = 0;
  std::string first_bad;
  for (int run = 0; run < kRuns; ++run) {
    auto c = connect_client_unsettled(addr, [](wharf::client_options&) {});
    collector got;
    wharf::subscribe_options o;
    o.start = wharf::start_position::earliest();
    o.max_in_flight = kWindow;
    auto sub = c->subscribe("events", got.handler(), o);
    REQUIRE(sub.ok());
    REQUIRE(got.wait_for(kRecords, 20s));
    (*sub)->close();
    auto records = got.snapshot();
    for (size_t i = 0; i < kRecords; ++i) {
      if (records[i].offset != i || records[i].payload != expected[i]) {
        if (bad_runs++ == 0) {
          first_bad = "run " + std::to_string(run) + ": record " + std::to_string(i) +
                      " has offset " + std::to_string(records[i].offset);
        }
        break;
      }
    }
  }
  busy = false;
  for (auto& t : burners) t.join();
  CHECK_MESSAGE(bad_runs == 0, bad_runs << " of " << kRuns
                                        << " subscriptions opened right after connect() received "
                                           "records twice or out of order; first: "
                                        << first_bad);
}

// Regression (found by LeakSanitizer in the CLI): deliveries that reached
// the client after close() but before its Unsubscribe went out were queued
// for the stopped worker; each queued message holds the subscription, so
// the subscription, its handler and the delivered frames were never freed.
TEST_CASE("SDK: a subscription closed while records stream in is freed with its handler") {
  constexpr size_t kRecords = 20000;
  constexpr int kRuns = 20;
  temp_dir dir;
  broker_process broker(dir.file("data"));
  REQUIRE(broker.start());
  const auto addr = broker.address();
  {
    auto c = connect_client(addr);
    REQUIRE(c->create_topic("stream").ok());
    for (size_t i = 0; i < kRecords; ++i) {
      c->publish_async("stream", {.payload = async_payload(i)}, [](const auto&) {});
    }
    REQUIRE(c->flush(30s).ok());
  }
  int leaked = 0;
  for (int run = 0; run < kRuns; ++run) {
    auto sentinel = std::make_shared<int>(run);
    std::weak_ptr<int> watch = sentinel;
    auto c = connect_client(addr);
    std::mutex mu;
    std::condition_variable cv;
    size_t seen = 0;
    wharf::subscribe_options o;
    o.start = wharf::start_position::earliest();
    o.max_in_flight = 1000;
    auto sub = c->subscribe(
        "stream",
        [&, sentinel](wharf::message) {
          std::lock_guard lk(mu);
          ++seen;
          cv.notify_all();
        },
        o);
    REQUIRE(sub.ok());
    {
      std::unique_lock lk(mu);
      REQUIRE(cv.wait_for(lk, 20s, [&] { return seen >= 100; }));  // mid-stream
    }
    (*sub)->close();
    sentinel.reset();
    c->close();
    c.reset();
    leaked += !watch.expired();
  }
  CHECK_MESSAGE(leaked == 0, leaked << " of " << kRuns << " closed subscriptions were never freed");
  CHECK(broker.stop() == 0);
}
