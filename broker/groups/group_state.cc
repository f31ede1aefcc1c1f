#include "group_state.h"

#include <algorithm>
#include <climits>

namespace wharf {

const char* to_string(failure_reason r) {
  switch (r) {
    case failure_reason::nack: return "nack";
    case failure_reason::ack_timeout: return "ack_timeout";
    case failure_reason::member_left: return "member_left";
  }
  return "?";
}

uint64_t key_hash(const uint8_t* data, size_t size) {
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < size; ++i) {
    h ^= data[i];
    h *= 1099511628211ull;
  }
  return h;
}

group_state::group_state(group_settings settings, uint64_t committed, const std::vector<offset_range>& finished)
    : settings_(settings), committed_(committed), dispatch_(committed) {
  // Keep the ranges above committed; they are applied as records are offered.
  for (auto [first, end] : finished) {
    first = std::max(first, committed_);
    if (first < end) restored_.push_back({first, end});
  }
  std::sort(restored_.begin(), restored_.end());
  // Merge overlaps (only damaged data has them) so counting stays exact.
  std::deque<offset_range> merged;
  for (auto& r : restored_) {
    if (!merged.empty() && r.first <= merged.back().second) {
      merged.back().second = std::max(merged.back().second, r.second);
    } else {
      merged.push_back(r);
    }
  }
  restored_.swap(merged);
  // A restored range starting at committed means committed is further on.
  while (!restored_.empty() && restored_.front().first <= committed_) {
    committed_ = dispatch_ = std::max(committed_, restored_.front().second);
    restored_.pop_front();
  }
}

// ---------------------------------------------------------------------------
// Members
// ---------------------------------------------------------------------------

void group_state::add_member(uint64_t id, uint32_t max_in_flight) {
  if (has_member(id)) return;
  members_.push_back({id, std::max<uint32_t>(1, max_in_flight)});
  free_credit_ += members_.back().free();
}

void group_state::remove_member(uint64_t id, bool graceful, const std::vector<uint64_t>* held) {
  auto it = std::find_if(members_.begin(), members_.end(), [&](auto& m) { return m.id == id; });
  if (it == members_.end()) return;
  // `held` comes from the client (up to a frame of offsets) and the window
  // holds up to kMaxWindow slots: look offsets up in a sorted copy, not by
  // scanning the list per slot, so a hostile list cannot stall the loop.
  std::vector<uint64_t> sorted_held;
  if (graceful && held) {
    sorted_held = *held;
    std::sort(sorted_held.begin(), sorted_held.end());
  }
  for (uint64_t i = 0; i < window_.size(); ++i) {
    slot& s = window_[i];
    if (s.st != status::in_flight || s.member != id) continue;
    uint64_t o = committed_ + i;
    bool processed = !graceful || std::binary_search(sorted_held.begin(), sorted_held.end(), o);
    if (processed) {
      fail(o, s, failure_reason::member_left, 0, 0);
    } else {
      uncount(o, s);
    }
  }
  free_credit_ -= it->free();
  members_.erase(it);
  if (!members_.empty()) rr_ %= members_.size();
  run_ = 0;
}

void group_state::set_member_paused(uint64_t id, bool paused) {
  for (auto& m : members_) {
    if (m.id != id || m.paused == paused) continue;
    free_credit_ -= m.free();
    m.paused = paused;
    free_credit_ += m.free();
  }
}

bool group_state::has_member(uint64_t id) const {
  return std::any_of(members_.begin(), members_.end(), [&](auto& m) { return m.id == id; });
}

uint32_t group_state::in_flight(uint64_t member) const {
  for (auto& m : members_) {
    if (m.id == member) return m.in_flight;
  }
  return 0;
}

group_state::member_rec* group_state::pick_member(uint64_t avoid) {
  size_t n = members_.size();
  if (n == 0) return nullptr;
  if (run_ >= run_limit_) {
    rr_ = (rr_ + 1) % n;
    run_ = 0;
  }
  member_rec* fallback = nullptr;
  for (size_t k = 0; k < n; ++k) {
    size_t idx = (rr_ + k) % n;
    member_rec& m = members_[idx];
    if (m.free() == 0) continue;
    if (m.id == avoid && n > 1) {  // a redelivery goes to someone else when it can
      if (!fallback) fallback = &m;
      continue;
    }
    if (idx != rr_) {
      rr_ = idx;
      run_ = 0;
    }
    if (run_ == 0) run_limit_ = static_cast<uint32_t>(std::clamp<uint64_t>(ready_count_ / n, 1, kMaxRun));
    ++run_;
    return &m;
  }
  return fallback;
}

// ---------------------------------------------------------------------------
// Reading and delivering
// ---------------------------------------------------------------------------

group_state::slot* group_state::find(uint64_t offset) {
  if (offset < committed_ || offset >= dispatch_) return nullptr;
  return &window_[offset - committed_];
}

const group_state::slot* group_state::find(uint64_t offset) const {
  if (offset < committed_ || offset >= dispatch_) return nullptr;
  return &window_[offset - committed_];
}

