// Consumer groups end to end: a real wharfd (ephemeral port, temp data dir)
// driven by the client SDK and the wharf CLI. Each case starts its own
// broker, so ctest can run them in parallel.
//
// Waiting: handlers record what they saw under one mutex and notify a
// condition variable; the test waits on it with a bounded timeout. Group
// progress (committed offset, counters) has no event, so it is polled with
// describe_group, a short pause between polls and a bounded deadline.
// Assertions never run on handler threads: handlers count violations and the
// test thread checks the counts.
#include <doctest/doctest.h>
#include <wharf/client.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "process.h"

using namespace std::chrono_literals;
using namespace wharf::test;

namespace {

using steady = std::chrono::steady_clock;

constexpr auto kEventTimeout = 30s;     // upper bound for any awaited event
constexpr auto kProgressTimeout = 20s;  // upper bound for polled group progress

std::unique_ptr<wharf::client> connect_to(const broker_process& b, bool reconnect = true) {
  wharf::client_options o;
  o.broker = b.address();
  o.client_name = "groups-test";
  o.reconnect = reconnect;
  o.request_timeout = 15s;
  auto c = wharf::client::connect(o);
  if (!c) FAIL("connect: " << c.err().to_string());
  // connect() can return while the I/O thread is still re-opening
  // subscriptions after the handshake; a subscribe() in that window is sent
  // twice (see "a subscribe right after connect joins the group once"). One
  // round trip first means the handshake work is done.
  auto warm = (*c)->list_topics();
  if (!warm) FAIL("list_topics: " << warm.err().to_string());
  return std::move(*c);
}

/// Publishes `n` records ("<prefix><i>", key from `key_of` when given)
/// asynchronously, flushes, and returns the acks in publish order.
std::vector<wharf::publish_ack> publish_n(
    wharf::client& c, const std::string& topic, size_t n, const std::string& prefix,
    const std::function<std::optional<std::string>(size_t)>& key_of = {}) {
  std::vector<wharf::publish_ack> acks(n);
  std::mutex mu;
  size_t failed = 0;
  std::string first_error;
  for (size_t i = 0; i < n; ++i) {
    std::string payload = prefix + std::to_string(i);
    std::optional<std::string> key = key_of ? key_of(i) : std::nullopt;
    wharf::record r{payload, key ? std::optional<std::string_view>(*key) : std::nullopt};
    c.publish_async(topic, r, [&, i](const wharf::result<wharf::publish_ack>& res) {
      std::lock_guard lk(mu);
      if (res) {
        acks[i] = *res;
      } else if (failed++ == 0) {
        first_error = res.err().to_string();
      }
    });
  }
  auto f = c.flush(30000ms);
  REQUIRE_MESSAGE(f.ok(), (f.ok() ? std::string() : f.err().to_string()));
  std::lock_guard lk(mu);
  REQUIRE_MESSAGE(failed == 0, first_error);
  return acks;
}

/// Polls describe_group until `done` holds or `timeout` passes; returns the
/// last answer (the caller asserts on it).
wharf::group_info await_group(wharf::client& c, const std::string& topic, const std::string& group,
                              const std::function<bool(const wharf::group_info&)>& done,
                              std::chrono::milliseconds timeout = kProgressTimeout) {
  auto deadline = steady::now() + timeout;
  while (true) {
    auto r = c.describe_group(topic, group);
    if (!r) FAIL("describe_group: " << r.err().to_string());
    if (done(*r) || steady::now() >= deadline) return *r;
    std::this_thread::sleep_for(10ms);
  }
}

wharf::group_info describe(wharf::client& c, const std::string& topic, const std::string& group) {
  auto r = c.describe_group(topic, group);
  if (!r) FAIL("describe_group: " << r.err().to_string());
  return *r;
}

/// A mutex and condition variable that handler threads report through.
struct monitor {
  std::mutex mu;
  std::condition_variable cv;

  /// Waits (bounded) until `pred` holds; `pred` runs with `mu` held.
  template <class Pred>
  bool wait(Pred pred, std::chrono::milliseconds timeout = kEventTimeout) {
    std::unique_lock lk(mu);
    return cv.wait_for(lk, timeout, pred);
  }
  template <class Fn>
  void update(Fn fn) {
    {
      std::lock_guard lk(mu);
      fn();
    }
    cv.notify_all();
  }
};

std::unique_ptr<wharf::subscription> join_group(wharf::client& c, const std::string& topic,
                                                const std::string& group,
                                                wharf::message_handler handler,
                                                wharf::subscribe_options o = {}) {
  auto s = c.subscribe(topic, group, std::move(handler), std::move(o));
  if (!s) FAIL("subscribe " << topic << "/" << group << ": " << s.err().to_string());
  return std::move(*s);
}

wharf::subscribe_options from_earliest() {
  wharf::subscribe_options o;
  o.start = wharf::start_position::earliest();
  return o;
}

// ---- CLI output ----------------------------------------------------------

/// The unsigned number after "name": in the CLI's compact JSON (first match).
std::optional<uint64_t> json_u64(const std::string& json, const std::string& name) {
  std::string needle = "\"" + name + "\":";
  auto at = json.find(needle);
  if (at == std::string::npos) return std::nullopt;
  at += needle.size();
  size_t end = at;
  while (end < json.size() && std::isdigit(static_cast<unsigned char>(json[end]))) ++end;
  if (end == at) return std::nullopt;
  return std::stoull(json.substr(at, end - at));
}

std::optional<std::string> json_str(const std::string& json, const std::string& name) {
  std::string needle = "\"" + name + "\":\"";
  auto at = json.find(needle);
  if (at == std::string::npos) return std::nullopt;
  at += needle.size();
  auto end = json.find('"', at);
  if (end == std::string::npos) return std::nullopt;
  return json.substr(at, end - at);
}

size_t count_of(const std::string& text, const std::string& needle) {
  size_t n = 0;
  for (auto at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) ++n;
  return n;
}

/// A CLI failure: exits non-zero by itself (not killed, not timed out) with
/// one line on stderr naming `code`.
void check_cli_error(const cli_result& r, const std::string& code) {
  INFO("stdout: " << r.out);
  INFO("stderr: " << r.err);
  CHECK(r.exit_code > 0);
  CHECK(r.exit_code < 128);
  CHECK(r.err.find(code) != std::string::npos);
  CHECK(lines(r.err).size() == 1);
  CHECK(r.out.empty());
}

}  // namespace

// ---------------------------------------------------------------------------
// 1. Fan-out
// ---------------------------------------------------------------------------

