#include "history.h"

#include <sstream>
#include <unordered_map>
#include <utility>

#include "payload.h"

namespace wharf::fault {

namespace {

template <class T>
void grow(std::vector<T>& v, size_t index) {
  if (v.size() <= index) v.resize(std::max(index + 1, v.size() * 3 / 2 + 1024));
}

/// Makes room for `offset` in every per-offset vector of `g` (g.mu held).
void grow_group(history::group_log& g, uint64_t offset) {
  grow(g.deliveries, offset);
  grow(g.acks, offset);
  grow(g.key_at, offset);
  grow(g.first_delivered_at, offset);
  grow(g.first_acked_at, offset);
}

constexpr size_t kExamples = 5;

void example(std::vector<std::string>& out, const std::string& text) {
  if (out.size() < kExamples) out.push_back(text);
}

std::string key_text(uint64_t key) {
  return "producer " + std::to_string(key_producer(key)) + " seq " + std::to_string(key_seq(key));
}

}  // namespace

history::history(uint32_t pid, uint32_t producers, std::vector<char> topic_tags, uint32_t groups)
    : pid_(pid),
      tags_(std::move(topic_tags)),
      producers_(producers),
      topics_(tags_.size()),
      groups_(groups) {}

void history::sent(uint32_t producer, uint64_t seq, size_t topic) {
  auto& p = producers_[producer];
  std::lock_guard lk(p.mu);
  grow(p.state, seq);
  grow(p.topic, seq);
  p.state[seq] = outcome::sent;
  p.topic[seq] = static_cast<uint8_t>(topic);
  sent_total_.fetch_add(1);
}

void history::completed(uint32_t producer, uint64_t seq, size_t topic,
                        const result<publish_ack>& r) {
  auto& p = producers_[producer];
  {
    std::lock_guard lk(p.mu);
    if (seq >= p.state.size() || p.state[seq] != outcome::sent) {
      ++p.double_completions;
      return;
    }
    p.state[seq] = r ? outcome::acked : outcome::failed;
    if (!r) ++p.errors[r.err().code];
  }
  if (r) {
    auto& t = topics_[topic];
    {
      std::lock_guard lk(t.mu);
      grow(t.key_at, r->offset);
      if (t.key_at[r->offset] != 0) {
        ++t.conflicting_acks;
      } else {
        t.key_at[r->offset] = record_key(producer, seq) + 1;
      }
      ++t.acked;
    }
    acks_total_.fetch_add(1);
  } else {
    failures_total_.fetch_add(1);
  }
  notify_waiters();
}

uint32_t history::delivered(size_t group, uint64_t offset, std::string_view payload) {
  auto& g = groups_[group];
  auto id = parse_payload(payload, pid_);
  std::lock_guard lk(g.mu);
  grow_group(g, offset);
  uint32_t n = ++g.deliveries[offset];
  ++g.deliveries_total;
  if (n == 1) g.first_delivered_at[offset] = ++events_;
  if (!id) {
    ++g.unparsable;
    return n;
  }
  uint64_t k = id->key() + 1;
  if (g.key_at[offset] == 0) {
    g.key_at[offset] = k;
  } else if (g.key_at[offset] != k) {
    ++g.inconsistent;
    g.first_inconsistent_offset = std::min(g.first_inconsistent_offset, offset);
  }
  return n;
}

void history::acked(size_t group, uint64_t offset) {
  auto& g = groups_[group];
  bool advanced = false;
  {
    std::lock_guard lk(g.mu);
    grow_group(g, offset);
    if (++g.acks[offset] == 1) g.first_acked_at[offset] = ++events_;
    while (g.acked_prefix < g.acks.size() && g.acks[g.acked_prefix] > 0) {
      ++g.acked_prefix;
      advanced = true;
    }
  }
  group_acks_total_.fetch_add(1);
  if (advanced) notify_waiters();
}

void history::nacked(size_t group, uint64_t offset) {
  auto& g = groups_[group];
  std::lock_guard lk(g.mu);
  ++g.nacks_total;
}

void history::notify_waiters() {
  if (waiters_.load() == 0) return;
  std::lock_guard lk(wait_mu_);
  wait_cv_.notify_all();
}

bool history::wait_acks(uint64_t n, std::chrono::milliseconds timeout) {
  ++waiters_;
  std::unique_lock lk(wait_mu_);
  bool ok = wait_cv_.wait_for(lk, timeout, [&] { return acks_total_.load() >= n; });
  --waiters_;
  return ok;
}

bool history::wait_groups_acked(uint64_t next, std::chrono::milliseconds timeout) {
  auto all = [&] {
    for (auto& g : groups_) {
      std::lock_guard lk(g.mu);
      if (g.acked_prefix < next) return false;
    }
    return true;
  };
  ++waiters_;
  std::unique_lock lk(wait_mu_);
  bool ok = wait_cv_.wait_for(lk, timeout, all);
  --waiters_;
  return ok;
}

// ---------------------------------------------------------------------------
// The checker
// ---------------------------------------------------------------------------

report check(const history& h, const std::vector<std::string>& topic_names,
             const std::vector<bool>& topic_retention, const std::vector<topic_read>& reads,
             const std::vector<group_final>& groups) {
  report rep;

  // Publishes.
  auto& pub = rep.publish;
  for (size_t p = 0; p < h.producers(); ++p) {
    auto& log = h.producer(p);
    std::lock_guard lk(log.mu);
    for (auto s : log.state) {
      if (s == outcome::none) continue;
      ++pub.published;
      if (s == outcome::acked) ++pub.acked;
      if (s == outcome::failed) ++pub.unknown;
      if (s == outcome::sent) ++pub.never_completed;
    }
    pub.double_completions += log.double_completions;
    for (auto [code, n] : log.errors) {
      pub.errors[code] += n;
      if (code != errc::disconnected && code != errc::timeout && code != errc::unavailable) {
        pub.unexpected_errors += n;
      }
    }
  }

  // Topics.
  for (size_t t = 0; t < h.topics(); ++t) {
    const topic_read& r = reads[t];
    topic_report tr;
    tr.name = topic_names[t];
    tr.retention = topic_retention[t];
    tr.first = r.first;
    tr.next = r.next;
    tr.read_twice = r.read_twice;
    tr.out_of_order = r.out_of_order + r.beyond_next;
    tr.read_complete = r.complete;
    auto stored_at = [&](uint64_t o) -> int64_t {
      if (o < r.read_first || o - r.read_first >= r.key_at.size()) return -1;
      return r.key_at[o - r.read_first];
    };

    // Every stored record: ours, published to this topic, stored once.
    std::unordered_map<uint64_t, uint64_t> offset_of;  // key -> offset in the log
    offset_of.reserve(r.key_at.size());
    for (size_t i = 0; i < r.key_at.size(); ++i) {
      int64_t k = r.key_at[i];
      uint64_t o = r.read_first + i;
      if (k == -1) continue;
      if (k == -2) {
        ++tr.foreign;
        example(tr.examples,
                "offset " + std::to_string(o) + " holds a payload this run never made");
        continue;
      }
      uint64_t key = static_cast<uint64_t>(k);
      uint32_t p = key_producer(key);
      uint64_t seq = key_seq(key);
      bool published = false;
      if (p < h.producers()) {
        auto& log = h.producer(p);
        std::lock_guard lk(log.mu);
        published =
            seq < log.state.size() && log.state[seq] != outcome::none && log.topic[seq] == t;
      }
      if (!published) {
        ++tr.foreign;
        example(tr.examples, "offset " + std::to_string(o) + " holds " + key_text(key) +
                                 ", never published to this topic");
      }
      auto [it, fresh] = offset_of.emplace(key, o);
      if (!fresh) {
        ++tr.duplicated;
        example(tr.examples, key_text(key) + " stored at offsets " + std::to_string(it->second) +
                                 " and " + std::to_string(o));
      }
    }

    // Gaps: offsets are dense from 0, except that retention removes a
    // prefix (and must keep the newest record).
    const uint64_t checkable = tr.retention ? r.first : 0;
    for (uint64_t o = checkable; o < r.next; ++o) {
      if (stored_at(o) == -1) {
        if (tr.gaps++ == 0)
          example(tr.examples, "offset " + std::to_string(o) + " missing in the log");
      }
    }
    tr.newest_trimmed = tr.retention && r.next > 0 && r.first >= r.next;

    // Acked publishes.
    {
      auto& log = h.topic(t);
      std::lock_guard lk(log.mu);
      tr.acked = log.acked;
      tr.conflicting_acks = log.conflicting_acks;
      for (uint64_t o = 0; o < log.key_at.size(); ++o) {
        if (log.key_at[o] == 0) continue;
        uint64_t key = log.key_at[o] - 1;
        if (o < r.first && tr.retention) {
          ++tr.trimmed;
          continue;
        }
        int64_t k = o >= r.next ? -1 : stored_at(o);
        if (k == -1) {
          ++tr.lost;
          example(tr.examples, "lost: " + key_text(key) + " acked at offset " + std::to_string(o));
        } else if (k != static_cast<int64_t>(key)) {
          ++tr.corrupt;
          example(
              tr.examples,
              "corrupt: offset " + std::to_string(o) + " acked for " + key_text(key) + " holds " +
                  (k < 0 ? std::string("a foreign payload") : key_text(static_cast<uint64_t>(k))));
        }
      }
    }

    // Unknown outcomes: which made it into the log.
    for (size_t p = 0; p < h.producers(); ++p) {
      auto& log = h.producer(p);
      std::lock_guard lk(log.mu);
      for (uint64_t seq = 0; seq < log.state.size(); ++seq) {
        if (log.state[seq] != outcome::failed || log.topic[seq] != t) continue;
        ++tr.unknown;
        if (offset_of.count(record_key(static_cast<uint32_t>(p), seq))) ++tr.unknown_stored;
      }
    }
    rep.topics.push_back(std::move(tr));
  }

  // Groups.
  for (auto& gf : groups) {
    size_t gi = rep.groups.size();
    const topic_read& r = reads[gf.topic];
    group_report gr;
    gr.name = gf.name;
    gr.committed = gf.info.committed_offset;
    gr.next = r.next;
    gr.drained = gf.drained;
    gr.dead_lettered = gf.info.dead_lettered;
    gr.broker_redeliveries = gf.info.redeliveries;
    auto& log = h.group(gi);
    std::lock_guard lk(log.mu);
    for (uint64_t o = 0; o < log.deliveries.size(); ++o) {
      uint32_t d = log.deliveries[o];
      if (d == 0) continue;
      ++gr.delivered;
      gr.deliveries += d;
      if (d > 1) {
        ++gr.redelivered;
        gr.redeliveries += d - 1;
      }
      if (o < r.first || o >= r.next) {
        ++gr.phantom;
        example(gr.examples, "offset " + std::to_string(o) + " delivered but not in the log");
        continue;
      }
      if (log.key_at[o] == 0) continue;  // never parsable: counted as unparsable below
      int64_t k = o - r.read_first < r.key_at.size() ? r.key_at[o - r.read_first] : -1;
      if (k < 0 || static_cast<uint64_t>(k) != log.key_at[o] - 1) {
        ++gr.wrong_payload;
        example(gr.examples,
                "offset " + std::to_string(o) + " delivered with a payload unlike the log's");
      }
    }
    gr.nacked = log.nacks_total;
    gr.wrong_payload += log.inconsistent + log.unparsable;
    if (log.inconsistent) {
      example(gr.examples, "offset " + std::to_string(log.first_inconsistent_offset) +
                               " redelivered with another payload");
    }
    // Per-key order: the record before `o` with o's key was acked before o
    // was first delivered.
    std::vector<int64_t> previous(kRecordKeys, -1);  // key index -> offset
    auto at = [](const std::vector<uint64_t>& v, uint64_t o) { return o < v.size() ? v[o] : 0; };
    for (uint64_t o = r.read_first; o < r.read_first + r.key_at.size(); ++o) {
      int64_t k = r.key_at[o - r.read_first];
      if (k < 0) continue;
      auto ki =
          key_index(key_producer(static_cast<uint64_t>(k)), key_seq(static_cast<uint64_t>(k)));
      if (!ki) continue;
      int64_t p = std::exchange(previous[*ki], static_cast<int64_t>(o));
      uint64_t delivered = at(log.first_delivered_at, o);
      if (p < 0 || delivered == 0) continue;
      uint64_t acked = at(log.first_acked_at, static_cast<uint64_t>(p));
      if (acked == 0 || acked > delivered) {
        if (gr.order_violations++ < kExamples) {
          example(gr.examples, "order: offset " + std::to_string(o) + " (key " + key_name(*ki) +
                                   ") delivered before offset " + std::to_string(p) +
                                   " with the same key was acked");
        }
      }
    }
    // Skips: every offset below the committed one was acked by a member
    // (the groups read topics without retention).
    for (uint64_t o = 0; o < gr.committed; ++o) {
      if (o >= log.acks.size() || log.acks[o] == 0) {
        if (gr.skips++ < kExamples) {
          example(gr.examples,
                  "skip: offset " + std::to_string(o) + " below committed " +
                      std::to_string(gr.committed) + " was never acked (delivered " +
                      std::to_string(o < log.deliveries.size() ? log.deliveries[o] : 0) +
                      " times)");
        }
      }
    }
    rep.groups.push_back(std::move(gr));
  }
  return rep;
}

std::vector<std::string> report::failures() const {
  std::vector<std::string> out;
  auto add = [&](bool bad, const std::string& what) {
    if (bad) out.push_back(what);
  };
  add(publish.never_completed > 0,
      std::to_string(publish.never_completed) + " publishes never completed");
  add(publish.double_completions > 0,
      std::to_string(publish.double_completions) + " publish callbacks ran twice");
  add(publish.unexpected_errors > 0,
      std::to_string(publish.unexpected_errors) +
          " publishes failed with an error other than disconnected/timeout/unavailable");
  for (auto& t : topics) {
    add(t.lost > 0, t.name + ": " + std::to_string(t.lost) + " acked records lost");
    add(t.corrupt > 0,
        t.name + ": " + std::to_string(t.corrupt) + " acked offsets hold another payload");
    add(t.foreign > 0,
        t.name + ": " + std::to_string(t.foreign) + " stored records never published");
    add(t.duplicated > 0, t.name + ": " + std::to_string(t.duplicated) + " records stored twice");
    add(t.gaps > 0,
        t.name + ": " + std::to_string(t.gaps) + " offsets missing between first and next");
    add(t.conflicting_acks > 0,
        t.name + ": " + std::to_string(t.conflicting_acks) + " offsets acked to two publishes");
    add(t.newest_trimmed, t.name + ": retention removed the newest record");
    add(!t.read_complete, t.name + ": the read-back did not reach the topic's end");
    add(t.read_twice + t.out_of_order > 0,
        t.name + ": the read-back saw offsets twice or out of order");
  }
  for (auto& g : groups) {
    add(g.skips > 0,
        g.name + ": " + std::to_string(g.skips) + " offsets skipped (committed, never acked)");
    add(g.wrong_payload > 0,
        g.name + ": " + std::to_string(g.wrong_payload) + " deliveries with a wrong payload");
    add(g.order_violations > 0,
        g.name + ": " + std::to_string(g.order_violations) +
            " keyed records delivered before the previous one with their key was acked");
    add(g.phantom > 0,
        g.name + ": " + std::to_string(g.phantom) + " deliveries of offsets not in the log");
    add(!g.drained, g.name + ": did not drain (committed " + std::to_string(g.committed) + " of " +
                        std::to_string(g.next) + ")");
    add(g.dead_lettered > 0, g.name + ": " + std::to_string(g.dead_lettered) +
                                 " records dead-lettered although max_deliveries is 0");
  }
  return out;
}

bool report::failed() const {
  return !failures().empty();
}

}  // namespace wharf::fault
