// tail_cache (contiguous recent batches, lookup by offset, eviction, drops
// after trims) and topic_registry (lookup by name and id, the cache budget,
// cached_bytes always equal to the sum of the topics' caches).
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "topics/topic.h"
#include "unit_support.h"

using wharf::tail_cache;
using wharf::topic;
using wharf::topic_registry;
using wharf::storage::batch;
using wharf::storage::batch_ptr;

namespace {

/// A committed batch of `count` records at `base` with `payload_bytes` per record.
batch_ptr make(uint32_t topic_id, uint64_t base, uint32_t count, size_t payload_bytes = 10) {
  std::vector<std::string> payloads(count, std::string(payload_bytes, 'p'));
  auto bytes = wharf::unit::make_payload_batch(payloads);
  auto b = batch::copy_of(topic_id, count, bytes);
  b->base_offset = base;
  b->timestamp_us = 1000 + base;
  return b;
}

size_t sum_of_caches(const topic_registry& r) {
  size_t n = 0;
  for (auto& [name, t] : r.all()) n += t->cache.bytes();
  return n;
}

}  // namespace

TEST_CASE("tail_cache: finds the batch holding an offset") {
  tail_cache c;
  CHECK(c.find(0) == nullptr);
  auto b0 = make(1, 0, 3), b1 = make(1, 3, 2), b2 = make(1, 5, 4);
  c.append(b0);
  c.append(b1);
  c.append(b2);
  CHECK(c.size() == 3);
  CHECK(c.bytes() == b0->memory_bytes() + b1->memory_bytes() + b2->memory_bytes());
  CHECK(c.find(0) == b0);
  CHECK(c.find(2) == b0);
  CHECK(c.find(3) == b1);
  CHECK(c.find(4) == b1);
  CHECK(c.find(5) == b2);
  CHECK(c.find(8) == b2);
  CHECK(c.find(9) == nullptr);
  CHECK(c.find(1000) == nullptr);
}

TEST_CASE("tail_cache: a batch that does not follow starts the cache over") {
  tail_cache c;
  c.append(make(1, 0, 3));
  c.append(make(1, 3, 2));
  auto far = make(1, 20, 2);
  c.append(far);
  CHECK(c.size() == 1);
  CHECK(c.bytes() == far->memory_bytes());
  CHECK(c.find(0) == nullptr);
  CHECK(c.find(4) == nullptr);
  CHECK(c.find(21) == far);
  // Going backwards is not following either.
  auto back = make(1, 10, 1);
  c.append(back);
  CHECK(c.size() == 1);
  CHECK(c.find(10) == back);
}

TEST_CASE("tail_cache: eviction and drop_before free what they remove") {
  tail_cache c;
  CHECK(c.evict_oldest() == 0);
  auto b0 = make(1, 0, 3), b1 = make(1, 3, 2, 500), b2 = make(1, 5, 4);
  c.append(b0);
  c.append(b1);
  c.append(b2);
  size_t total = c.bytes();

  CHECK(c.drop_before(2) == 0);  // b0 still holds offset 2
  CHECK(c.size() == 3);
  CHECK(c.drop_before(3) == b0->memory_bytes());
  CHECK(c.find(0) == nullptr);
  CHECK(c.find(3) == b1);
  CHECK(c.evict_oldest() == b1->memory_bytes());
  CHECK(c.bytes() == total - b0->memory_bytes() - b1->memory_bytes());
  CHECK(c.find(4) == nullptr);
  CHECK(c.find(5) == b2);
  CHECK(c.drop_before(100) == b2->memory_bytes());
  CHECK(c.size() == 0);
  CHECK(c.bytes() == 0);
}

TEST_CASE("topic_registry: topics are found by name and by id") {
  topic_registry r(1 << 20);
  auto& a = r.add({1, "orders", 0, 0, 0}, {0, 5, 100, 7});
  auto& b = r.add({2, "users", 0, 0, 0}, {});
  CHECK(r.find("orders") == &a);
  CHECK(r.find(std::string_view("users")) == &b);
  CHECK(r.find(1u) == &a);
  CHECK(r.find(2u) == &b);
  CHECK(r.find("nope") == nullptr);
  CHECK(r.find(3u) == nullptr);
  CHECK(a.state.next_offset == 5);
  CHECK(r.all().size() == 2);
  r.remove(a);
  CHECK(r.find("orders") == nullptr);
  CHECK(r.find(1u) == nullptr);
  CHECK(r.find("users") == &b);
}

TEST_CASE("topic_registry: the cache budget evicts old batches but keeps the newest") {
  auto probe = make(1, 0, 1, 1000);
  size_t one = probe->memory_bytes();
  topic_registry r(3 * one + one / 2);  // room for three such batches
  auto& t = r.add({1, "orders", 0, 0, 0}, {});
  for (uint64_t o = 0; o < 10; ++o) {
    r.cache_batch(t, make(1, o, 1, 1000));
    CHECK(r.cached_bytes() == sum_of_caches(r));
    CHECK(r.cached_bytes() <= 3 * one + one / 2);
  }
  CHECK(t.cache.size() == 3);
  CHECK(t.cache.find(9) != nullptr);
  CHECK(t.cache.find(7) != nullptr);
  CHECK(t.cache.find(6) == nullptr);

  // A batch bigger than the whole budget is still cached, alone.
  auto huge = make(1, 10, 1, 20 * 1000);
  r.cache_batch(t, huge);
  CHECK(t.cache.size() == 1);
  CHECK(t.cache.find(10) == huge);
  CHECK(r.cached_bytes() == huge->memory_bytes());
}

TEST_CASE("topic_registry: cached_bytes follows appends, restarts, trims and removal") {
  topic_registry r(64 << 20);
  auto& a = r.add({1, "a", 0, 0, 0}, {});
  auto& b = r.add({2, "b", 0, 0, 0}, {});
  for (uint64_t o = 0; o < 5; ++o) r.cache_batch(a, make(1, o * 2, 2));
  for (uint64_t o = 0; o < 3; ++o) r.cache_batch(b, make(2, o, 1, 100));
  CHECK(r.cached_bytes() == sum_of_caches(r));
  CHECK(a.cache.size() == 5);

  r.cache_batch(a, make(1, 50, 1));  // a gap: a's cache starts over
  CHECK(a.cache.size() == 1);
  CHECK(r.cached_bytes() == sum_of_caches(r));

  r.uncache_before(b, 2);
  CHECK(b.cache.size() == 1);
  CHECK(r.cached_bytes() == sum_of_caches(r));

  size_t b_bytes = b.cache.bytes();
  size_t before = r.cached_bytes();
  r.remove(a);
  CHECK(r.cached_bytes() == before - (before - b_bytes));
  CHECK(r.cached_bytes() == sum_of_caches(r));
}