TEST_CASE("groups: four groups each receive all 20000 records") {
  temp_dir dir;
  broker_process broker(dir.file("data"));
  REQUIRE(broker.start());
  auto admin = connect_to(broker);
  REQUIRE(admin->create_topic("purchases").ok());

  constexpr size_t kRecords = 20000;
  const std::vector<std::string> names{"payment", "inventory", "analytics", "dispatch"};
  struct tally {
    std::vector<uint8_t> seen = std::vector<uint8_t>(kRecords, 0);
    size_t distinct = 0, duplicates = 0, out_of_range = 0, wrong_payload = 0;
  };
  monitor mon;
  std::vector<tally> tallies(names.size());
  std::vector<std::unique_ptr<wharf::client>> clients;
  std::vector<std::unique_ptr<wharf::subscription>> subs;
  auto join = [&](size_t gi) {
    clients.push_back(connect_to(broker));
    subs.push_back(join_group(
        *clients.back(), "purchases", names[gi],
        [&, gi](wharf::message m) {
          mon.update([&] {
            tally& t = tallies[gi];
            uint64_t o = m.offset();
            if (o >= kRecords) return void(++t.out_of_range);
            if (m.payload() != "purchase-" + std::to_string(o)) ++t.wrong_payload;
            if (t.seen[o]++) {
              ++t.duplicates;
            } else {
              ++t.distinct;
            }
          });
          m.ack();
        },
        from_earliest()));
  };
  join(0);  // two groups follow the tail live
  join(1);
  auto acks = publish_n(*admin, "purchases", kRecords, "purchase-");
  REQUIRE(acks.front().offset == 0);
  REQUIRE(acks.back().offset == kRecords - 1);
  join(2);  // two groups catch up from the log
  join(3);

  bool all = mon.wait([&] {
    return std::all_of(tallies.begin(), tallies.end(),
                       [](const tally& t) { return t.distinct == kRecords; });
  });
  for (size_t gi = 0; gi < names.size(); ++gi) {
    CAPTURE(names[gi]);
    std::lock_guard lk(mon.mu);
    CHECK(tallies[gi].distinct == kRecords);
    CHECK(tallies[gi].out_of_range == 0);
    CHECK(tallies[gi].wrong_payload == 0);
  }
  REQUIRE(all);
  for (auto& name : names) {
    CAPTURE(name);
    auto info = await_group(*admin, "purchases", name,
                            [](auto& g) { return g.committed_offset == kRecords; });
    CHECK(info.committed_offset == kRecords);
    CHECK(info.lag == 0);
    CHECK(info.pending == 0);
    CHECK(info.redeliveries == 0);
    CHECK(info.members.size() == 1);
  }
  std::lock_guard lk(mon.mu);
  for (auto& t : tallies) CHECK(t.duplicates == 0);
  MESSAGE(broker.log());  // every ack arrived well within 30 s
}

// ---------------------------------------------------------------------------
// 2. Sharing within a group
// ---------------------------------------------------------------------------

TEST_CASE("groups: three members share a group: every record exactly once, load spread") {
  temp_dir dir;
  broker_process broker(dir.file("data"));
  REQUIRE(broker.start());
  auto admin = connect_to(broker);
  REQUIRE(admin->create_topic("tasks").ok());

  constexpr size_t kRecords = 20000;
  constexpr size_t kMembers = 3;
  monitor mon;
  std::vector<uint32_t> times_seen(kRecords, 0);
  std::vector<size_t> per_member(kMembers, 0);
  size_t distinct = 0, out_of_range = 0;
  std::vector<std::unique_ptr<wharf::client>> clients;
  std::vector<std::unique_ptr<wharf::subscription>> subs;
  for (size_t mi = 0; mi < kMembers; ++mi) {  // all members join before publishing
    clients.push_back(connect_to(broker));
    subs.push_back(join_group(
        *clients.back(), "tasks", "workers",
        [&, mi](wharf::message m) {
          mon.update([&] {
            if (m.offset() >= kRecords) return void(++out_of_range);
            ++per_member[mi];
            if (times_seen[m.offset()]++ == 0) ++distinct;
          });
          // Simulated work: a slow member rightly gets less (its window
          // fills), so give the members equal, CPU-independent speed; on a
          // busy machine a starved handler thread would otherwise skew the
          // split without any fault in the broker.
          std::this_thread::sleep_for(100us);
          m.ack();
        },
        from_earliest()));
  }
  REQUIRE(describe(*admin, "tasks", "workers").members.size() == kMembers);
  publish_n(*admin, "tasks", kRecords, "task-");

  CHECK(mon.wait([&] { return distinct == kRecords; }));
  auto info = await_group(*admin, "tasks", "workers",
                          [](auto& g) { return g.committed_offset == kRecords; });
  CHECK(info.committed_offset == kRecords);
  CHECK(info.redeliveries == 0);
  CHECK(info.pending == 0);

  std::lock_guard lk(mon.mu);
  CHECK(distinct == kRecords);
  CHECK(out_of_range == 0);
  size_t duplicated =
      std::count_if(times_seen.begin(), times_seen.end(), [](uint32_t n) { return n > 1; });
  CHECK(duplicated == 0);
  size_t total = 0;
  for (size_t mi = 0; mi < kMembers; ++mi) {
    CAPTURE(mi);
    CAPTURE(per_member[mi]);
    CHECK(per_member[mi] > 0);
    CHECK(per_member[mi] * 10 <= kRecords * 6);  // no member above 60%
    total += per_member[mi];
  }
  CHECK(total == kRecords);
}

// ---------------------------------------------------------------------------
// 3. Per-key order
// ---------------------------------------------------------------------------

