// wharf-bench: one workload against a running broker, through the client SDK,
// modelled on the OpenMessaging Benchmark workloads.
//
// Producers (one connection each) publish records whose payload starts with
// {magic, producer, sequence, send time}; consumers (one connection each; C
// per group, or C ephemeral subscribers with --groups 0) check every record
// against what was acked, so the report counts loss and duplicates exactly,
// not by sampling. Latencies go into log-linear histograms (no sample lists).
// The run ends by itself; a topic the bench created is deleted afterwards.
#include <wharf/client.h>

#include <CLI/CLI.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <thread>
#include <unistd.h>

#include "../common/histogram.h"
#include "../common/json.h"

namespace {

using clock_type = std::chrono::steady_clock;
using wharf::tools::json_writer;
using wharf::tools::latency_histogram;

constexpr uint32_t kMagic = 0x57424e43;  // "WBNC"
constexpr size_t kHeaderBytes = 24;
constexpr size_t kRingBits = 20;         // send times kept per producer for ack latency

struct payload_header {
  uint32_t magic;
  uint32_t producer;
  uint64_t seq;
  uint64_t send_ns;  // steady clock, same process
};
static_assert(sizeof(payload_header) == kHeaderBytes);

uint64_t now_ns() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(clock_type::now().time_since_epoch()).count());
}

struct workload {
  std::string broker = "127.0.0.1:7700";
  std::string topic = "bench";
  int producers = 1;
  int consumers = 1;
  int groups = 1;
  size_t message_bytes = 100;
  uint64_t messages = 100000;
  double duration_s = 0;
  double rate = 0;
  uint64_t key_count = 0;
  bool sync = false;
  bool json = false;
  bool backlog = false;        // publish everything first, then consume from earliest
  uint32_t max_in_flight = 1000;
  double drain_timeout_s = 30;
  bool keep_topic = false;
};

/// Set of sequence numbers, one bit each.
struct seq_set {
  std::vector<uint64_t> bits;
  bool test_and_set(uint64_t seq) {
    size_t w = seq / 64;
    if (w >= bits.size()) bits.resize(std::max(w + 1, bits.size() * 2));
    uint64_t m = uint64_t{1} << (seq % 64);
    bool was = bits[w] & m;
    bits[w] |= m;
    return was;
  }
  bool test(uint64_t seq) const {
    size_t w = seq / 64;
    return w < bits.size() && (bits[w] >> (seq % 64) & 1);
  }
  uint64_t count() const {
    uint64_t n = 0;
    for (auto w : bits) n += static_cast<uint64_t>(__builtin_popcountll(w));
    return n;
  }
};

struct producer_state {
  latency_histogram ack_us;
  std::vector<uint64_t> send_ns = std::vector<uint64_t>(size_t{1} << kRingBits);
  seq_set acked;
  uint64_t sent = 0;
  std::atomic<uint64_t> acked_count{0};
  std::atomic<uint64_t> failed{0};
  std::mutex err_mu;
  std::string first_error;
  uint64_t last_ack_ns = 0;
};

struct consumer_state {
  latency_histogram e2e_us;
  std::vector<seq_set> seen;  // per producer
  std::atomic<uint64_t> received{0};
  uint64_t duplicates = 0;
  uint64_t foreign = 0;       // records not written by this run
  std::atomic<uint64_t> first_ns{0}, last_ns{0};
};

std::string fmt_rate(double v) {
  char b[32];
  if (v >= 1e6) std::snprintf(b, sizeof b, "%.2fM", v / 1e6);
  else if (v >= 1e3) std::snprintf(b, sizeof b, "%.1fk", v / 1e3);
  else std::snprintf(b, sizeof b, "%.0f", v);
  return b;
}