bool group_state::wants_records() const {
  return dispatch_ - committed_ < kMaxWindow && ready_count_ < free_credit_;
}

void group_state::offer(std::optional<uint64_t> key) {
  uint64_t o = dispatch_++;
  window_.emplace_back();
  slot& s = window_.back();
  while (!restored_.empty() && restored_.front().second <= o) restored_.pop_front();
  if (!restored_.empty() && restored_.front().first <= o) {
    s.st = status::finished;  // finished before a restart
    advance_committed();
    return;
  }
  if (key) {
    s.has_key = true;
    s.key_hash = *key;
    auto [it, inserted] = gates_.try_emplace(*key, gate{o, {}});
    if (!inserted) {
      it->second.waiting.push_back(o);
      s.st = status::waiting;
      return;
    }
  }
  s.st = status::ready;
  ++ready_count_;
  fresh_.push_back(o);
}

void group_state::make_ready(uint64_t offset, slot& s) {
  s.st = status::ready;
  ++ready_count_;
  retry_.push(offset);
}

std::optional<assignment> group_state::next_assignment(int64_t now_ms) {
  if (ready_count_ == 0 || free_credit_ == 0) return std::nullopt;
  auto valid = [&](uint64_t o) {
    const slot* s = find(o);
    return s && s->st == status::ready;
  };
  while (!retry_.empty() && !valid(retry_.top())) retry_.pop();
  while (!fresh_.empty() && !valid(fresh_.front())) fresh_.pop_front();
  bool from_retry = !retry_.empty() && (fresh_.empty() || retry_.top() < fresh_.front());
  if (!from_retry && fresh_.empty()) return std::nullopt;  // counts drifted; nothing is ready
  uint64_t o = from_retry ? retry_.top() : fresh_.front();
  slot& s = *find(o);
  member_rec* m = pick_member(s.attempts > 0 ? s.member : 0);
  if (!m) return std::nullopt;
  if (from_retry) {
    retry_.pop();
  } else {
    fresh_.pop_front();
  }
  --ready_count_;
  s.st = status::in_flight;
  s.member = m->id;
  s.deadline_ms = now_ms + settings_.ack_timeout_ms;
  if (s.attempts < UINT16_MAX) ++s.attempts;
  if (s.attempts == 1) {
    ++pending_;
  } else {
    ++redeliveries_;
    dirty_ = true;
  }
  ++m->in_flight;
  --free_credit_;  // m was not paused: it had credit
  ++in_flight_total_;
  ack_deadlines_.push_back({s.deadline_ms, o});
  std::push_heap(ack_deadlines_.begin(), ack_deadlines_.end(), std::greater<>());
  return assignment{m->id, o, s.attempts};
}

// ---------------------------------------------------------------------------
// Outcomes
// ---------------------------------------------------------------------------

void group_state::release_member(slot& s) {
  if (s.st != status::in_flight) return;
  for (auto& m : members_) {
    if (m.id == s.member) {
      if (!m.paused) ++free_credit_;
      --m.in_flight;
      break;
    }
  }
  --in_flight_total_;
}

void group_state::fail(uint64_t offset, slot& s, failure_reason why, uint32_t delay_ms, int64_t now_ms) {
  release_member(s);
  s.last_failure = why;
  if (settings_.max_deliveries != 0 && s.attempts >= settings_.max_deliveries) {
    s.st = status::dead;
    dead_.push_back({offset, s.attempts, why});
    return;
  }
  if (delay_ms > 0) {
    s.st = status::delayed;
    s.deadline_ms = now_ms + delay_ms;
    delays_.push({s.deadline_ms, offset});
  } else {
    make_ready(offset, s);
  }
}

void group_state::finish(uint64_t offset, slot& s) {
  release_member(s);
  if (s.st == status::ready) --ready_count_;
  if (s.attempts > 0) --pending_;
  s.st = status::finished;
  if (s.has_key) {
    auto it = gates_.find(s.key_hash);
    if (it != gates_.end() && it->second.holder == offset) {
      if (it->second.waiting.empty()) {
        gates_.erase(it);
      } else {
        uint64_t next = it->second.waiting.front();
        it->second.waiting.pop_front();
        it->second.holder = next;
        make_ready(next, *find(next));
      }
    }
  }
  dirty_ = true;
  advance_committed();
}

void group_state::advance_committed() {
  while (!window_.empty() && window_.front().st == status::finished) {
    window_.pop_front();
    ++committed_;
  }
}

bool group_state::ack(uint64_t offset) {
  slot* s = find(offset);
  if (!s || s->st == status::finished || s->st == status::waiting) return false;
  if (s->attempts == 0) return false;  // never delivered: an ack from before a reset
  finish(offset, *s);
  return true;
}

bool group_state::nack(uint64_t offset, uint32_t delay_ms, int64_t now_ms, uint64_t member) {
  slot* s = find(offset);
  if (!s || s->st != status::in_flight || (member != 0 && s->member != member)) return false;
  fail(offset, *s, failure_reason::nack, delay_ms, now_ms);
  return true;
}