namespace {

/// Acks each message after its own random delay, on its own thread, so one
/// member may finish its records in any order. `on_finish` runs just before
/// the ack.
class delayed_acker {
 public:
  delayed_acker(std::function<void(const wharf::message&)> on_finish, uint32_t seed)
      : on_finish_(std::move(on_finish)), rng_(seed), thread_([this] { run(); }) {}
  ~delayed_acker() {
    {
      std::lock_guard lk(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }

  /// Schedules the ack 0-2 ms from now.
  void add(wharf::message m) {
    {
      std::lock_guard lk(mu_);
      auto due = steady::now() +
                 std::chrono::microseconds(std::uniform_int_distribution<int>(0, 2000)(rng_));
      queue_.emplace(due, std::move(m));
    }
    cv_.notify_all();
  }

 private:
  void run() {
    std::unique_lock lk(mu_);
    while (!stop_) {
      if (queue_.empty()) {
        cv_.wait(lk);
        continue;
      }
      auto due = queue_.begin()->first;
      if (steady::now() < due) {
        cv_.wait_until(lk, due);
        continue;
      }
      wharf::message m = std::move(queue_.begin()->second);
      queue_.erase(queue_.begin());
      lk.unlock();
      on_finish_(m);
      m.ack();
      lk.lock();
    }
  }

  std::function<void(const wharf::message&)> on_finish_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::multimap<steady::time_point, wharf::message> queue_;
  std::mt19937 rng_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace

TEST_CASE("groups: records of one key are processed in offset order across 4 members") {
  temp_dir dir;
  broker_process broker(dir.file("data"));
  REQUIRE(broker.start());
  auto admin = connect_to(broker);
  REQUIRE(admin->create_topic("accounts").ok());

  constexpr size_t kRecords = 10000;
  constexpr size_t kKeys = 50;
  constexpr size_t kMembers = 4;
  std::mt19937 rng(20240611);
  std::vector<size_t> key_of(kRecords);
  for (auto& k : key_of) k = std::uniform_int_distribution<size_t>(0, kKeys - 1)(rng);
  auto key_name = [](size_t k) { return "account-" + std::to_string(k); };

  monitor mon;
  std::vector<std::vector<uint64_t>> finished(kKeys);       // per key, in finishing order
  std::vector<std::optional<uint64_t>> in_progress(kKeys);  // per key, delivered and not finished
  std::vector<uint32_t> finish_count(kRecords, 0);
  size_t total_finished = 0, overlapping = 0, wrong_key = 0, out_of_range = 0;
  auto key_index = [&](const wharf::message& m) -> std::optional<size_t> {
    if (m.offset() >= kRecords) return std::nullopt;
    size_t k = key_of[m.offset()];
    if (m.key() != key_name(k)) return std::nullopt;
    return k;
  };

  std::vector<std::unique_ptr<delayed_acker>> ackers;
  std::vector<std::unique_ptr<wharf::client>> clients;
  std::vector<std::unique_ptr<wharf::subscription>> subs;
  for (size_t mi = 0; mi < kMembers; ++mi) {
    ackers.push_back(std::make_unique<delayed_acker>(
        [&](const wharf::message& m) {
          mon.update([&] {
            auto k = key_index(m);
            if (!k) return;
            finished[*k].push_back(m.offset());
            if (in_progress[*k] == m.offset()) in_progress[*k].reset();
            if (finish_count[m.offset()]++ == 0) ++total_finished;
          });
        },
        static_cast<uint32_t>(mi + 1)));
    clients.push_back(connect_to(broker));
    auto* acker = ackers.back().get();
    wharf::subscribe_options o = from_earliest();
    o.max_in_flight = 64;
    subs.push_back(join_group(
        *clients.back(), "accounts", "ledger",
        [&, acker](wharf::message m) {
          bool ok = true;
          mon.update([&] {
            if (m.offset() >= kRecords) {
              ++out_of_range;
              return void(ok = false);
            }
            auto k = key_index(m);
            if (!k) {
              ++wrong_key;
              return void(ok = false);
            }
            if (in_progress[*k]) ++overlapping;  // an earlier record of the key is not finished
            in_progress[*k] = m.offset();
          });
          if (ok) acker->add(std::move(m));
        },
        o));
  }
  publish_n(*admin, "accounts", kRecords, "entry-",
            [&](size_t i) { return std::optional<std::string>(key_name(key_of[i])); });

  CHECK(mon.wait([&] { return total_finished == kRecords; }));
  auto info = await_group(*admin, "accounts", "ledger",
                          [](auto& g) { return g.committed_offset == kRecords; });
  CHECK(info.committed_offset == kRecords);
  CHECK(info.redeliveries == 0);

  std::lock_guard lk(mon.mu);
  CHECK(total_finished == kRecords);
  CHECK(overlapping == 0);
  CHECK(wrong_key == 0);
  CHECK(out_of_range == 0);
  CHECK(std::count_if(finish_count.begin(), finish_count.end(),
                      [](uint32_t n) { return n != 1; }) == 0);
  for (size_t k = 0; k < kKeys; ++k) {
    CAPTURE(k);
    std::vector<uint64_t> expected;
    for (uint64_t o = 0; o < kRecords; ++o) {
      if (key_of[o] == k) expected.push_back(o);
    }
    CHECK(std::is_sorted(finished[k].begin(), finished[k].end()));
    CHECK(finished[k] == expected);  // in offset order, and every record of the key
  }
}

// ---------------------------------------------------------------------------
// 4. Ack timeout
// ---------------------------------------------------------------------------

TEST_CASE("groups: records a member never acks go to the others after ack_timeout") {
  temp_dir dir;
  broker_process broker(dir.file("data"));
  REQUIRE(broker.start());
  auto admin = connect_to(broker);
  REQUIRE(admin->create_topic("emails").ok());

  constexpr size_t kRecords = 100;
  constexpr uint32_t kStuckWindow = 20;
  constexpr auto kAckTimeout = 300ms;
  monitor mon;
  std::map<uint64_t, steady::time_point> stuck_got;  // offset -> first delivery to the stuck member
  size_t stuck_deliveries = 0;
  struct good_delivery {
    uint64_t offset;
    uint32_t delivery_count;
    steady::time_point at;
  };
  std::vector<good_delivery> good_got;
  std::set<uint64_t> good_acked;

  auto stuck_client = connect_to(broker);
  wharf::subscribe_options so = from_earliest();
  so.max_in_flight = kStuckWindow;
  so.ack_timeout = kAckTimeout;
  auto stuck = join_group(
      *stuck_client, "emails", "senders",
      [&](wharf::message m) {  // never acks
        mon.update([&] {
          ++stuck_deliveries;
          stuck_got.emplace(m.offset(), steady::now());
        });
      },
      so);
  publish_n(*admin, "emails", kRecords, "mail-");
  REQUIRE(mon.wait([&] { return stuck_got.size() == kStuckWindow; }));

  std::vector<std::unique_ptr<wharf::client>> clients;
  std::vector<std::unique_ptr<wharf::subscription>> good;
  for (int i = 0; i < 2; ++i) {
    clients.push_back(connect_to(broker));
    good.push_back(join_group(*clients.back(), "emails", "senders", [&](wharf::message m) {
      auto at = steady::now();
      mon.update([&] {
        good_got.push_back({m.offset(), m.delivery_count(), at});
        good_acked.insert(m.offset());
      });
      m.ack();
    }));
  }
  CHECK(mon.wait([&] { return good_acked.size() == kRecords; }));
  auto info = await_group(*admin, "emails", "senders",
                          [](auto& g) { return g.committed_offset == kRecords; });
  CHECK(info.committed_offset == kRecords);
  CHECK(info.ack_timeout_ms == static_cast<uint32_t>(kAckTimeout.count()));
  CHECK(info.redeliveries >= kStuckWindow);
  CHECK(info.dead_lettered == 0);
  CHECK(info.members.size() == 3);

  std::lock_guard lk(mon.mu);
  CHECK(good_acked.size() == kRecords);
  CHECK(*good_acked.rbegin() == kRecords - 1);
  REQUIRE(stuck_got.size() >= kStuckWindow);
  for (auto& [offset, first_at] : stuck_got) {
    CAPTURE(offset);
    auto it =
        std::find_if(good_got.begin(), good_got.end(), [&](auto& g) { return g.offset == offset; });
    REQUIRE(it != good_got.end());
    CHECK(it->delivery_count > 1);
    // Not before the ack timeout (the broker checks deadlines every 20 ms).
    CHECK(it->at - first_at >= kAckTimeout - 50ms);
  }
}

// ---------------------------------------------------------------------------
// 5. Dead letters
// ---------------------------------------------------------------------------

TEST_CASE("groups: a record nacked max_deliveries times moves to <topic>.dlq") {
  temp_dir dir;
  broker_process broker(dir.file("data"));
  REQUIRE(broker.start());
  auto admin = connect_to(broker);
  REQUIRE(admin->create_topic("jobs").ok());

  // 0: ok, 1: poison (key k), 2: ok, 3: after-poison (key k, must wait for 1)
  const wharf::header trace{"trace", "abc-123"};
  REQUIRE(admin->publish("jobs", {.payload = "ok-0"}).ok());
  auto poison = admin->publish("jobs", {.payload = "poison", .key = "k", .headers = {&trace, 1}});
  REQUIRE(poison.ok());
  REQUIRE(admin->publish("jobs", {.payload = "ok-2"}).ok());
  REQUIRE(admin->publish("jobs", {.payload = "after-poison", .key = "k"}).ok());
  REQUIRE(poison->offset == 1);

  monitor mon;
  std::vector<std::string> events;  // "<payload>#<delivery_count>" in handling order
  std::set<uint64_t> acked;
  auto consumer = connect_to(broker);
  wharf::subscribe_options o = from_earliest();
  o.max_deliveries = 3;
  auto member = join_group(
      *consumer, "jobs", "workers",
      [&](wharf::message m) {
        bool bad = m.payload() == "poison";
        mon.update([&] {
          events.push_back(std::string(m.payload()) + "#" + std::to_string(m.delivery_count()));
          if (!bad) acked.insert(m.offset());
        });
        if (bad) {
          m.nack();
        } else {
          m.ack();
        }
      },
      o);

  CHECK(mon.wait([&] { return acked.size() == 3; }));
  auto info = await_group(*admin, "jobs", "workers",
                          [](auto& g) { return g.dead_lettered == 1 && g.committed_offset == 4; });
  CHECK(info.dead_lettered == 1);
  CHECK(info.committed_offset == 4);  // the dead letter counts as finished
  CHECK(info.max_deliveries == 3);
  CHECK(info.pending == 0);
  CHECK(info.lag == 0);
  {
    std::lock_guard lk(mon.mu);
    std::vector<std::string> poison_events;
    for (auto& e : events) {
      if (e.rfind("poison#", 0) == 0) poison_events.push_back(e);
    }
    CHECK(poison_events == std::vector<std::string>{"poison#1", "poison#2", "poison#3"});
    // Key order: the next record of key k waits until the poison is dead-lettered.
    auto third = std::find(events.begin(), events.end(), "poison#3");
    auto after = std::find(events.begin(), events.end(), "after-poison#1");
    CHECK(after != events.end());
    CHECK(third < after);
  }

  auto dlq_info = admin->describe_topic("jobs.dlq");
  REQUIRE(dlq_info.ok());
  CHECK(dlq_info->records == 1);
  std::promise<wharf::message> got;
  auto reader = admin->subscribe(
      "jobs.dlq",
      [&, once = std::make_shared<std::once_flag>()](wharf::message m) {
        std::call_once(*once, [&] { got.set_value(m); });
      },
      from_earliest());
  REQUIRE(reader.ok());
  auto fut = got.get_future();
  REQUIRE(fut.wait_for(kEventTimeout) == std::future_status::ready);
  wharf::message d = fut.get();
  CHECK(d.payload() == "poison");
  CHECK(d.key() == std::optional<std::string_view>("k"));
  CHECK(d.header("trace") == std::optional<std::string_view>("abc-123"));
  CHECK(d.header("wharf-dlq-topic") == std::optional<std::string_view>("jobs"));
  CHECK(d.header("wharf-dlq-offset") == std::optional<std::string_view>("1"));
  CHECK(d.header("wharf-dlq-group") == std::optional<std::string_view>("workers"));
  CHECK(d.header("wharf-dlq-deliveries") == std::optional<std::string_view>("3"));
  auto reason = d.header("wharf-dlq-reason");
  REQUIRE(reason.has_value());
  CHECK(reason->find("max_deliveries") != std::string_view::npos);
  CHECK(reason->find("nack") != std::string_view::npos);
}

// ---------------------------------------------------------------------------
// 6. kill -9
// ---------------------------------------------------------------------------

TEST_CASE("groups: kill -9 mid-consumption loses no unacked record and redelivers no durable ack") {
  temp_dir dir;
  broker_process broker(dir.file("data"));
  REQUIRE(broker.start());
  auto admin = connect_to(broker, false);
  REQUIRE(admin->create_topic("ledger").ok());
  REQUIRE(admin->create_topic("barrier").ok());

  constexpr uint64_t kRecords = 3000;
  constexpr uint64_t kCommitted = 1000;  // C: every record below is acked
  constexpr uint32_t kWindow = 200;
  publish_n(*admin, "ledger", kRecords, "entry-");

  // Acks every record below C and every third one above; holds the rest,
  // so delivery stops when kWindow records are held.
  monitor mon;
  std::set<uint64_t> received, acked;
  size_t held = 0;
  auto consumer = connect_to(broker, false);
  wharf::subscribe_options o = from_earliest();
  o.max_in_flight = kWindow;
  auto member = join_group(
      *consumer, "ledger", "auditor",
      [&](wharf::message m) {
        uint64_t off = m.offset();
        bool ack = off < kCommitted || off % 3 == 0;
        mon.update([&] {
          received.insert(off);
          if (ack) {
            acked.insert(off);
          } else {
            ++held;
          }
        });
        if (ack) m.ack();
      },
      o);
  REQUIRE(mon.wait([&] { return held >= kWindow; }));
  // All kWindow credits are held, so nothing else is in flight: every ack
  // sent has been applied once pending == kWindow.
  auto before = await_group(*admin, "ledger", "auditor", [&](auto& g) {
    return g.committed_offset == kCommitted && g.pending == kWindow;
  });
  REQUIRE(before.committed_offset == kCommitted);
  REQUIRE(before.pending == kWindow);
  size_t received_before, acked_before;
  {
    std::lock_guard lk(mon.mu);
    received_before = received.size();
    acked_before = acked.size();
    CHECK(held == kWindow);
  }
  CHECK(received_before < kRecords);  // consumption is mid-way
  CHECK(acked_before > kCommitted);   // some acks above C too

  // describe reports progress in memory; the save holding it goes through
  // the same group-commit writer as publishes (FIFO, one save in flight per
  // group). Two durable publishes in a row mean that save has committed.
  REQUIRE(admin->publish("barrier", {.payload = "1"}).ok());
  REQUIRE(admin->publish("barrier", {.payload = "2"}).ok());

  CHECK(broker.stop(9) == 128 + 9);
  member.reset();
  consumer.reset();
  admin.reset();
  REQUIRE(broker.start());
  admin = connect_to(broker);

  auto after = describe(*admin, "ledger", "auditor");
  CHECK(after.committed_offset == kCommitted);

  std::set<uint64_t> again;
  size_t again_total = 0;
  auto consumer2 = connect_to(broker);
  auto member2 = join_group(*consumer2, "ledger", "auditor", [&](wharf::message m) {
    mon.update([&] {
      again.insert(m.offset());
      ++again_total;
    });
    m.ack();
  });
  const size_t expected = kRecords - acked_before;
  CHECK(mon.wait([&] { return again.size() >= expected; }));
  auto done = await_group(*admin, "ledger", "auditor",
                          [&](auto& g) { return g.committed_offset == kRecords; });
  CHECK(done.committed_offset == kRecords);

  std::lock_guard lk(mon.mu);
  CHECK(again.size() == expected);
  CHECK(again_total == expected);
  CHECK((again.empty() || *again.begin() >= kCommitted));  // nothing below C again
  std::vector<uint64_t> redelivered_acked;
  std::set_intersection(again.begin(), again.end(), acked.begin(), acked.end(),
                        std::back_inserter(redelivered_acked));
  CHECK(redelivered_acked.empty());  // durable acks above C hold too
  std::set<uint64_t> all(acked);
  all.insert(again.begin(), again.end());
  CHECK(all.size() == kRecords);  // nothing lost
  CHECK(*all.rbegin() == kRecords - 1);
}

TEST_CASE("groups: kill -9 during a busy ack stream keeps at-least-once") {
  temp_dir dir;
  broker_process broker(dir.file("data"));
  REQUIRE(broker.start());
  auto admin = connect_to(broker, false);
  REQUIRE(admin->create_topic("stream").ok());
  constexpr uint64_t kRecords = 20000;
  publish_n(*admin, "stream", kRecords, "s-");

  monitor mon;
  std::set<uint64_t> acked;
  auto consumer = connect_to(broker, false);
  auto member = join_group(
      *consumer, "stream", "busy",
      [&](wharf::message m) {
        mon.update([&] { acked.insert(m.offset()); });
        m.ack();
      },
      from_earliest());
  REQUIRE(mon.wait([&] { return acked.size() >= kRecords / 10; }));
  CHECK(broker.stop(9) == 128 + 9);  // while acks are flowing
  member.reset();
  consumer.reset();
  admin.reset();
  std::set<uint64_t> acked_before;
  {
    std::lock_guard lk(mon.mu);
    acked_before = acked;
  }
  REQUIRE(acked_before.size() < kRecords);
  REQUIRE(broker.start());
  admin = connect_to(broker);
  auto resumed = describe(*admin, "stream", "busy");
  // Nothing the consumer did not ack counts as finished.
  for (uint64_t o = 0; o < resumed.committed_offset; ++o) {
    if (!acked_before.count(o)) FAIL_CHECK("offset " << o << " finished without an ack");
  }

  std::set<uint64_t> again;
  auto consumer2 = connect_to(broker);
  auto member2 = join_group(*consumer2, "stream", "busy", [&](wharf::message m) {
    mon.update([&] { again.insert(m.offset()); });
    m.ack();
  });
  auto done = await_group(*admin, "stream", "busy",
                          [&](auto& g) { return g.committed_offset == kRecords; });
  CHECK(done.committed_offset == kRecords);
  std::lock_guard lk(mon.mu);
  CHECK((again.empty() || *again.begin() >= resumed.committed_offset));
  std::set<uint64_t> all(acked_before);
  all.insert(again.begin(), again.end());
  CHECK(all.size() == kRecords);
}

// ---------------------------------------------------------------------------
// 7. Reset to a time
// ---------------------------------------------------------------------------

TEST_CASE("groups: reset --to @TIMESTAMP_MS replays from the first record at that time") {
  temp_dir dir;
  broker_process broker(dir.file("data"));
  REQUIRE(broker.start());
  auto admin = connect_to(broker);
  REQUIRE(admin->create_topic("events").ok());

  constexpr size_t kBatch = 50;
  auto first = publish_n(*admin, "events", kBatch, "first-");
  // T: the first millisecond after the last record of the first batch.
  uint64_t t_ms = first.back().timestamp_us / 1000 + 1;
  auto now_ms = [] {
    return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                     std::chrono::system_clock::now().time_since_epoch())
                                     .count());
  };
  // A short gap so the second batch is stamped at or after T (bounded: ~2 ms).
  for (int i = 0; i < 100 && now_ms() <= t_ms; ++i) std::this_thread::sleep_for(1ms);
  auto second = publish_n(*admin, "events", kBatch, "second-");
  REQUIRE(second.front().timestamp_us >= t_ms * 1000);
  REQUIRE(first.back().timestamp_us < t_ms * 1000);
  const uint64_t second_first = second.front().offset;
  REQUIRE(second_first == kBatch);

  monitor mon;
  std::vector<uint64_t> got;
  auto handler = [&](wharf::message m) {
    mon.update([&] { got.push_back(m.offset()); });
    m.ack();
  };
  auto consumer = connect_to(broker);
  auto member = join_group(*consumer, "events", "replay", handler, from_earliest());
  CHECK(mon.wait([&] { return got.size() == 2 * kBatch; }));
  auto info = await_group(*admin, "events", "replay",
                          [](auto& g) { return g.committed_offset == 2 * kBatch; });
  REQUIRE(info.committed_offset == 2 * kBatch);
  member->close();

  std::string at_t = "@";
  at_t += std::to_string(t_ms);  // (not "@" + ...: a GCC 12 -Wrestrict false positive)
  auto reset =
      run_cli(broker.address(), {"--json", "groups", "reset", "events", "replay", "--to", at_t});
  INFO("stderr: " << reset.err);
  REQUIRE(reset.exit_code == 0);
  CHECK(json_u64(reset.out, "committed_offset") == second_first);
  CHECK(json_u64(reset.out, "lag") == kBatch);

  {
    std::lock_guard lk(mon.mu);
    got.clear();
  }
  auto member2 = join_group(*consumer, "events", "replay", handler);
  CHECK(mon.wait([&] { return got.size() >= kBatch; }));
  auto replayed = await_group(*admin, "events", "replay",
                              [](auto& g) { return g.committed_offset == 2 * kBatch; });
  CHECK(replayed.committed_offset == 2 * kBatch);
  std::lock_guard lk(mon.mu);
  REQUIRE(!got.empty());
  CHECK(got.front() == second_first);
  std::vector<uint64_t> expected(kBatch);
  for (size_t i = 0; i < kBatch; ++i) expected[i] = second_first + i;
  CHECK(got == expected);
}

// ---------------------------------------------------------------------------
// 8. CLI
// ---------------------------------------------------------------------------

TEST_CASE("groups: wharf groups create/list/describe/reset/delete: exit codes, JSON, errors") {
  temp_dir dir;
  broker_process broker(dir.file("data"));
  REQUIRE(broker.start());
  const auto b = broker.address();
  REQUIRE(run_cli(b, {"topics", "create", "orders"}).exit_code == 0);

  {  // create
    auto r = run_cli(b, {"--json", "groups", "create", "orders", "billing", "--from", "earliest"});
    INFO("stderr: " << r.err);
    REQUIRE(r.exit_code == 0);
    CHECK(json_str(r.out, "topic") == "orders");
    CHECK(json_str(r.out, "group") == "billing");
    CHECK(json_u64(r.out, "committed_offset") == 0u);
    CHECK(json_u64(r.out, "dispatch_offset") == 0u);
    CHECK(json_u64(r.out, "lag") == 0u);
    CHECK(json_u64(r.out, "pending") == 0u);
    CHECK(json_u64(r.out, "redeliveries") == 0u);
    CHECK(json_u64(r.out, "dead_lettered") == 0u);
    CHECK(json_u64(r.out, "ack_timeout_ms") == 30000u);
    CHECK(json_u64(r.out, "max_deliveries") == 5u);
    CHECK(json_u64(r.out, "created_us").value_or(0) > 0);
    CHECK(r.out.find("\"members\":[]") != std::string::npos);
  }
  {
    auto r = run_cli(b, {"--json", "groups", "create", "orders", "fast", "--ack-timeout-ms", "1500",
                         "--max-deliveries", "2"});
    INFO("stderr: " << r.err);
    REQUIRE(r.exit_code == 0);
    CHECK(json_u64(r.out, "ack_timeout_ms") == 1500u);
    CHECK(json_u64(r.out, "max_deliveries") == 2u);
  }
  check_cli_error(run_cli(b, {"groups", "create", "orders", "billing"}), "group_exists");
  check_cli_error(run_cli(b, {"groups", "create", "orders", "bad name"}), "invalid_name");
  check_cli_error(run_cli(b, {"groups", "create", "orders", std::string(201, 'g')}),
                  "invalid_name");
  check_cli_error(run_cli(b, {"groups", "create", "nosuch", "billing"}), "unknown_topic");
  CHECK(run_cli(b, {"groups", "create", "orders", "billing", "--if-not-exists"}).exit_code == 0);

  {  // list
    auto r = run_cli(b, {"--json", "groups", "list", "orders"});
    INFO("stderr: " << r.err);
    REQUIRE(r.exit_code == 0);
    CHECK(r.out.front() == '[');
    CHECK(count_of(r.out, "\"group\":") == 2);
    CHECK(r.out.find("\"group\":\"billing\"") != std::string::npos);
    CHECK(r.out.find("\"group\":\"fast\"") != std::string::npos);
    auto text = run_cli(b, {"groups", "list", "orders"});
    CHECK(text.exit_code == 0);
    CHECK(lines(text.out).size() == 3);  // header + 2 groups
  }
  check_cli_error(run_cli(b, {"groups", "list", "nosuch"}), "unknown_topic");

  auto pub = run_cli(b, {"publish", "orders"}, "a\nb\nc\nd\ne\n");
  REQUIRE(pub.exit_code == 0);
  REQUIRE(lines(pub.out) == std::vector<std::string>{"0", "1", "2", "3", "4"});

  {  // describe
    auto r = run_cli(b, {"--json", "groups", "describe", "orders", "billing"});
    INFO("stderr: " << r.err);
    REQUIRE(r.exit_code == 0);
    CHECK(json_str(r.out, "group") == "billing");
    CHECK(json_u64(r.out, "committed_offset") == 0u);
    CHECK(json_u64(r.out, "lag") == 5u);
    CHECK(json_u64(r.out, "pending") == 0u);
    for (const char* f : {"dispatch_offset", "redeliveries", "dead_lettered", "ack_timeout_ms",
                          "max_deliveries", "created_us"}) {
      CAPTURE(f);
      CHECK(json_u64(r.out, f).has_value());
    }
    auto text = run_cli(b, {"groups", "describe", "orders", "billing"});
    CHECK(text.exit_code == 0);
    CHECK(text.out.find("committed_offset: 0") != std::string::npos);
    CHECK(text.out.find("lag:              5") != std::string::npos);
  }
  {  // reset
    auto r = run_cli(b, {"--json", "groups", "reset", "orders", "billing", "--to", "3"});
    INFO("stderr: " << r.err);
    CHECK(r.exit_code == 0);
    CHECK(json_u64(r.out, "committed_offset") == 3u);
    CHECK(json_u64(r.out, "lag") == 2u);
    r = run_cli(b, {"--json", "groups", "reset", "orders", "billing", "--to", "latest"});
    CHECK(r.exit_code == 0);
    CHECK(json_u64(r.out, "committed_offset") == 5u);
    CHECK(json_u64(r.out, "lag") == 0u);
    r = run_cli(b, {"--json", "groups", "reset", "orders", "billing", "--to", "earliest"});
    CHECK(r.exit_code == 0);
    CHECK(json_u64(r.out, "committed_offset") == 0u);
    auto d = run_cli(b, {"--json", "groups", "describe", "orders", "billing"});
    CHECK(json_u64(d.out, "committed_offset") == 0u);
    CHECK(run_cli(b, {"groups", "reset", "orders", "billing", "--to", "sometime"}).exit_code == 2);
  }
  check_cli_error(run_cli(b, {"groups", "describe", "orders", "nosuch"}), "unknown_group");
  check_cli_error(run_cli(b, {"groups", "reset", "orders", "nosuch", "--to", "earliest"}),
                  "unknown_group");
  check_cli_error(run_cli(b, {"groups", "delete", "orders", "nosuch"}), "unknown_group");
  check_cli_error(run_cli(b, {"groups", "describe", "nosuch", "billing"}), "unknown_topic");
  {  // delete
    auto r = run_cli(b, {"--json", "groups", "delete", "orders", "billing"});
    INFO("stderr: " << r.err);
    CHECK(r.exit_code == 0);
    CHECK(json_str(r.out, "deleted") == "billing");
    check_cli_error(run_cli(b, {"groups", "describe", "orders", "billing"}), "unknown_group");
    check_cli_error(run_cli(b, {"groups", "delete", "orders", "billing"}), "unknown_group");
    auto l = run_cli(b, {"--json", "groups", "list", "orders"});
    CHECK(l.exit_code == 0);
    CHECK(count_of(l.out, "\"group\":") == 1);
    CHECK(l.out.find("\"group\":\"fast\"") != std::string::npos);
  }
  check_cli_error(
      run_cli(b, {"--timeout", "5", "consume", "nosuch", "--group", "g", "--count", "1"}),
      "unknown_topic");
  {  // a deleted group can be created again, from scratch
    auto r = run_cli(b, {"--json", "groups", "create", "orders", "billing", "--from", "latest"});
    CHECK(r.exit_code == 0);
    CHECK(json_u64(r.out, "committed_offset") == 5u);
  }
}

// Regression: the CLI's acks could be lost when it exited right after the
// last record (see the two "acks ... before close" cases below).
TEST_CASE("groups: wharf consume --group acks what it prints, --no-ack leaves records unacked") {
  temp_dir dir;
  broker_process broker(dir.file("data"));
  REQUIRE(broker.start());
  const auto b = broker.address();
  auto admin = connect_to(broker);
  // Acks reach the broker within milliseconds; this only bounds a failure.
  constexpr auto kCliAckTimeout = 5000ms;
  REQUIRE(run_cli(b, {"topics", "create", "orders"}).exit_code == 0);
  REQUIRE(run_cli(b, {"groups", "create", "orders", "billing", "--from", "earliest"}).exit_code ==
          0);
  REQUIRE(run_cli(b, {"publish", "orders"}, "a\nb\nc\nd\ne\n").exit_code == 0);

  {  // prints N payloads and acks them
    auto r =
        run_cli(b, {"--timeout", "20", "consume", "orders", "--group", "billing", "--count", "3"});
    INFO("stderr: " << r.err);
    CHECK(r.exit_code == 0);
    CHECK(lines(r.out) == std::vector<std::string>{"a", "b", "c"});
    auto info = await_group(
        *admin, "orders", "billing",
        [](auto& g) { return g.committed_offset == 3 && g.members.empty(); }, kCliAckTimeout);
    REQUIRE(info.committed_offset == 3);
    CHECK(info.lag == 2);
    CHECK(info.members.empty());
  }
  {  // --no-ack: printed, but the group still owes them
    auto r = run_cli(b, {"--timeout", "20", "consume", "orders", "--group", "billing", "--count",
                         "2", "--no-ack"});
    INFO("stderr: " << r.err);
    CHECK(r.exit_code == 0);
    CHECK(lines(r.out) == std::vector<std::string>{"d", "e"});
    auto info = await_group(
        *admin, "orders", "billing", [](auto& g) { return g.members.empty(); }, kCliAckTimeout);
    CHECK(info.members.empty());
    CHECK(info.committed_offset == 3);
    CHECK(info.pending == 2);
    CHECK(info.lag == 2);
    auto d = run_cli(b, {"--json", "groups", "describe", "orders", "billing"});
    CHECK(json_u64(d.out, "committed_offset") == 3u);
    CHECK(json_u64(d.out, "pending") == 2u);
  }
  {  // so they come again, as redeliveries
    auto r = run_cli(b, {"--json", "--timeout", "20", "consume", "orders", "--group", "billing",
                         "--count", "2"});
    INFO("stderr: " << r.err);
    CHECK(r.exit_code == 0);
    auto ls = lines(r.out);
    REQUIRE(ls.size() == 2);
    CHECK(json_u64(ls[0], "offset") == 3u);
    CHECK(json_u64(ls[1], "offset") == 4u);
    CHECK(json_str(ls[0], "payload") == "d");
    CHECK(json_str(ls[1], "payload") == "e");
    CHECK(json_u64(ls[0], "delivery_count").value_or(0) >= 2);
    CHECK(json_u64(ls[1], "delivery_count").value_or(0) >= 2);
    auto info = await_group(
        *admin, "orders", "billing",
        [](auto& g) { return g.committed_offset == 5 && g.members.empty(); }, kCliAckTimeout);
    REQUIRE(info.committed_offset == 5);
    CHECK(info.lag == 0);
    CHECK(info.pending == 0);
    CHECK(info.redeliveries >= 2);
  }
}

// Regression: the CLI subscribes right after connecting and used to be joined
// twice; and records the broker sent after its last ack counted as failed
// deliveries when it left. Now it releases them, and a member that
// unsubscribes returns what its application never had, uncounted.
TEST_CASE("groups: wharf consume --count N takes only N records from the group") {
  temp_dir dir;
  broker_process broker(dir.file("data"));
  REQUIRE(broker.start());
  const auto b = broker.address();
  auto admin = connect_to(broker);
  REQUIRE(admin->create_topic("orders").ok());
  wharf::group_options go;
  go.start = wharf::start_position::earliest();
  REQUIRE(admin->create_group("orders", "billing", go).ok());
  publish_n(*admin, "orders", 100, "o-");
  constexpr int kRounds = 8;
  int extra = 0;
  for (int i = 0; i < kRounds; ++i) {
    auto r = run_cli(b, {"--json", "--timeout", "20", "consume", "orders", "--group", "billing",
                         "--count", "2"});
    CAPTURE(i);
    CAPTURE(r.err);
    REQUIRE(r.exit_code == 0);
    auto ls = lines(r.out);
    REQUIRE(ls.size() == 2);
    for (auto& l : ls) {
      if (json_u64(l, "delivery_count") != 1u) ++extra;
    }
    auto info = await_group(*admin, "orders", "billing", [](auto& g) { return g.members.empty(); });
    if (info.pending != 0) ++extra;  // delivered to this consumer, never printed nor acked
  }
  CHECK(extra == 0);
  CHECK(describe(*admin, "orders", "billing").redeliveries == 0);
}

// ---------------------------------------------------------------------------
// 9. Clean restart
// ---------------------------------------------------------------------------

TEST_CASE("groups: progress and settings survive a clean restart") {
  temp_dir dir;
  broker_process broker(dir.file("data"));
  REQUIRE(broker.start());
  auto admin = connect_to(broker);
  REQUIRE(admin->create_topic("invoices").ok());
  wharf::group_options go;
  go.start = wharf::start_position::earliest();
  go.ack_timeout = 61234ms;
  go.max_deliveries = 7;
  REQUIRE(admin->create_group("invoices", "mailer", go).ok());
  constexpr uint64_t kRecords = 100;
  publish_n(*admin, "invoices", kRecords, "inv-");

  // Finish [0,40) and [50,60); hold the rest.
  auto finished = [](uint64_t o) { return o < 40 || (o >= 50 && o < 60); };
  monitor mon;
  std::set<uint64_t> received;
  auto consumer = connect_to(broker);
  auto member = join_group(*consumer, "invoices", "mailer", [&](wharf::message m) {
    mon.update([&] { received.insert(m.offset()); });
    if (finished(m.offset())) m.ack();
  });
  REQUIRE(mon.wait([&] { return received.size() == kRecords; }));
  auto before = await_group(*admin, "invoices", "mailer",
                            [](auto& g) { return g.committed_offset == 40 && g.pending == 50; });
  REQUIRE(before.committed_offset == 40);
  REQUIRE(before.pending == 50);
  member.reset();  // held records go back to the group
  consumer.reset();
  admin.reset();

  CHECK(broker.stop() == 0);  // SIGTERM
  REQUIRE(broker.start());
  admin = connect_to(broker);
  auto after = describe(*admin, "invoices", "mailer");
  CHECK(after.committed_offset == before.committed_offset);
  CHECK(after.ack_timeout_ms == 61234);
  CHECK(after.max_deliveries == 7);
  CHECK(after.created_us == before.created_us);
  CHECK(after.redeliveries == before.redeliveries);
  CHECK(after.dead_lettered == before.dead_lettered);
  CHECK(after.lag == kRecords - 40);
  auto listed = admin->list_groups("invoices");
  REQUIRE(listed.ok());
  REQUIRE(listed->size() == 1);
  CHECK(listed->front().group == "mailer");

  // Only the unfinished records come again.
  std::set<uint64_t> again;
  size_t again_total = 0;
  auto consumer2 = connect_to(broker);
  auto member2 = join_group(*consumer2, "invoices", "mailer", [&](wharf::message m) {
    mon.update([&] {
      again.insert(m.offset());
      ++again_total;
    });
    m.ack();
  });
  auto done = await_group(*admin, "invoices", "mailer",
                          [](auto& g) { return g.committed_offset == kRecords; });
  CHECK(done.committed_offset == kRecords);
  std::set<uint64_t> expected;
  for (uint64_t o = 0; o < kRecords; ++o) {
    if (!finished(o)) expected.insert(o);
  }
  std::lock_guard lk(mon.mu);
  CHECK(again == expected);
  CHECK(again_total == expected.size());
}

// ---------------------------------------------------------------------------
// 10. Deletion ends subscriptions
// ---------------------------------------------------------------------------

TEST_CASE("groups: deleting a group or its topic ends member subscriptions") {
  temp_dir dir;
  broker_process broker(dir.file("data"));
  REQUIRE(broker.start());
  auto admin = connect_to(broker);
  REQUIRE(admin->create_topic("alpha").ok());
  REQUIRE(admin->create_topic("beta").ok());

  monitor mon;
  std::map<std::string, std::vector<wharf::error>> ended;  // by member name
  auto options_for = [&](const std::string& name) {
    wharf::subscribe_options o;
    o.on_end = [&, name](const wharf::error& e) { mon.update([&] { ended[name].push_back(e); }); };
    return o;
  };
  auto ignore = [](wharf::message m) { m.ack(); };
  auto c1 = connect_to(broker);
  auto c2 = connect_to(broker);
  auto a1 = join_group(*c1, "alpha", "doomed", ignore, options_for("a1"));
  auto a2 = join_group(*c2, "alpha", "doomed", ignore, options_for("a2"));
  auto a3 = join_group(*c2, "alpha", "survivor", ignore, options_for("a3"));
  auto b1 = join_group(*c1, "beta", "g1", ignore, options_for("b1"));
  auto b2 = join_group(*c2, "beta", "g2", ignore, options_for("b2"));

  REQUIRE(admin->delete_group("alpha", "doomed").ok());
  CHECK(mon.wait([&] { return ended.count("a1") && ended.count("a2"); }));
  {
    std::lock_guard lk(mon.mu);
    for (const char* m : {"a1", "a2"}) {
      CAPTURE(m);
      REQUIRE(ended[m].size() == 1);
      CHECK(ended[m][0].code == wharf::errc::unknown_group);
    }
    CHECK(ended.count("a3") == 0);
    CHECK(ended.count("b1") == 0);
  }
  auto gone = admin->describe_group("alpha", "doomed");
  REQUIRE(!gone.ok());
  CHECK(gone.err().code == wharf::errc::unknown_group);
  CHECK(describe(*admin, "alpha", "survivor").members.size() == 1);

  REQUIRE(admin->delete_topic("beta").ok());
  CHECK(mon.wait([&] { return ended.count("b1") && ended.count("b2"); }));
  {
    std::lock_guard lk(mon.mu);
    for (const char* m : {"b1", "b2"}) {
      CAPTURE(m);
      REQUIRE(ended[m].size() == 1);
      CHECK(ended[m][0].code == wharf::errc::unknown_topic);
    }
    CHECK(ended.count("a3") == 0);
  }
  auto no_topic = admin->list_groups("beta");
  REQUIRE(!no_topic.ok());
  CHECK(no_topic.err().code == wharf::errc::unknown_topic);

  // A survivor still works after its neighbours ended.
  std::promise<uint64_t> got;
  auto once = std::make_shared<std::once_flag>();
  a3.reset();
  auto a3b = join_group(*c2, "alpha", "survivor", [&](wharf::message m) {
    std::call_once(*once, [&] { got.set_value(m.offset()); });
    m.ack();
  });
  auto pub = admin->publish("alpha", {.payload = "still here"});
  REQUIRE(pub.ok());
  auto f = got.get_future();
  REQUIRE(f.wait_for(kEventTimeout) == std::future_status::ready);
  CHECK(f.get() == pub->offset);
}

// ---------------------------------------------------------------------------
// SDK edges found while writing the above
// ---------------------------------------------------------------------------

// Regression (client::impl::on_hello_ok): connect() was signalled before the
// known subscriptions were re-opened, so a subscribe() made right after
// connect() could be sent twice: two members on one connection.
TEST_CASE("groups: a subscribe right after connect joins the group once") {
  temp_dir dir;
  broker_process broker(dir.file("data"));
  REQUIRE(broker.start());
  auto admin = connect_to(broker);
  REQUIRE(admin->create_topic("race").ok());
  constexpr int kTries = 10;
  int doubled = 0, left_behind = 0;
  for (int i = 0; i < kTries; ++i) {
    std::string group = "g";
    group += std::to_string(i);
    REQUIRE(admin->create_group("race", group).ok());  // so every Subscribe joins at once
    wharf::client_options o;
    o.broker = broker.address();
    auto c = wharf::client::connect(o);
    REQUIRE(c.ok());
    auto s = (*c)->subscribe("race", group, [](wharf::message m) { m.ack(); });
    REQUIRE(s.ok());
    if (describe(*admin, "race", group).members.size() != 1) ++doubled;
    (*s)->close();
    // The client stays connected; its member must be gone.
    auto after = await_group(
        *admin, "race", group, [](auto& g) { return g.members.empty(); }, 500ms);
    if (!after.members.empty()) ++left_behind;
  }
  CAPTURE(kTries);
  CHECK(doubled == 0);
  CHECK(left_behind == 0);
}

// Regression (client::impl::unsubscribe): the subscription was forgotten
// before its queued acks were sent, so an ack made just before close() could
// be dropped.
TEST_CASE("groups: an ack made just before close() is not lost") {
  temp_dir dir;
  broker_process broker(dir.file("data"));
  REQUIRE(broker.start());
  auto admin = connect_to(broker);
  REQUIRE(admin->create_topic("tail").ok());
  auto consumer = connect_to(broker);
  constexpr uint64_t kTries = 20;
  uint64_t lost = 0;
  for (uint64_t i = 0; i < kTries; ++i) {
    REQUIRE(admin->publish("tail", {.payload = "x"}).ok());
    std::promise<wharf::message> got;
    auto once = std::make_shared<std::once_flag>();
    auto member = join_group(
        *consumer, "tail", "closer",
        [&](wharf::message m) { std::call_once(*once, [&] { got.set_value(m); }); },
        from_earliest());
    auto f = got.get_future();
    REQUIRE(f.wait_for(kEventTimeout) == std::future_status::ready);
    auto m = f.get();
    REQUIRE(m.offset() == i);
    m.ack();
    member->close();
    auto info = await_group(
        *admin, "tail", "closer", [&](auto& g) { return g.committed_offset == i + 1; }, 500ms);
    if (info.committed_offset != i + 1) {
      ++lost;
      // Finish it so the next round starts clean.
      auto fix = admin->reset_group("tail", "closer", wharf::start_position::at_offset(i + 1));
      REQUIRE(fix.ok());
    }
  }
  CAPTURE(kTries);
  CHECK(lost == 0);
}

// Regression (client::impl::close): close() used to close the socket at
// once, cancelling queued Ack frames, and unread bytes turned the close into
// a RST that made the broker drop Acks it had not read yet.
TEST_CASE("groups: acks made just before client::close() reach the broker") {
  temp_dir dir;
  broker_process broker(dir.file("data"));
  REQUIRE(broker.start());
  auto admin = connect_to(broker);
  REQUIRE(admin->create_topic("bye").ok());
  constexpr uint64_t kTries = 20;
  constexpr uint64_t kPerTry = 5;
  uint64_t short_rounds = 0;
  for (uint64_t i = 0; i < kTries; ++i) {
    publish_n(*admin, "bye", kPerTry, "b-");
    monitor mon;
    size_t handled = 0;
    auto consumer = connect_to(broker);
    wharf::subscribe_options o = from_earliest();
    o.max_in_flight = kPerTry;
    auto member = join_group(
        *consumer, "bye", "leaver",
        [&](wharf::message m) {
          m.ack();
          mon.update([&] { ++handled; });
        },
        o);
    REQUIRE(mon.wait([&] { return handled == kPerTry; }));
    consumer.reset();  // close(): every ack above was made before it
    member.reset();
    const uint64_t want = (i + 1) * kPerTry;
    auto info = await_group(
        *admin, "bye", "leaver", [&](auto& g) { return g.committed_offset == want; }, 500ms);
    if (info.committed_offset != want) {
      ++short_rounds;
      REQUIRE(admin->reset_group("bye", "leaver", wharf::start_position::at_offset(want)).ok());
    }
  }
  CAPTURE(kTries);
  CHECK(short_rounds == 0);
}
