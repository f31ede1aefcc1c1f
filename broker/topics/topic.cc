#include "topic.h"

#include <algorithm>

#include "groups/consumer_group.h"
#include "subscriptions/subscription.h"

namespace wharf {

void tail_cache::append(storage::batch_ptr b) {
  if (!batches_.empty() && batches_.back()->end_offset() != b->base_offset) clear();
  bytes_ += b->memory_bytes();
  batches_.push_back(std::move(b));
}

storage::batch_ptr tail_cache::find(uint64_t offset) const {
  if (batches_.empty() || offset < batches_.front()->base_offset ||
      offset >= batches_.back()->end_offset()) {
    return nullptr;
  }
  // Batches are contiguous: binary search on base offsets.
  auto it = std::upper_bound(batches_.begin(), batches_.end(), offset,
                             [](uint64_t o, const storage::batch_ptr& b) { return o < b->base_offset; });
  return *std::prev(it);
}

size_t tail_cache::evict_oldest() {
  if (batches_.empty()) return 0;
  size_t n = batches_.front()->memory_bytes();
  batches_.pop_front();
  bytes_ -= n;
  return n;
}

size_t tail_cache::drop_before(uint64_t offset) {
  size_t freed = 0;
  while (!batches_.empty() && batches_.front()->end_offset() <= offset) freed += evict_oldest();
  return freed;
}

topic::~topic() = default;

void topic::remove_reader(subscription* s) {
  readers.erase(std::remove(readers.begin(), readers.end(), s), readers.end());
}

topic* topic_registry::find(std::string_view name) {
  auto it = by_name_.find(name);
  return it == by_name_.end() ? nullptr : it->second.get();
}

topic* topic_registry::find(uint32_t id) {
  auto it = by_id_.find(id);
  return it == by_id_.end() ? nullptr : it->second;
}

topic& topic_registry::add(storage::topic_config c, storage::topic_state s) {
  auto name = c.name;
  auto t = std::make_unique<topic>(std::move(c), s);
  topic& ref = *t;
  by_id_[ref.config.id] = &ref;
  by_name_[name] = std::move(t);
  return ref;
}

void topic_registry::remove(topic& t) {
  cached_bytes_ -= t.cache.bytes();
  by_id_.erase(t.config.id);
  by_name_.erase(t.config.name);
}

void topic_registry::cache_batch(topic& t, storage::batch_ptr b) {
  size_t before = t.cache.bytes();
  t.cache.append(std::move(b));
  cached_bytes_ = cached_bytes_ - before + t.cache.bytes();
  while (cached_bytes_ > cache_budget_ && t.cache.size() > 1) cached_bytes_ -= t.cache.evict_oldest();
}

void topic_registry::uncache_before(topic& t, uint64_t offset) {
  cached_bytes_ -= t.cache.drop_before(offset);
}

}  // namespace wharf