void group_state::uncount(uint64_t offset, slot& s) {
  release_member(s);
  if (s.attempts > 1) --redeliveries_;
  if (--s.attempts == 0) --pending_;  // as if this delivery never happened
  make_ready(offset, s);
}

bool group_state::release(uint64_t offset, uint64_t member) {
  slot* s = find(offset);
  if (!s || s->st != status::in_flight || (member != 0 && s->member != member)) return false;
  uncount(offset, *s);
  return true;
}

void group_state::tick(int64_t now_ms) {
  while (!ack_deadlines_.empty() && ack_deadlines_.front().first <= now_ms) {
    auto [deadline, o] = ack_deadlines_.front();
    std::pop_heap(ack_deadlines_.begin(), ack_deadlines_.end(), std::greater<>());
    ack_deadlines_.pop_back();
    slot* s = find(o);
    if (s && s->st == status::in_flight && s->deadline_ms == deadline) {
      fail(o, *s, failure_reason::ack_timeout, 0, now_ms);
    }
  }
  while (!delays_.empty() && delays_.top().first <= now_ms) {
    auto [deadline, o] = delays_.top();
    delays_.pop();
    slot* s = find(o);
    if (s && s->st == status::delayed && s->deadline_ms == deadline) make_ready(o, *s);
  }
  compact_deadlines();
}

void group_state::compact_deadlines() {
  // Acked deliveries leave stale entries until their deadline passes; drop
  // them when they dominate so memory follows what is really in flight.
  if (ack_deadlines_.size() <= 2 * in_flight_total_ + 1024) return;
  std::vector<timed> live;
  for (auto& t : ack_deadlines_) {
    const slot* s = find(t.second);
    if (s && s->st == status::in_flight && s->deadline_ms == t.first) live.push_back(t);
  }
  std::make_heap(live.begin(), live.end(), std::greater<>());
  ack_deadlines_.swap(live);
}

int64_t group_state::next_deadline() const {
  int64_t next = INT64_MAX;
  if (!ack_deadlines_.empty()) next = ack_deadlines_.front().first;
  if (!delays_.empty()) next = std::min(next, delays_.top().first);
  return next;
}

void group_state::skip_to(uint64_t offset) {
  while (committed_ < offset && !window_.empty()) {
    slot& s = window_.front();
    if (s.st == status::waiting) {  // cannot happen (its holder is lower), kept for safety
      s.st = status::finished;
      advance_committed();
      ++expired_;
      continue;
    }
    ++expired_;
    finish(committed_, s);
  }
  if (committed_ < offset) {
    // Never offered: unfinished unless restored as finished before a restart.
    uint64_t gone = offset - dispatch_;
    for (auto& [first, end] : restored_) {
      uint64_t lo = std::max(first, dispatch_), hi = std::min(end, offset);
      if (lo < hi) gone -= hi - lo;
    }
    expired_ += gone;
    committed_ = dispatch_ = offset;
    while (!restored_.empty() && restored_.front().second <= offset) restored_.pop_front();
  }
  dirty_ = true;
}

// ---------------------------------------------------------------------------
// Dead letters, admin, persistence
// ---------------------------------------------------------------------------

std::vector<dead_letter> group_state::take_dead_letters() { return std::exchange(dead_, {}); }

void group_state::finish_dead_letter(uint64_t offset) {
  slot* s = find(offset);
  if (!s || s->st != status::dead) return;
  ++dead_lettered_;
  finish(offset, *s);
}

void group_state::retry_dead_letter(uint64_t offset) {
  slot* s = find(offset);
  if (s && s->st == status::dead) dead_.push_back({offset, s->attempts, s->last_failure});
}

void group_state::reset(uint64_t offset) {
  window_.clear();
  fresh_.clear();
  retry_ = {};
  ack_deadlines_.clear();
  delays_ = {};
  gates_.clear();
  dead_.clear();
  restored_.clear();
  free_credit_ = 0;
  for (auto& m : members_) {
    m.in_flight = 0;
    free_credit_ += m.free();
  }
  in_flight_total_ = 0;
  ready_count_ = 0;
  pending_ = 0;
  committed_ = dispatch_ = offset;
  dirty_ = true;
}

std::vector<offset_range> group_state::finished_ranges() const {
  std::vector<offset_range> out;
  for (uint64_t i = 0; i < window_.size(); ++i) {
    if (window_[i].st != status::finished) continue;
    uint64_t o = committed_ + i;
    if (!out.empty() && out.back().second == o) {
      out.back().second = o + 1;
    } else {
      out.push_back({o, o + 1});
    }
  }
  for (auto& r : restored_) {
    uint64_t first = std::max(r.first, dispatch_);
    if (first >= r.second) continue;
    if (!out.empty() && out.back().second == first) {
      out.back().second = r.second;
    } else {
      out.push_back({first, r.second});
    }
  }
  return out;
}

void group_state::set_settings(group_settings s) {
  settings_ = s;
  dirty_ = true;
}

}  // namespace wharf
