// wharf-crash-loop: a Jepsen-style crash-loop checker for wharfd.
//
// A real wharfd (tests/support/process.h: loopback, ephemeral port, own data
// dir) runs with --retention-check-ms 20. Producers (one SDK client each)
// publish unique, self-verifying payloads (payload.h) asynchronously to a
// main topic and to a topic with a tiny retention_bytes, so trims run all
// the time, and record every outcome. Members of two consumer groups on the
// main topic (max_deliveries 0, so nothing is dead-lettered) record every
// delivery and ack it (the first delivery of --nack-percent of the offsets
// is nacked instead, so unfinished records are about at every kill).
// Meanwhile the nemesis runs a schedule drawn from --seed: per cycle, load
// for a random while (steady load, a burst of full publish load = heavy
// group commit, a burst aimed at the retention topic = trims in most
// commits, or right after the previous restart), optionally a SIGSTOP pause
// longer than the clients' request timeout (sometimes killed while
// stopped), then kill -9 and restart on the same port. The clients ride it out with the
// SDK's reconnect; publishes in flight fail with disconnected, timeout or
// unavailable ("unknown outcome").
//
// After the last cycle: let the load resume, stop the producers, publish one
// synchronous sentinel each, let both groups drain, read every topic from
// its earliest record with an ephemeral subscription and check (history.h):
// lost / corrupt acked records, records stored twice, gaps, group skips,
// redeliveries; finally SIGTERM must still stop wharfd with exit 0. Exit 0
// when clean, 1 when a check failed, 2 when the harness itself could not run.
//
// Everything is bounded: cycles by --cycles and --time-limit, every wait by
// a timeout. Random delays before a fault are the point; everything else
// waits on events (acks, deliveries), except group progress, which has no
// event and is polled with describe_group.
#include <signal.h>
#include <unistd.h>
#include <wharf/client.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "history.h"
#include "payload.h"
#include "process.h"

using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;
using wharf::fault::history;

namespace {

struct options {
  int cycles = 60;
  uint64_t seed = 0;
  int producers = 2;
  int members = 2;                                  // per group
  double rate = 3000;                               // records/s per producer between bursts
  uint32_t burst_min = 200000, burst_max = 500000;  // cap of a burst (all producers)
  uint32_t max_delay_ms = 1200;                     // longest steady load before a kill
  uint32_t request_timeout_ms = 1000;
  uint64_t retention_bytes = 16384;  // of the retention topic
  uint32_t retention_check_ms = 20;
  std::string fsync = "always";
  double pause_share = 0.3;     // cycles with a SIGSTOP pause
  uint32_t nack_percent = 2;    // offsets whose first delivery a member nacks
  uint32_t time_limit_s = 900;  // for the cycles; the checks come after
  uint32_t drain_timeout_s = 120;
  std::string keep_dir;  // keep data and broker log here
  bool quiet = false;
};

const std::vector<std::string> kTopics{"crash.main", "crash.trim"};
const std::vector<char> kTags{'m', 't'};
constexpr size_t kMain = 0, kTrim = 1;
const std::vector<std::string> kGroups{"ga", "gb"};
constexpr size_t kMaxOutstanding = 60000;  // per producer: unacked records in the SDK

double ms_since(steady::time_point t) {
  return std::chrono::duration<double, std::milli>(steady::now() - t).count();
}

// ---------------------------------------------------------------------------
// Clients
// ---------------------------------------------------------------------------

std::unique_ptr<wharf::client> connect_client(const std::string& address, const std::string& name,
                                              std::chrono::milliseconds request_timeout) {
  wharf::client_options o;
  o.broker = address;
  o.client_name = name;
  o.connect_timeout = 5s;
  o.request_timeout = request_timeout;
  o.reconnect_backoff_min = 20ms;
  o.reconnect_backoff_max = 250ms;
  auto c = wharf::client::connect(o);
  if (!c) {
    std::fprintf(stderr, "crash-loop: cannot connect %s: %s\n", name.c_str(),
                 c.err().to_string().c_str());
    return nullptr;
  }
  return std::move(*c);
}

/// The record published as (producer, seq) to `topic`: its payload, and a
/// key for every other one (payload.h).
struct outgoing {
  std::string payload, key;
  bool keyed = false;
  outgoing(uint32_t pid, size_t topic, uint32_t producer, uint64_t seq)
      : payload(wharf::fault::make_payload(pid, kTags[topic], producer, seq)) {
    if (auto k = wharf::fault::key_index(producer, seq)) {
      key = wharf::fault::key_name(*k);
      keyed = true;
    }
  }
  /// Points into this object: publish it before this goes away.
  wharf::record record() const {
    wharf::record r{.payload = payload};
    if (keyed) r.key = key;
    return r;
  }
};

/// Shared by the producers: the nemesis turns bursts on and off.
struct load_control {
  std::atomic<bool> stop{false};
  std::atomic<int64_t> burst_left{0};  // records to publish as fast as possible
  std::atomic<int> trim_percent{20};   // share of records for the retention topic