int fail(const std::string& msg) {
  std::fprintf(stderr, "wharf-bench: %s\n", msg.c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  workload w;
  CLI::App app{"wharf-bench - measure a Wharf broker (throughput, latency, loss)"};
  app.add_option("--broker", w.broker, "broker HOST:PORT")->capture_default_str();
  app.add_option("--topic", w.topic, "topic (created if missing, and then deleted at the end)")->capture_default_str();
  app.add_option("--producers", w.producers, "producer connections")->capture_default_str()->check(CLI::Range(0, 1000));
  app.add_option("--consumers", w.consumers, "consumers per group (or ephemeral subscribers with --groups 0)")
      ->capture_default_str()->check(CLI::Range(0, 1000));
  app.add_option("--groups", w.groups, "consumer groups")->capture_default_str()->check(CLI::Range(0, 100));
  app.add_option("--message-bytes", w.message_bytes, "payload size (at least 24)")->capture_default_str()
      ->check(CLI::Range(size_t{kHeaderBytes}, size_t{64} << 20));
  auto msgs = app.add_option("--messages", w.messages, "records to publish in total")->capture_default_str();
  auto dur = app.add_option("--duration", w.duration_s, "publish for this many seconds instead of --messages");
  msgs->excludes(dur);
  app.add_option("--rate", w.rate, "records/s over all producers, 0 = as fast as possible")->capture_default_str();
  app.add_option("--key-count", w.key_count, "distinct keys, 0 = no keys")->capture_default_str();
  app.add_flag("--sync", w.sync, "publish one record at a time and wait for each");
  app.add_flag("--json", w.json, "print one JSON object");
  app.add_flag("--backlog", w.backlog, "publish everything first, then consume it from earliest (catch-up)");
  app.add_option("--max-in-flight", w.max_in_flight, "consumer window")->capture_default_str();
  app.add_option("--drain-timeout", w.drain_timeout_s, "seconds to wait for consumers after publishing")->capture_default_str();
  app.add_flag("--keep-topic", w.keep_topic, "do not delete a topic the bench created");
  CLI11_PARSE(app, argc, argv);
  if (w.producers == 0 && !w.backlog) return fail("--producers 0 needs --backlog");

  wharf::client_options copts;
  copts.broker = w.broker;
  copts.client_name = "wharf-bench";
  // Keep unacked records within the ring of send times.
  copts.max_pending_bytes = std::min<size_t>(size_t{64} << 20, (size_t{1} << (kRingBits - 1)) * (w.message_bytes + 32));
  auto admin = wharf::client::connect(copts);
  if (!admin) return fail(admin.err().to_string());
  bool created_topic = false;
  if (auto d = (*admin)->describe_topic(w.topic); !d) {
    if (d.err().code != wharf::errc::unknown_topic) return fail(d.err().to_string());
    auto c = (*admin)->create_topic(w.topic, {.if_not_exists = true});
    if (!c) return fail(c.err().to_string());
    created_topic = true;
  }
  auto stats = (*admin)->stats();
  std::string fsync = stats ? stats->fsync : "?";
  std::string run_id = std::to_string(getpid()) + "-" + std::to_string(now_ns() % 100000);

  int n_subs = w.groups > 0 ? w.groups * w.consumers : w.consumers;
  int n_groups = w.groups > 0 ? w.groups : w.consumers;  // ephemeral subscribers each count as a group
  std::vector<std::unique_ptr<consumer_state>> cstates;
  std::vector<std::unique_ptr<wharf::client>> cclients;
  std::vector<std::unique_ptr<wharf::subscription>> subs;
  for (int i = 0; i < n_subs; ++i) {
    auto s = std::make_unique<consumer_state>();
    s->seen.resize(static_cast<size_t>(std::max(1, w.producers)));
    cstates.push_back(std::move(s));
  }
  auto start_consumers = [&](wharf::start_position from) -> int {
    for (int i = 0; i < n_subs; ++i) {
      auto c = wharf::client::connect(copts);
      if (!c) return fail(c.err().to_string());
      consumer_state* st = cstates[i].get();
      auto handler = [st](wharf::message m) {
        uint64_t now = now_ns();
        auto p = m.payload();
        payload_header h{};
        if (p.size() >= kHeaderBytes) std::memcpy(&h, p.data(), kHeaderBytes);
        if (h.magic != kMagic || h.producer >= st->seen.size()) {
          ++st->foreign;
          return;
        }
        if (st->seen[h.producer].test_and_set(h.seq)) ++st->duplicates;
        st->e2e_us.add(now > h.send_ns ? (now - h.send_ns) / 1000 : 0);
        uint64_t zero = 0;
        st->first_ns.compare_exchange_strong(zero, now);
        st->last_ns.store(now, std::memory_order_relaxed);
        st->received.fetch_add(1, std::memory_order_release);
      };
      wharf::subscribe_options o;
      o.start = from;
      o.max_in_flight = w.max_in_flight;
      o.auto_ack = true;
      auto sub = w.groups > 0 ? (*c)->subscribe(w.topic, "bench-" + run_id + "-g" + std::to_string(i / w.consumers), handler, o)
                              : (*c)->subscribe(w.topic, handler, o);
      if (!sub) return fail(sub.err().to_string());
      subs.push_back(std::move(*sub));
      cclients.push_back(std::move(*c));
    }
    return 0;
  };
  if (!w.backlog) {
    if (int rc = start_consumers(wharf::start_position::latest())) return rc;
  }

  // ---- publish ----
  std::vector<std::unique_ptr<producer_state>> pstates;
  for (int i = 0; i < w.producers; ++i) pstates.push_back(std::make_unique<producer_state>());
  uint64_t pub_start = now_ns();
  std::vector<std::thread> threads;
  std::atomic<int> producer_errors{0};
  for (int pi = 0; pi < w.producers; ++pi) {
    threads.emplace_back([&, pi] {
      producer_state& st = *pstates[pi];
      auto c = wharf::client::connect(copts);
      if (!c) {
        std::lock_guard lk(st.err_mu);
        st.first_error = c.err().to_string();
        producer_errors++;
        return;
      }
      uint64_t quota = w.messages / w.producers + (static_cast<uint64_t>(pi) < w.messages % w.producers ? 1 : 0);
      auto end = clock_type::now() + std::chrono::duration_cast<clock_type::duration>(std::chrono::duration<double>(w.duration_s));
      double interval_ns = w.rate > 0 ? 1e9 * w.producers / w.rate : 0;
      std::string payload(w.message_bytes, 'x');
      std::string key;
      const uint64_t mask = (uint64_t{1} << kRingBits) - 1;
      auto t0 = clock_type::now();
      for (uint64_t seq = 0;; ++seq) {
        if (w.duration_s > 0 ? clock_type::now() >= end : seq >= quota) break;
        if (interval_ns > 0) std::this_thread::sleep_until(t0 + std::chrono::nanoseconds(static_cast<int64_t>(seq * interval_ns)));
        payload_header h{kMagic, static_cast<uint32_t>(pi), seq, now_ns()};
        std::memcpy(payload.data(), &h, kHeaderBytes);
        wharf::record r{payload};
        if (w.key_count) {
          key = "k" + std::to_string((seq * w.producers + pi) % w.key_count);
          r.key = key;
        }
        st.send_ns[seq & mask] = h.send_ns;
        st.sent = seq + 1;
        auto on_ack = [s = &st, seq](const wharf::result<wharf::publish_ack>& res) {
          uint64_t now = now_ns();
          if (!res) {
            if (s->failed.fetch_add(1) == 0) {
              std::lock_guard lk(s->err_mu);
              s->first_error = res.err().to_string();
            }
            return;
          }
          s->ack_us.add((now - s->send_ns[seq & mask]) / 1000);
          s->acked.test_and_set(seq);
          s->last_ack_ns = now;
          s->acked_count.fetch_add(1, std::memory_order_relaxed);
        };
        if (w.sync) {
          on_ack((*c)->publish(w.topic, r));
        } else {
          (*c)->publish_async(w.topic, r, on_ack);
        }
      }
      if (auto f = (*c)->flush(std::chrono::seconds(120)); !f) {
        std::lock_guard lk(st.err_mu);
        if (st.first_error.empty()) st.first_error = f.err().to_string();
      }
      (*c)->close();
    });
  }
  for (auto& t : threads) t.join();
  uint64_t pub_end = pub_start;
  uint64_t acked = 0, failed = 0;
  for (auto& p : pstates) {
    acked += p->acked_count.load();
    failed += p->failed.load();
    pub_end = std::max(pub_end, p->last_ack_ns);
    if (!p->first_error.empty()) std::fprintf(stderr, "wharf-bench: producer error: %s\n", p->first_error.c_str());
  }
  double pub_secs = std::max(1e-9, (pub_end - pub_start) / 1e9);

  // ---- consume (wait until every group has every acked record) ----
  uint64_t cons_start = now_ns();
  if (w.backlog) {
    if (int rc = start_consumers(wharf::start_position::earliest())) return rc;
  }
  auto group_unique = [&](int g) {
    uint64_t n = 0;
    for (int i = 0; i < n_subs; ++i) {
      if ((w.groups > 0 ? i / w.consumers : i) == g) n += cstates[i]->received.load(std::memory_order_acquire);
    }
    return n;
  };
  {
    auto deadline = clock_type::now() + std::chrono::duration_cast<clock_type::duration>(std::chrono::duration<double>(w.drain_timeout_s));
    uint64_t last_total = 0;
    auto last_progress = clock_type::now();
    while (n_subs > 0 && clock_type::now() < deadline) {
      bool done = true;
      uint64_t total = 0;
      for (int g = 0; g < n_groups; ++g) {
        uint64_t n = group_unique(g);
        total += n;
        if (n < acked) done = false;
      }
      if (done) break;
      if (total != last_total) {
        last_total = total;
        last_progress = clock_type::now();
      } else if (clock_type::now() - last_progress > std::chrono::seconds(5)) {
        break;  // no progress for 5 s: report what is missing
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  }
  for (auto& s : subs) s->close();
  for (auto& c : cclients) c->close();

  // ---- check and report ----
  uint64_t lost = 0, duplicated = 0, received_total = 0, cons_first = UINT64_MAX, cons_last = 0;
  latency_histogram e2e, ack;
  for (auto& p : pstates) ack.merge(p->ack_us);
  for (int g = 0; g < n_groups; ++g) {
    std::vector<consumer_state*> members;
    for (int i = 0; i < n_subs; ++i) {
      if ((w.groups > 0 ? i / w.consumers : i) == g) members.push_back(cstates[i].get());
    }
    for (auto* m : members) {
      duplicated += m->duplicates;
      received_total += m->received.load();
      e2e.merge(m->e2e_us);
      if (m->first_ns) cons_first = std::min(cons_first, m->first_ns.load());
      cons_last = std::max(cons_last, m->last_ns.load());
    }
    for (int pi = 0; pi < w.producers; ++pi) {
      const seq_set& a = pstates[pi]->acked;
      for (uint64_t seq = 0; seq < pstates[pi]->sent; ++seq) {
        if (!a.test(seq)) continue;
        int seen = 0;
        for (auto* m : members) seen += m->seen[pi].test(seq) ? 1 : 0;
        if (seen == 0) ++lost;
        if (seen > 1) duplicated += static_cast<uint64_t>(seen - 1);
      }
    }
  }
  double cons_secs = std::max(1e-9, ((w.backlog ? cons_last : std::max(cons_last, pub_end)) -
                                     (w.backlog ? cons_start : pub_start)) / 1e9);
  if (cons_first == UINT64_MAX) cons_secs = 0;
  double pub_rate = acked / pub_secs;
  double pub_mb = acked * static_cast<double>(w.message_bytes) / pub_secs / 1e6;
  double cons_rate = cons_secs > 0 ? received_total / cons_secs : 0;

  if (created_topic && !w.keep_topic) {
    (*admin)->delete_topic(w.topic);
  } else if (w.groups > 0) {
    for (int g = 0; g < w.groups; ++g) (*admin)->delete_group(w.topic, "bench-" + run_id + "-g" + std::to_string(g));
  }

  auto pct = [](json_writer& j, const char* name, const latency_histogram& h) {
    j.key(name).begin_object()
        .field("p50", h.quantile(0.50)).field("p90", h.quantile(0.90)).field("p99", h.quantile(0.99))
        .field("p999", h.quantile(0.999)).field("max", h.max()).field("count", h.count()).end_object();
  };
  if (w.json) {
    json_writer j;
    j.begin_object()
        .field("publish_msgs_per_s", pub_rate).field("publish_mb_per_s", pub_mb).field("consume_msgs_per_s", cons_rate);
    pct(j, "e2e_latency_us", e2e);
    pct(j, "ack_latency_us", ack);
    j.field("lost", lost).field("duplicated", duplicated).field("published", acked).field("publish_failed", failed)
        .field("received", received_total).field("producers", w.producers).field("consumers", w.consumers)
        .field("groups", w.groups).field("message_bytes", static_cast<uint64_t>(w.message_bytes))
        .field("messages", w.duration_s > 0 ? acked : w.messages).field("duration_s", w.duration_s).field("rate", w.rate)
        .field("key_count", w.key_count).field("sync", w.sync).field("backlog", w.backlog)
        .field("max_in_flight", w.max_in_flight).field("broker_fsync", fsync).field("publish_seconds", pub_secs)
        .field("consume_seconds", cons_secs).end_object();
    std::printf("%s\n", j.str().c_str());
  } else {
    std::printf("workload: %d producers, %d groups x %d consumers, %zu-byte records, %s, rate %s, keys %lu, fsync=%s%s\n",
                w.producers, w.groups, w.consumers, w.message_bytes, w.sync ? "sync" : "async",
                w.rate > 0 ? fmt_rate(w.rate).c_str() : "max", w.key_count, fsync.c_str(), w.backlog ? ", backlog" : "");
    std::printf("publish:  %lu acked (%lu failed) in %.2fs = %s msgs/s, %.1f MB/s\n", acked, failed, pub_secs,
                fmt_rate(pub_rate).c_str(), pub_mb);
    std::printf("consume:  %lu received in %.2fs = %s msgs/s over all groups\n", received_total, cons_secs,
                fmt_rate(cons_rate).c_str());
    auto line = [](const char* name, const latency_histogram& h) {
      std::printf("%s p50 %lu  p90 %lu  p99 %lu  p99.9 %lu  max %lu us  (%lu samples)\n", name, h.quantile(0.5),
                  h.quantile(0.9), h.quantile(0.99), h.quantile(0.999), h.max(), h.count());
    };
    line("ack latency:", ack);
    line("e2e latency:", e2e);
    std::printf("check:    lost %lu, duplicated %lu\n", lost, duplicated);
  }
  (void)cons_start;
  return (lost > 0 || producer_errors > 0) ? 1 : 0;
}
