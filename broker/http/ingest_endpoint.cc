#include "http/ingest_endpoint.h"

#include <algorithm>

namespace wharf::http {

ingest_endpoint::lookup ingest_endpoint::check(const std::string& id, int64_t now_s) {
  expire(now_s);
  auto it = ids_.find(id);
  if (it == ids_.end()) return {};
  return {it->second.state, it->second.offset};
}

void ingest_endpoint::begin(const std::string& id, int64_t timestamp_s) {
  entry& e = ids_[id];
  e.state = id_state::in_flight;
  e.timestamp_s = timestamp_s;
}

void ingest_endpoint::wait(const std::string& id, waiter w) {
  auto it = ids_.find(id);
  if (it != ids_.end() && it->second.state == id_state::in_flight)
    it->second.waiters.push_back(std::move(w));
}

void ingest_endpoint::finish(const std::string& id, const outcome& result, int64_t now_s) {
  auto it = ids_.find(id);
  if (it == ids_.end()) return;
  std::vector<waiter> waiters = std::move(it->second.waiters);
  if (result.ok) {
    entry& e = it->second;
    e.state = id_state::published;
    e.offset = result.offset;
    e.waiters.clear();
    e.expires_s = std::max(e.timestamp_s, now_s) + tolerance_s_;
    by_expiry_.emplace(e.expires_s, id);
    // Over the bound: forget the ids whose windows end first.
    while (by_expiry_.size() > kMaxRemembered) {
      ids_.erase(by_expiry_.begin()->second);
      by_expiry_.erase(by_expiry_.begin());
    }
  } else {
    ids_.erase(it);
  }
  for (auto& w : waiters) w(result);
}

void ingest_endpoint::expire(int64_t now_s) {
  while (!by_expiry_.empty() && by_expiry_.begin()->first < now_s) {
    ids_.erase(by_expiry_.begin()->second);
    by_expiry_.erase(by_expiry_.begin());
  }
}

}  // namespace wharf::http