  bool take_burst() {
    if (burst_left.load(std::memory_order_relaxed) <= 0) return false;
    return burst_left.fetch_sub(1, std::memory_order_relaxed) > 0;
  }
};

class producer {
 public:
  producer(uint32_t id, std::unique_ptr<wharf::client> c, history& h, load_control& load,
           double rate, uint64_t seed, std::chrono::milliseconds request_timeout)
      : id_(id),
        client_(std::move(c)),
        h_(h),
        load_(load),
        rate_(rate),
        rng_(seed),
        request_timeout_(request_timeout) {}
  ~producer() {
    stop();
    client_.reset();  // runs the callbacks still pending, which use mu_ and cv_
  }

  void start() {
    thread_ = std::thread([this] { run(); });
  }
  void stop() {
    {
      std::lock_guard lk(mu_);
      stopping_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
  }
  wharf::client& client() { return *client_; }
  bool stuck() const { return stuck_; }

  /// After stop(): one synchronous publish to the main topic; true when acked.
  bool publish_sentinel() {
    uint64_t seq = seq_++;
    outgoing out(h_.pid(), kMain, id_, seq);
    h_.sent(id_, seq, kMain);
    auto r = client_->publish(kTopics[kMain], out.record());
    h_.completed(id_, seq, kMain, r);
    return r.ok();
  }

 private:
  void run() {
    const auto period = std::chrono::duration_cast<steady::duration>(
        std::chrono::duration<double>(1.0 / std::max(rate_, 1.0)));
    auto next_send = steady::now();
    while (seq_ < (uint64_t{1} << 39)) {
      bool burst = load_.take_burst();
      std::unique_lock lk(mu_);
      if (stopping_) break;
      if (!burst) {
        // Pacing between bursts (not synchronisation): wakes early on stop.
        auto now = steady::now();
        next_send = std::max(next_send + period, now - 50ms);
        if (next_send > now) {
          cv_.wait_until(lk, next_send, [&] { return stopping_; });
          if (stopping_) break;
        }
      } else {
        next_send = steady::now();
      }
      // Bound what the SDK holds for us; callbacks free room (an event).
      if (!cv_.wait_for(lk, request_timeout_ * 3 + 10s,
                        [&] { return stopping_ || outstanding_ < kMaxOutstanding; })) {
        stuck_ = true;  // callbacks stopped coming: reported at the end
        break;
      }
      if (stopping_) break;
      ++outstanding_;
      lk.unlock();
      size_t topic = static_cast<int>(rng_() % 100) < load_.trim_percent.load() ? kTrim : kMain;
      uint64_t seq = seq_++;
      outgoing out(h_.pid(), topic, id_, seq);
      h_.sent(id_, seq, topic);
      client_->publish_async(kTopics[topic], out.record(),
                             [this, seq, topic](const wharf::result<wharf::publish_ack>& r) {
                               h_.completed(id_, seq, topic, r);
                               {
                                 std::lock_guard g(mu_);
                                 --outstanding_;
                               }
                               cv_.notify_all();
                             });
    }
  }

  uint32_t id_;
  std::unique_ptr<wharf::client> client_;
  history& h_;
  load_control& load_;
  double rate_;
  std::mt19937_64 rng_;
  std::chrono::milliseconds request_timeout_;
  std::thread thread_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  size_t outstanding_ = 0;
  std::atomic<uint64_t> seq_{0};
  std::atomic<bool> stuck_{false};
};

/// Whether a member nacks the first delivery of `offset` to `group`: a
/// fixed share of offsets, the same whichever member gets it.
bool nack_first_delivery(size_t group, uint64_t offset, uint32_t percent) {
  return wharf::fault::splitmix64(offset * 2 + group) % 100 < percent;
}

/// One member of a consumer group on the main topic: records each delivery,
/// then acks it, except that the first delivery of a few offsets is nacked
/// (so delivered-but-unfinished records waiting for redelivery are about at
/// every kill, and a broker that counted one as finished would show a skip).
class member {
 public:
  member(size_t group, std::unique_ptr<wharf::client> c) : group_(group), client_(std::move(c)) {}
  bool join(history& h, uint32_t max_in_flight, uint32_t nack_percent) {
    wharf::subscribe_options o;
    o.start = wharf::start_position::earliest();
    o.max_in_flight = max_in_flight;
    auto sub = client_->subscribe(
        kTopics[kMain], kGroups[group_],
        [&h, g = group_, nack_percent](wharf::message m) {
          uint32_t n = h.delivered(g, m.offset(), m.payload());
          if (n == 1 && nack_first_delivery(g, m.offset(), nack_percent)) {
            h.nacked(g, m.offset());
            m.nack(std::chrono::milliseconds(m.offset() % 20));
            return;
          }
          h.acked(g, m.offset());
          m.ack();
        },
        o);
    if (!sub) {
      std::fprintf(stderr, "crash-loop: subscribe %s: %s\n", kGroups[group_].c_str(),
                   sub.err().to_string().c_str());
      return false;
    }
    sub_ = std::move(*sub);
    return true;
  }
  void leave() {
    if (sub_) sub_->close();
    sub_.reset();
    client_.reset();
  }

 private:
  size_t group_;
  std::unique_ptr<wharf::client> client_;
  std::unique_ptr<wharf::subscription> sub_;
};

// ---------------------------------------------------------------------------
// The nemesis schedule: drawn up front from the seed, so it is the same for
// the same seed whatever the timing.
// ---------------------------------------------------------------------------

enum class fault_kind { steady, burst, trim, early };

const char* name_of(fault_kind k) {
  switch (k) {
    case fault_kind::steady:
      return "steady";
    case fault_kind::burst:
      return "burst";
    case fault_kind::trim:
      return "trim";
    case fault_kind::early:
      return "early";
  }
  return "?";
}

struct cycle_plan {
  fault_kind kind = fault_kind::steady;
  uint32_t delay_ms = 0;       // load before the kill
  uint32_t burst_records = 0;  // burst and trim cycles
  bool pause = false;
  uint32_t pause_after_ms = 0;  // load before the SIGSTOP
  uint32_t pause_ms = 0;        // how long the broker stays stopped
  bool kill_while_paused = false;
};

std::vector<cycle_plan> make_schedule(const options& o) {
  std::mt19937_64 rng(o.seed);
  auto uniform = [&](uint32_t lo, uint32_t hi) {
    return static_cast<uint32_t>(lo + rng() % (uint64_t{hi} - lo + 1));
  };
  std::vector<cycle_plan> plan;
  std::vector<fault_kind> block;
  for (int i = 0; i < o.cycles; ++i) {
    if (block.empty()) {  // every kind once per four cycles, in random order
      block = {fault_kind::steady, fault_kind::burst, fault_kind::trim, fault_kind::early};
      std::shuffle(block.begin(), block.end(), rng);
    }
    cycle_plan c;
    c.kind = block.back();
    block.pop_back();
    switch (c.kind) {
      case fault_kind::steady:
        c.delay_ms = uniform(20, std::max<uint32_t>(o.max_delay_ms, 20));
        break;
      case fault_kind::burst:
        c.burst_records = uniform(o.burst_min, std::max(o.burst_min, o.burst_max));
        c.delay_ms = uniform(0, 200);
        break;
      case fault_kind::trim:
        c.burst_records = uniform(o.burst_min, std::max(o.burst_min, o.burst_max)) / 2;
        c.delay_ms = uniform(0, 400);
        break;
      case fault_kind::early:
        c.delay_ms = uniform(0, 200);
        break;
    }
    // A pause in about pause_share of the cycles, and always in the second
    // one, so that short runs include one.
    double draw = static_cast<double>(rng() % 1000) / 1000.0;
    c.pause = c.kind != fault_kind::early && (draw < o.pause_share || i == 1);
    if (c.pause) {
      c.pause_after_ms = uniform(0, 400);
      c.pause_ms = uniform(o.request_timeout_ms + 300, 2 * o.request_timeout_ms + 700);
      c.kill_while_paused = rng() % 4 == 0 && i != 1;
    }
    plan.push_back(c);
  }
  return plan;
}

std::string describe_plan(const cycle_plan& c) {
  std::ostringstream s;
  s << name_of(c.kind);
  if (c.burst_records) s << " burst=" << c.burst_records;
  if (c.pause) {
    s << " pause=" << c.pause_ms << "ms@+" << c.pause_after_ms << "ms";
    if (c.kill_while_paused) s << "(kill while stopped)";
  }
  if (!c.kill_while_paused) s << " kill@+" << c.delay_ms << "ms";
  return s.str();
}

void sleep_ms(uint32_t ms) {
  std::this_thread::sleep_for(std::chrono::milliseconds(ms));
}

/// Starts (or restarts) the broker, a few attempts.
bool start_broker(wharf::test::broker_process& b) {
  for (int attempt = 0; attempt < 3; ++attempt) {
    if (b.start()) return true;
    std::fprintf(stderr, "crash-loop: wharfd did not start (attempt %d)\n", attempt + 1);
  }
  return false;
}

// ---------------------------------------------------------------------------
// Read-back
// ---------------------------------------------------------------------------

wharf::fault::topic_read read_topic(wharf::client& c, const history& h, size_t topic,
                                    std::chrono::seconds timeout) {
  wharf::fault::topic_read r;
  auto before = c.describe_topic(kTopics[topic]);
  if (!before) {
    std::fprintf(stderr, "crash-loop: describe %s: %s\n", kTopics[topic].c_str(),
                 before.err().to_string().c_str());
    return r;
  }
  r.read_first = before->first_offset;
  uint64_t next = before->next_offset;
  r.key_at.assign(next - r.read_first, -1);
  std::mutex mu;
  std::condition_variable cv;
  uint64_t upto = r.read_first;  // one past the highest offset seen
  bool any = false;
  uint64_t last = 0;
  char tag = h.tag(topic);
  uint32_t pid = h.pid();
  wharf::subscribe_options o;
  o.start = wharf::start_position::earliest();
  o.max_in_flight = 20000;
  auto sub = c.subscribe(
      kTopics[topic],
      [&](wharf::message m) {
        auto id = wharf::fault::parse_payload(m.payload(), pid);
        std::lock_guard lk(mu);
        uint64_t off = m.offset();
        if (any && off <= last) ++r.out_of_order;
        any = true;
        last = std::max(last, off);
        if (off < r.read_first) {
          ++r.out_of_order;
        } else if (off >= next) {
          ++r.beyond_next;
        } else {
          int64_t& slot = r.key_at[off - r.read_first];
          if (slot != -1) {
            ++r.read_twice;
          } else {
            slot = id && id->tag == tag ? static_cast<int64_t>(id->key()) : -2;
          }
        }
        upto = std::max(upto, off + 1);
        cv.notify_all();
      },
      o);
  if (!sub) {
    std::fprintf(stderr, "crash-loop: read %s: %s\n", kTopics[topic].c_str(),
                 sub.err().to_string().c_str());
    return r;
  }
  {
    std::unique_lock lk(mu);
    r.complete = cv.wait_for(lk, timeout, [&] { return upto >= next; });
  }
  (*sub)->close();
  auto after = c.describe_topic(kTopics[topic]);
  r.first = after ? after->first_offset : before->first_offset;
  r.next = next;
  if (after && after->next_offset != next) {
    std::fprintf(stderr, "crash-loop: %s grew during the read (%lu -> %lu)\n",
                 kTopics[topic].c_str(), static_cast<unsigned long>(next),
                 static_cast<unsigned long>(after->next_offset));
  }
  return r;
}

// ---------------------------------------------------------------------------
// The run
// ---------------------------------------------------------------------------

struct cycle_stats {
  int kills = 0, pauses = 0, killed_paused = 0, no_progress = 0;
  int by_kind[4] = {0, 0, 0, 0};
  double restart_ms_max = 0, restart_ms_total = 0;
};

std::string errors_text(const std::map<wharf::errc, uint64_t>& errors) {
  std::string s;
  for (auto [code, n] : errors) {
    if (!s.empty()) s += ", ";
    s += std::string(wharf::to_string(code)) + " " + std::to_string(n);
  }
  return s.empty() ? "none" : s;
}

int run(const options& o, const std::string& command_line) {
  auto started = steady::now();
  const auto request_timeout = std::chrono::milliseconds(o.request_timeout_ms);
  std::printf(
      "wharf-crash-loop: seed %lu, %d cycles, %d producers, %zu groups x %d members, "
      "fsync %s, request timeout %u ms\n",
      static_cast<unsigned long>(o.seed), o.cycles, o.producers, kGroups.size(), o.members,
      o.fsync.c_str(), o.request_timeout_ms);
  std::printf("reproduce: %s\n", command_line.c_str());
  std::fflush(stdout);

  std::optional<wharf::test::temp_dir> tmp;
  std::string base;
  if (o.keep_dir.empty()) {
    tmp.emplace();
    base = tmp->path();
  } else {
    base = o.keep_dir;
    std::filesystem::create_directories(base);
  }
  wharf::test::broker_process broker(
      base + "/data",
      {"--retention-check-ms", std::to_string(o.retention_check_ms), "--fsync", o.fsync});
  auto save_log = [&] {
    if (o.keep_dir.empty()) return;
    std::ofstream(base + "/wharfd.log") << broker.log();
  };
  if (!start_broker(broker)) {
    std::fprintf(stderr, "crash-loop: wharfd does not start:\n%s\n", broker.log().c_str());
    return 2;
  }
  const std::string addr = broker.address();
  std::printf("broker %s (pid %d), data %s/data\n", addr.c_str(), broker.pid(), base.c_str());

  // Topics and groups.
  auto admin = connect_client(addr, "crash-admin", 10s);
  if (!admin) return 2;
  {
    auto main_topic =
        admin->create_topic(kTopics[kMain], {.retention_ms = 0, .retention_bytes = 0});
    auto trim_topic = admin->create_topic(
        kTopics[kTrim], {.retention_ms = 0, .retention_bytes = o.retention_bytes});
    if (!main_topic || !trim_topic) {
      std::fprintf(stderr, "crash-loop: create topics failed\n");
      return 2;
    }
    for (auto& g : kGroups) {
      wharf::group_options go;
      go.start = wharf::start_position::earliest();
      go.max_deliveries = 0;  // unlimited: nothing is dead-lettered
      go.ack_timeout = 5000ms;
      auto r = admin->create_group(kTopics[kMain], g, go);
      if (!r || r->max_deliveries != 0) {
        std::fprintf(stderr, "crash-loop: create group %s failed (%s)\n", g.c_str(),
                     r ? "max_deliveries is not 0" : r.err().to_string().c_str());
        return 2;
      }
    }
  }

  history h(static_cast<uint32_t>(getpid()), static_cast<uint32_t>(o.producers), kTags,
            static_cast<uint32_t>(kGroups.size()));

  // Consumers: different windows, so some members lag behind others.
  std::vector<std::unique_ptr<member>> members;
  const uint32_t windows[] = {1000, 64, 300, 2000};
  for (size_t g = 0; g < kGroups.size(); ++g) {
    for (int m = 0; m < o.members; ++m) {
      auto c = connect_client(addr, kGroups[g] + "-" + std::to_string(m), request_timeout);
      if (!c) return 2;
      members.push_back(std::make_unique<member>(g, std::move(c)));
      if (!members.back()->join(h, windows[(g * o.members + m) % 4], o.nack_percent)) return 2;
    }
  }

  // Producers.
  load_control load;
  std::vector<std::unique_ptr<producer>> producers;
  for (int p = 0; p < o.producers; ++p) {
    auto c = connect_client(addr, "producer-" + std::to_string(p), request_timeout);
    if (!c) return 2;
    producers.push_back(std::make_unique<producer>(static_cast<uint32_t>(p), std::move(c), h, load,
                                                   o.rate, wharf::fault::splitmix64(o.seed + p),
                                                   request_timeout));
  }
  for (auto& p : producers) p->start();

  // ---- the nemesis ----
  auto plan = make_schedule(o);
  cycle_stats cs;
  auto cycles_deadline = started + std::chrono::seconds(o.time_limit_s);
  bool broker_failed = false;
  for (size_t i = 0; i < plan.size(); ++i) {
    if (steady::now() > cycles_deadline) {
      std::printf("time limit of %u s reached after %d cycles\n", o.time_limit_s, cs.kills);
      break;
    }
    const cycle_plan& c = plan[i];
    uint64_t acks0 = h.acks_total(), fails0 = h.failures_total(), gacks0 = h.group_acks_total();
    // Load flows again (the clients reconnected), except for a kill right
    // after the restart.
    if (c.kind != fault_kind::early && !h.wait_acks(acks0 + 1, 15s)) ++cs.no_progress;
    bool killed = false;
    if (c.pause) {
      sleep_ms(c.pause_after_ms);
      broker.pause();
      ++cs.pauses;
      sleep_ms(c.pause_ms);  // longer than the request timeout: requests time out
      if (c.kill_while_paused) {
        broker.kill9();
        ++cs.killed_paused;
        killed = true;
      } else {
        broker.resume();
        uint64_t now_acks = h.acks_total();
        if (!h.wait_acks(now_acks + 1, 15s)) ++cs.no_progress;
      }
    }
    uint64_t burst_acks = 0, in_flight = 0;
    if (!killed) {
      switch (c.kind) {
        case fault_kind::steady:
        case fault_kind::early:
          sleep_ms(c.delay_ms);
          break;
        case fault_kind::burst:
        case fault_kind::trim: {
          load.trim_percent = c.kind == fault_kind::trim ? 80 : 20;
          uint64_t a = h.acks_total();
          load.burst_left = c.burst_records;
          // Kill once the burst is being committed, at a random moment.
          h.wait_acks(a + std::min<uint64_t>(2000, c.burst_records / 10), 10s);
          sleep_ms(c.delay_ms);
          burst_acks = h.acks_total() - a;
          break;
        }
      }
      in_flight = h.in_flight();
      broker.kill9();
    } else {
      in_flight = h.in_flight();
    }
    load.burst_left = 0;
    load.trim_percent = 20;
    ++cs.kills;
    ++cs.by_kind[static_cast<int>(c.kind)];
    auto restart_at = steady::now();
    if (!start_broker(broker)) {
      broker_failed = true;
      std::fprintf(stderr, "crash-loop: wharfd does not restart after cycle %zu\n", i + 1);
      break;
    }
    double restart_ms = ms_since(restart_at);
    cs.restart_ms_max = std::max(cs.restart_ms_max, restart_ms);
    cs.restart_ms_total += restart_ms;
    if (!o.quiet) {
      std::printf(
          "cycle %zu/%zu: %-50s acked +%lu (burst %lu), in flight at kill %lu, failed +%lu, "
          "group acks +%lu, restart %.0f ms\n",
          i + 1, plan.size(), describe_plan(c).c_str(),
          static_cast<unsigned long>(h.acks_total() - acks0),
          static_cast<unsigned long>(burst_acks), static_cast<unsigned long>(in_flight),
          static_cast<unsigned long>(h.failures_total() - fails0),
          static_cast<unsigned long>(h.group_acks_total() - gacks0), restart_ms);
      std::fflush(stdout);
    }
  }
  double cycles_s = ms_since(started) / 1000.0;

  // ---- final phase ----
  std::vector<std::string> liveness;
  if (broker_failed) {
    save_log();
    std::fprintf(
        stderr, "crash-loop: broker log tail:\n%s\n",
        broker.log().substr(broker.log().size() > 4000 ? broker.log().size() - 4000 : 0).c_str());
    return 2;
  }
  // The clients are back: acks flow again.
  if (!h.wait_acks(h.acks_total() + 1, 20s))
    liveness.push_back("publishing did not resume after the last restart");
  load.stop = true;
  for (auto& p : producers) p->stop();
  for (size_t p = 0; p < producers.size(); ++p) {
    if (producers[p]->stuck())
      liveness.push_back("producer " + std::to_string(p) + " saw its callbacks stop");
    auto f = producers[p]->client().flush(30s);
    if (!f) liveness.push_back("producer " + std::to_string(p) + " flush: " + f.err().to_string());
    // Each producer's client still works after everything: a synchronous
    // publish succeeds (a few tries: a reconnect may still be under way).
    bool ok = false;
    for (int attempt = 0; attempt < 5 && !ok; ++attempt) ok = producers[p]->publish_sentinel();
    if (!ok)
      liveness.push_back("producer " + std::to_string(p) + " cannot publish after the faults");
  }

  auto admin_info = admin->describe_topic(kTopics[kMain]);
  if (!admin_info) {
    std::fprintf(stderr, "crash-loop: describe after the run: %s\n",
                 admin_info.err().to_string().c_str());
    return 2;
  }
  const uint64_t next = admin_info->next_offset;
  auto drain_start = steady::now();
  auto drain_deadline = drain_start + std::chrono::seconds(o.drain_timeout_s);
  bool members_acked = h.wait_groups_acked(next, std::chrono::seconds(o.drain_timeout_s));
  std::vector<wharf::fault::group_final> finals;
  for (size_t g = 0; g < kGroups.size(); ++g) {
    wharf::fault::group_final gf;
    gf.name = kGroups[g];
    gf.topic = kMain;
    // Group progress has no event: poll describe_group, bounded.
    while (true) {
      auto r = admin->describe_group(kTopics[kMain], kGroups[g]);
      if (r) {
        gf.info = *r;
        gf.drained = r->committed_offset == next && r->pending == 0;
      }
      if (gf.drained || steady::now() > drain_deadline) break;
      std::this_thread::sleep_for(20ms);
    }
    finals.push_back(gf);
  }
  double drain_s = ms_since(drain_start) / 1000.0;
  if (!members_acked)
    liveness.push_back("the members did not ack every record within the drain timeout");
  for (auto& m : members) m->leave();
  // The final state, after the members left (acks they sent are in).
  for (auto& gf : finals) {
    auto r = admin->describe_group(kTopics[kMain], gf.name);
    if (r) gf.info = *r;
  }

  auto read_start = steady::now();
  std::vector<wharf::fault::topic_read> reads;
  for (size_t t = 0; t < kTopics.size(); ++t) reads.push_back(read_topic(*admin, h, t, 120s));
  double read_s = ms_since(read_start) / 1000.0;

  auto rep = wharf::fault::check(h, kTopics, {false, true}, reads, finals);

  // A clean stop still works after all that (SIGTERM: exit 0).
  producers.clear();
  admin.reset();
  int term = broker.stop(SIGTERM);
  if (term != 0) liveness.push_back("wharfd exited " + std::to_string(term) + " on SIGTERM, not 0");

  // ---- summary ----
  auto& pub = rep.publish;
  std::printf("\n==== wharf-crash-loop summary (seed %lu) ====\n",
              static_cast<unsigned long>(o.seed));
  std::printf(
      "cycles: %d kill -9 (steady %d, burst %d, trim %d, early %d), %d SIGSTOP pauses "
      "(%d killed while stopped), restart avg %.0f ms max %.0f ms\n",
      cs.kills, cs.by_kind[0], cs.by_kind[1], cs.by_kind[2], cs.by_kind[3], cs.pauses,
      cs.killed_paused, cs.kills ? cs.restart_ms_total / cs.kills : 0.0, cs.restart_ms_max);
  std::printf("time: cycles %.1f s, drain %.1f s, read-back %.1f s, total %.1f s\n", cycles_s,
              drain_s, read_s, ms_since(started) / 1000.0);
  std::printf("records: published %lu, acked %lu, unknown outcome %lu (%s), never completed %lu\n",
              static_cast<unsigned long>(pub.published), static_cast<unsigned long>(pub.acked),
              static_cast<unsigned long>(pub.unknown), errors_text(pub.errors).c_str(),
              static_cast<unsigned long>(pub.never_completed));
  for (auto& t : rep.topics) {
    std::printf(
        "topic %s: offsets [%lu, %lu), acked %lu, lost %lu, corrupt %lu, duplicated %lu, "
        "gaps %lu, foreign %lu%s, unknown outcome %lu (%lu stored)\n",
        t.name.c_str(), static_cast<unsigned long>(t.first), static_cast<unsigned long>(t.next),
        static_cast<unsigned long>(t.acked), static_cast<unsigned long>(t.lost),
        static_cast<unsigned long>(t.corrupt), static_cast<unsigned long>(t.duplicated),
        static_cast<unsigned long>(t.gaps), static_cast<unsigned long>(t.foreign),
        t.retention ? (", trimmed " + std::to_string(t.trimmed)).c_str() : "",
        static_cast<unsigned long>(t.unknown), static_cast<unsigned long>(t.unknown_stored));
    for (auto& e : t.examples) std::printf("  %s\n", e.c_str());
  }
  uint64_t lost = 0, corrupt = 0, duplicated = 0, gaps = 0, skips = 0, order = 0, redeliveries = 0;
  for (auto& t : rep.topics) {
    lost += t.lost;
    corrupt += t.corrupt + t.foreign + t.conflicting_acks;
    duplicated += t.duplicated;
    gaps += t.gaps;
  }
  for (auto& g : rep.groups) {
    std::printf(
        "group %s: committed %lu of %lu%s, delivered %lu offsets in %lu deliveries, "
        "redelivered %lu offsets (+%lu deliveries, %lu of them after a nack; broker "
        "counts %lu since its last start), skips %lu, key order violations %lu, wrong payload %lu, "
        "dead-lettered %lu\n",
        g.name.c_str(), static_cast<unsigned long>(g.committed), static_cast<unsigned long>(g.next),
        g.drained ? "" : " (NOT DRAINED)", static_cast<unsigned long>(g.delivered),
        static_cast<unsigned long>(g.deliveries), static_cast<unsigned long>(g.redelivered),
        static_cast<unsigned long>(g.redeliveries), static_cast<unsigned long>(g.nacked),
        static_cast<unsigned long>(g.broker_redeliveries), static_cast<unsigned long>(g.skips),
        static_cast<unsigned long>(g.order_violations), static_cast<unsigned long>(g.wrong_payload),
        static_cast<unsigned long>(g.dead_lettered));
    for (auto& e : g.examples) std::printf("  %s\n", e.c_str());
    skips += g.skips;
    order += g.order_violations;
    redeliveries += g.redeliveries;
    corrupt += g.wrong_payload + g.phantom;
  }
  if (cs.no_progress) {
    std::printf("note: %d times no publish was acked within 15 s after a restart or resume\n",
                cs.no_progress);
  }
  std::printf(
      "checks: lost %lu, corrupt %lu, duplicated %lu, gaps %lu, skips %lu, key order %lu; "
      "redeliveries %lu (allowed)\n",
      static_cast<unsigned long>(lost), static_cast<unsigned long>(corrupt),
      static_cast<unsigned long>(duplicated), static_cast<unsigned long>(gaps),
      static_cast<unsigned long>(skips), static_cast<unsigned long>(order),
      static_cast<unsigned long>(redeliveries));
  auto failures = rep.failures();
  failures.insert(failures.end(), liveness.begin(), liveness.end());
  for (auto& f : failures) std::printf("FAIL: %s\n", f.c_str());
  std::printf("result: %s (seed %lu)\n", failures.empty() ? "PASS" : "FAIL",
              static_cast<unsigned long>(o.seed));
  std::fflush(stdout);
  save_log();
  if (!failures.empty()) {
    std::string log = broker.log();
    std::fprintf(stderr, "crash-loop: broker log tail:\n%s\n",
                 log.substr(log.size() > 3000 ? log.size() - 3000 : 0).c_str());
  }
  return failures.empty() ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  signal(SIGPIPE, SIG_IGN);
  options o;
  CLI::App app{
      "wharf-crash-loop: kill -9 / SIGSTOP wharfd under load and check the log and the "
      "consumer groups (lost, corrupt, duplicated, gaps, skips)"};
  app.add_option("--cycles", o.cycles, "kill -9 + restart cycles")->check(CLI::Range(1, 100000));
  auto seed_opt = app.add_option("--seed", o.seed, "seed of the fault schedule (default: random)");
  app.add_option("--producers", o.producers, "producer clients")->check(CLI::Range(1, 64));
  app.add_option("--members", o.members, "members per consumer group")->check(CLI::Range(1, 16));
  app.add_option("--rate", o.rate, "records/s per producer between bursts")
      ->check(CLI::Range(1.0, 1e7));
  app.add_option("--burst-min", o.burst_min, "fewest records in a burst");
  app.add_option("--burst-max", o.burst_max, "most records in a burst");
  app.add_option("--max-delay-ms", o.max_delay_ms, "longest steady load before a kill");
  app.add_option("--request-timeout-ms", o.request_timeout_ms, "the clients' request timeout")
      ->check(CLI::Range(100u, 60000u));
  app.add_option("--retention-bytes", o.retention_bytes, "retention_bytes of the retention topic")
      ->check(CLI::Range(uint64_t{1}, uint64_t{1} << 40));
  app.add_option("--retention-check-ms", o.retention_check_ms, "wharfd --retention-check-ms");
  app.add_option("--fsync", o.fsync, "wharfd --fsync")
      ->check(CLI::IsMember({"always", "interval", "never"}));
  app.add_option("--pause-share", o.pause_share, "share of cycles with a SIGSTOP pause")
      ->check(CLI::Range(0.0, 1.0));
  app.add_option("--nack-percent", o.nack_percent,
                 "share of offsets (%) whose first delivery to a group is nacked")
      ->check(CLI::Range(0u, 50u));
  app.add_option("--time-limit", o.time_limit_s, "seconds for the cycles (then the checks run)");
  app.add_option("--drain-timeout", o.drain_timeout_s, "seconds for the groups to drain");
  app.add_option("--keep-dir", o.keep_dir, "keep the data dir and wharfd.log here");
  app.add_flag("--quiet", o.quiet, "no per-cycle lines");
  CLI11_PARSE(app, argc, argv);
  if (seed_opt->count() == 0) {
    std::random_device rd;
    o.seed = (uint64_t{rd()} << 32 | rd()) % 1000000000;
  }
  std::ostringstream cmd;
  cmd << argv[0] << " --seed " << o.seed << " --cycles " << o.cycles << " --producers "
      << o.producers << " --members " << o.members << " --rate " << o.rate << " --burst-min "
      << o.burst_min << " --burst-max " << o.burst_max << " --max-delay-ms " << o.max_delay_ms
      << " --request-timeout-ms " << o.request_timeout_ms << " --retention-bytes "
      << o.retention_bytes << " --retention-check-ms " << o.retention_check_ms << " --fsync "
      << o.fsync << " --pause-share " << o.pause_share << " --nack-percent " << o.nack_percent;
  try {
    return run(o, cmd.str());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "crash-loop: %s\n", e.what());
    return 2;
  }
}
