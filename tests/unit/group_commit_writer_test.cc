// group_commit_writer on a real LMDB store and a real uv loop: group commit
// (many ops, few transactions), dense per-topic offsets in submission order,
// topic create/alter/delete with log purge, groups, trims, unknown topics,
// a full map (appends fail with map_full, other ops of the round commit),
// flush/stop, and offsets continuing across a restart. Completions are
// awaited by running the loop until they arrived, bounded by a uv timer.
#include <doctest/doctest.h>

#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "process.h"
#include "storage/group_commit_writer.h"
#include "unit_support.h"
#include "wire.h"

using namespace wharf::storage;
using wharf::test::temp_dir;

namespace {

struct op_result {
  bool done = false;
  store_error error = store_error::ok;
  uint64_t base_offset = 0;   // appends
  uint64_t timestamp_us = 0;  // appends
  uint32_t count = 0;         // appends
  topic_state state;
  topic_config config;
  bool more = false;
};

/// A store in a temp dir, a uv loop, and a writer on them. Every op goes
/// through submit(), which records its outcome and the completion order.
struct writer_fixture {
  temp_dir dir;
  std::string path = dir.file("data");
  std::unique_ptr<log_store> store;
  uv_loop_t loop;
  std::unique_ptr<group_commit_writer> writer;
  std::vector<std::shared_ptr<op_result>> results;
  std::vector<size_t> completion_order;
  int rounds = 0;  // calls of the writer's after-completions hook

  explicit writer_fixture(uint64_t map_size = 256ull << 20, bool start_now = true)
      : map_size_(map_size) {
    REQUIRE(uv_loop_init(&loop) == 0);
    open_store();
    make_writer();
    if (start_now) start();
  }
  ~writer_fixture() {
    stop_writer();
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK(uv_loop_close(&loop) == 0);
    store.reset();
  }

  void open_store() {
    store_options o;
    o.data_dir = path;
    o.map_size = map_size_;
    o.fsync = fsync_policy::never;
    std::string error;
    store = log_store::open(o, error);
    INFO(error);
    REQUIRE(store);
  }
  void make_writer(std::vector<uint32_t> orphans = {}) {
    std::vector<std::pair<topic_config, topic_state>> topics;
    {
      auto t = store->begin_read();
      REQUIRE(t.ok());
      topics = t.load_topics();
    }
    writer = std::make_unique<group_commit_writer>(*store, &loop, topics, std::move(orphans), 0);
  }
  void start() {
    writer->start([this] { ++rounds; });
  }
  /// Stops the writer and lets the loop finish closing its handle.
  void stop_writer() {
    if (!writer) return;
    writer->stop();
    uv_run(&loop, UV_RUN_DEFAULT);
    writer.reset();
  }

  size_t submit(write_op_ptr op) {
    size_t index = results.size();
    auto r = std::make_shared<op_result>();
    results.push_back(r);
    op->done = [this, r, index](write_op& o) {
      r->done = true;
      r->error = o.error;
      r->state = o.state;
      r->config = o.config;
      r->more = o.more;
      if (o.data) {
        r->base_offset = o.data->base_offset;
        r->timestamp_us = o.data->timestamp_us;
        r->count = o.data->count;
      }
      completion_order.push_back(index);
    };
    writer->submit(std::move(op));
    return index;
  }
  size_t append(uint32_t topic_id, const std::vector<std::string>& payloads) {
    auto bytes = wharf::unit::make_payload_batch(payloads);
    auto op = std::make_unique<write_op>();
    op->what = write_op::kind::append;
    op->data = batch::copy_of(topic_id, static_cast<uint32_t>(payloads.size()), bytes);
    return submit(std::move(op));
  }
  size_t create_topic(const std::string& name, uint64_t retention_ms = 0,
                      uint64_t retention_bytes = 0) {
    auto op = std::make_unique<write_op>();
    op->what = write_op::kind::create_topic;
    op->config.name = name;
    op->config.retention_ms = retention_ms;
    op->config.retention_bytes = retention_bytes;
    return submit(std::move(op));
  }
  size_t delete_topic(uint32_t id, const std::string& name) {
    auto op = std::make_unique<write_op>();
    op->what = write_op::kind::delete_topic;
    op->config.id = id;
    op->config.name = name;
    return submit(std::move(op));
  }
  size_t save_group(uint32_t topic_id, const std::string& group, std::vector<uint8_t> value) {
    auto op = std::make_unique<write_op>();
    op->what = write_op::kind::save_group;
    op->topic_id = topic_id;
    op->group = group;
    op->value = std::move(value);
    return submit(std::move(op));
  }
  size_t trim(uint32_t topic_id, uint64_t keep_after_us, uint64_t max_bytes) {
    auto op = std::make_unique<write_op>();
    op->what = write_op::kind::trim;
    op->topic_id = topic_id;
    op->keep_after_us = keep_after_us;
    op->max_bytes = max_bytes;
    return submit(std::move(op));
  }

  bool wait_all() {
    return wharf::unit::run_until(&loop, [&] { return completion_order.size() == results.size(); });
  }
  op_result& operator[](size_t i) { return *results.at(i); }

  /// Creates a topic and waits for it; returns its id.
  uint32_t created(const std::string& name) {
    size_t i = create_topic(name);
    REQUIRE(wait_all());
    REQUIRE(results[i]->error == store_error::ok);
    return results[i]->config.id;
  }
  std::vector<std::pair<topic_config, topic_state>> stored_topics() {
    auto t = store->begin_read();
    return t.load_topics();
  }
  std::optional<topic_state> stored_state(uint32_t id) {
    for (auto& [c, s] : stored_topics()) {
      if (c.id == id) return s;
    }
    return std::nullopt;
  }

 private:
  uint64_t map_size_;
};

std::string big_payload(size_t n, char fill) {
  return std::string(n, fill);
}

/// "r12.3" and the like (appended rather than built with operator+, on which
/// GCC 12 gives a false -Wrestrict warning).
std::string label(const char* prefix, int n, int m = -1) {
  std::string s = prefix;
  s.append(std::to_string(n));
  if (m >= 0) s.append(".").append(std::to_string(m));
  return s;
}

}  // namespace

TEST_CASE("writer: create_topic assigns new ids and refuses an existing name") {
  writer_fixture f;
  uint64_t before = wharf::wire::now_us();
  size_t a = f.create_topic("orders", 60'000, 1 << 20);
  size_t b = f.create_topic("users");
  size_t again = f.create_topic("orders");
  REQUIRE(f.wait_all());
  CHECK(f[a].error == store_error::ok);
  CHECK(f[a].config.id == 1);
  CHECK(f[a].config.created_us >= before);
  CHECK(f[a].state.next_offset == 0);
  CHECK(f[b].error == store_error::ok);
  CHECK(f[b].config.id == 2);
  CHECK(f[again].error == store_error::exists);

  auto topics = f.stored_topics();
  REQUIRE(topics.size() == 2);
  std::map<std::string, topic_config> by_name;
  for (auto& [c, s] : topics) by_name[c.name] = c;
  CHECK(by_name["orders"].id == 1);
  CHECK(by_name["orders"].retention_ms == 60'000);
  CHECK(by_name["orders"].retention_bytes == 1 << 20);
  CHECK(by_name["users"].id == 2);
  CHECK(f.store->begin_read().next_topic_id() == 3);
}

TEST_CASE("writer: ops queued before it starts commit in one transaction") {
  writer_fixture f(256ull << 20, /*start_now=*/false);
  size_t create = f.create_topic("orders");  // fresh store: gets id 1
  size_t a0 = f.append(1, {"a", "b"});
  size_t unknown = f.append(99, {"lost"});
  size_t a1 = f.append(1, {"c"});
  size_t unknown_group = f.save_group(99, "g", {1});
  size_t group = f.save_group(1, "g", {2});
  f.start();
  REQUIRE(f.wait_all());
  CHECK(f.writer->stats().commits == 1);
  CHECK(f.rounds == 1);  // the after-completions hook runs once per round, not per op
  CHECK(f[create].error == store_error::ok);
  CHECK(f[a0].error == store_error::ok);
  CHECK(f[a0].base_offset == 0);
  CHECK(f[unknown].error == store_error::not_found);
  CHECK(f[a1].error == store_error::ok);
  CHECK(f[a1].base_offset == 2);  // the refused append left no hole
  CHECK(f[unknown_group].error == store_error::not_found);
  CHECK(f[group].error == store_error::ok);
  auto st = f.stored_state(1);
  REQUIRE(st);
  CHECK(st->next_offset == 3);
  auto t = f.store->begin_read();
  CHECK(t.load_groups(1).size() == 1);
  CHECK(t.load_groups(99).empty());
  CHECK(t.log_topic_ids() == std::vector<uint32_t>{1});
}

TEST_CASE("writer: many appends submitted while the writer is busy land in few commits") {
  writer_fixture f;
  uint32_t id = f.created("orders");
  uint64_t commits_before = f.writer->stats().commits;
  size_t first_op = f.results.size();

  constexpr int kOps = 500;
  std::vector<uint32_t> counts;
  std::vector<std::vector<std::string>> payloads;
  {
    // Hold LMDB's write lock so the writer's next transaction cannot start:
    // every op below queues up behind it, as behind a slow fsync.
    auto hold = f.store->begin_write();
    REQUIRE(hold.ok());
    for (int i = 0; i < kOps; ++i) {
      std::vector<std::string> p;
      for (int j = 0; j <= i % 3; ++j) p.push_back(label("r", i, j));
      counts.push_back(static_cast<uint32_t>(p.size()));
      payloads.push_back(p);
      f.append(id, p);
    }
    hold.abort();
  }
  REQUIRE(f.wait_all());
  uint64_t commits = f.writer->stats().commits - commits_before;
  INFO("commits for " << kOps << " appends: " << commits);
  CHECK(commits >= 1);
  CHECK(commits <= 2);  // the op the writer had taken, then everything behind it
  // Every commit is in the latency histogram.
  auto h = f.writer->stats().commit_latency.read();
  CHECK(h.count == f.writer->stats().commits);
  CHECK(h.cumulative.back() <= h.count);
  CHECK(h.sum_us > 0);

  // Dense offsets in submission order, completions in submission order,
  // timestamps never decreasing.
  uint64_t expected = 0, last_ts = 0;
  for (int i = 0; i < kOps; ++i) {
    auto& r = f[first_op + i];
    CHECK(r.error == store_error::ok);
    CHECK(r.base_offset == expected);
    CHECK(r.count == counts[i]);
    CHECK(r.timestamp_us >= last_ts);
    CHECK(r.state.next_offset == expected + counts[i]);
    expected += counts[i];
    last_ts = r.timestamp_us;
  }
  for (size_t i = 0; i < f.completion_order.size(); ++i) CHECK(f.completion_order[i] == i);
  CHECK(f.writer->stats().appended_records == expected);
  CHECK(f.writer->queued_bytes() == 0);

  // What the completions said is what LMDB holds.
  auto st = f.stored_state(id);
  REQUIRE(st);
  CHECK(st->next_offset == expected);
  CHECK(st->last_timestamp_us == last_ts);
  auto t = f.store->begin_read();
  for (int i = 0; i < kOps; i += 37) {
    auto& r = f[first_op + i];
    auto b = t.batch_at(id, r.base_offset + r.count - 1);
    REQUIRE(b);
    CHECK(b->base_offset == r.base_offset);
    CHECK(b->timestamp_us == r.timestamp_us);
    auto copy = batch::copy_of(id, b->count, b->data);
    auto rb = wharf::wire::verify_record_batch(copy->bytes());
    REQUIRE(rb);
    REQUIRE(rb->records()->size() == counts[i]);
    CHECK(wharf::unit::as_string(rb->records()->Get(0)->payload()) == payloads[i][0]);
  }
}

TEST_CASE("writer: offsets are dense per topic across topics and rounds") {
  writer_fixture f;
  uint32_t a = f.created("a");
  uint32_t b = f.created("b");
  std::mt19937 rng(7);
  std::map<uint32_t, uint64_t> next{{a, 0}, {b, 0}};
  std::vector<std::pair<size_t, uint32_t>> appends;  // (op index, topic)
  for (int wave = 0; wave < 10; ++wave) {
    for (int i = 0; i < 30; ++i) {
      uint32_t topic = rng() % 2 ? a : b;
      std::vector<std::string> p(1 + rng() % 4, "x");
      appends.emplace_back(f.append(topic, p), topic);
    }
    REQUIRE(f.wait_all());
  }
  for (auto [index, topic] : appends) {
    auto& r = f[index];
    REQUIRE(r.error == store_error::ok);
    CHECK(r.base_offset == next[topic]);
    next[topic] += r.count;
  }
  CHECK(f.stored_state(a)->next_offset == next[a]);
  CHECK(f.stored_state(b)->next_offset == next[b]);
}

TEST_CASE("writer: delete_topic removes the topic, its groups and its log") {
  writer_fixture f;
  uint32_t a = f.created("a");
  uint32_t b = f.created("b");
  for (int i = 0; i < 3; ++i) f.append(a, {label("a", i)});
  f.append(b, {"b0"});
  f.save_group(a, "g", {1, 2});
  f.save_group(b, "g", {3});
  REQUIRE(f.wait_all());

  size_t wrong_id = f.delete_topic(a, "b");
  size_t del = f.delete_topic(a, "a");
  size_t late_append = f.append(a, {"too late"});
  size_t again = f.delete_topic(a, "a");
  REQUIRE(f.wait_all());
  CHECK(f[wrong_id].error == store_error::not_found);
  CHECK(f[del].error == store_error::ok);
  CHECK(f[late_append].error == store_error::not_found);
  CHECK(f[again].error == store_error::not_found);

  {
    auto t = f.store->begin_read();
    auto topics = t.load_topics();
    REQUIRE(topics.size() == 1);
    CHECK(topics[0].first.name == "b");
    CHECK(t.load_groups(a).empty());
    CHECK(t.load_groups(b).size() == 1);
    CHECK(t.log_topic_ids() == std::vector<uint32_t>{b});
    CHECK_FALSE(t.batch_at(a, 0));
  }
  // The name can be used again; the id is new and offsets start over.
  size_t re = f.create_topic("a");
  REQUIRE(f.wait_all());
  REQUIRE(f[re].error == store_error::ok);
  CHECK(f[re].config.id == 3);
  size_t first = f.append(3, {"again"});
  REQUIRE(f.wait_all());
  CHECK(f[first].error == store_error::ok);
  CHECK(f[first].base_offset == 0);
}

TEST_CASE("writer: alter_topic rewrites the config of a live topic only") {
  writer_fixture f;
  uint32_t a = f.created("a");
  auto alter = [&](uint32_t id, const std::string& name, uint64_t ms) {
    auto op = std::make_unique<write_op>();
    op->what = write_op::kind::alter_topic;
    op->config.id = id;
    op->config.name = name;
    op->config.retention_ms = ms;
    return f.submit(std::move(op));
  };
  size_t ok = alter(a, "a", 5000);
  size_t missing = alter(42, "ghost", 1);
  REQUIRE(f.wait_all());
  CHECK(f[ok].error == store_error::ok);
  CHECK(f[missing].error == store_error::not_found);
  auto topics = f.stored_topics();
  REQUIRE(topics.size() == 1);
  CHECK(topics[0].first.retention_ms == 5000);
}

TEST_CASE("writer: save_group and delete_group persist group progress") {
  writer_fixture f;
  uint32_t a = f.created("a");
  size_t s1 = f.save_group(a, "billing", {1});
  size_t s2 = f.save_group(a, "billing", {1, 2, 3});  // the later value wins
  size_t s3 = f.save_group(a, "audit", {9});
  size_t unknown = f.save_group(77, "x", {1});
  REQUIRE(f.wait_all());
  CHECK(f[s1].error == store_error::ok);
  CHECK(f[s2].error == store_error::ok);
  CHECK(f[s3].error == store_error::ok);
  CHECK(f[unknown].error == store_error::not_found);
  {
    auto groups = f.store->begin_read().load_groups(a);
    REQUIRE(groups.size() == 2);
    CHECK(groups[1].first == "billing");
    CHECK(groups[1].second == std::vector<uint8_t>{1, 2, 3});
  }
  auto op = std::make_unique<write_op>();
  op->what = write_op::kind::delete_group;
  op->topic_id = a;
  op->group = "audit";
  size_t del = f.submit(std::move(op));
  REQUIRE(f.wait_all());
  CHECK(f[del].error == store_error::ok);
  auto groups = f.store->begin_read().load_groups(a);
  REQUIRE(groups.size() == 1);
  CHECK(groups[0].first == "billing");
}

TEST_CASE("writer: trim removes old batches and offsets carry on") {
  writer_fixture f;
  uint32_t a = f.created("a");
  std::vector<size_t> appends;
  for (int i = 0; i < 5; ++i) appends.push_back(f.append(a, {label("p", i), "q"}));
  REQUIRE(f.wait_all());

  size_t by_size = f.trim(a, 0, 1);
  REQUIRE(f.wait_all());
  CHECK(f[by_size].error == store_error::ok);
  CHECK_FALSE(f[by_size].more);
  CHECK(f[by_size].state.first_offset == 8);  // only the newest batch is left
  CHECK(f[by_size].state.next_offset == 10);

  size_t by_time = f.trim(a, wharf::wire::now_us() + 3'600'000'000ull, 0);
  REQUIRE(f.wait_all());
  CHECK(f[by_time].error == store_error::ok);
  CHECK(f[by_time].state.first_offset == 10);
  CHECK(f[by_time].state.bytes == 0);
  auto st = f.stored_state(a);
  REQUIRE(st);
  CHECK(st->first_offset == 10);
  CHECK(st->next_offset == 10);
  CHECK(f.store->begin_read().log_topic_ids().empty());

  size_t after = f.append(a, {"next"});
  size_t unknown = f.trim(99, 1, 0);
  REQUIRE(f.wait_all());
  CHECK(f[after].base_offset == 10);
  CHECK(f[unknown].error == store_error::not_found);
}

TEST_CASE("writer: a full map fails appends with map_full and other ops still commit") {
  writer_fixture f(1ull << 20);  // 1 MiB map
  uint32_t a = f.created("a");
  std::vector<size_t> ok;
  store_error failure = store_error::ok;
  for (int i = 0; i < 200 && failure == store_error::ok; ++i) {
    size_t op = f.append(a, {big_payload(32 * 1024, static_cast<char>('a' + i % 26))});
    REQUIRE(f.wait_all());
    failure = f[op].error;
    if (failure == store_error::ok) ok.push_back(op);
  }
  REQUIRE(failure == store_error::map_full);
  REQUIRE(ok.size() >= 2);

  // Everything acked before the failure is intact, and the failure left no hole.
  auto check_committed = [&] {
    auto st = f.stored_state(a);
    REQUIRE(st);
    CHECK(st->next_offset == ok.size());
    auto t = f.store->begin_read();
    for (size_t i = 0; i < ok.size(); ++i) {
      auto b = t.batch_at(a, i);
      REQUIRE(b);
      CHECK(b->base_offset == i);
      auto copy = batch::copy_of(a, b->count, b->data);
      auto rb = wharf::wire::verify_record_batch(copy->bytes());
      REQUIRE(rb);
      CHECK(wharf::unit::as_string(rb->records()->Get(0)->payload()) ==
            big_payload(32 * 1024, static_cast<char>('a' + i % 26)));
    }
  };
  check_committed();

  // One round holding an append and group progress: the append fails, the
  // group progress commits (a fresh writer, ops queued before it starts, so
  // they are certainly one round).
  f.stop_writer();
  f.make_writer();
  size_t append = f.append(a, {big_payload(32 * 1024, 'z')});
  size_t group = f.save_group(a, "g", {4, 2});
  f.start();
  REQUIRE(f.wait_all());
  CHECK(f[append].error == store_error::map_full);
  CHECK(f[group].error == store_error::ok);
  CHECK(f.store->begin_read().load_groups(a).size() == 1);
  check_committed();

  // Retention frees space; appends work again and continue the offsets.
  size_t trim = f.trim(a, 0, 1);
  REQUIRE(f.wait_all());
  CHECK(f[trim].error == store_error::ok);
  size_t small = f.append(a, {"small"});
  REQUIRE(f.wait_all());
  CHECK(f[small].error == store_error::ok);
  CHECK(f[small].base_offset == ok.size());
}

// Regression: appends used to take the map's last pages; retention trims
// then failed with map_full themselves (or freed pages that could not be
// reused), and the map stayed full for good.
TEST_CASE("writer: a map that small appends filled to the end can still be trimmed") {
  writer_fixture f(1ull << 20);  // 1 MiB map
  uint32_t a = f.created("a");
  uint64_t stored = 0;
  for (size_t size : {32u * 1024u, 100u}) {
    store_error failure = store_error::ok;
    for (int i = 0; i < 20000 && failure == store_error::ok; ++i) {
      size_t op = f.append(a, {big_payload(size, 'f')});
      REQUIRE(f.wait_all());
      failure = f[op].error;
      stored += failure == store_error::ok;
    }
    REQUIRE(failure == store_error::map_full);
  }
  size_t group = f.save_group(a, "g", {1, 2, 3});
  size_t trim = f.trim(a, 0, 64 * 1024);  // keep 64 KiB
  REQUIRE(f.wait_all());
  CHECK(f[group].error == store_error::ok);
  REQUIRE(f[trim].error == store_error::ok);
  CHECK(f.stored_state(a)->first_offset > 0);
  size_t again = f.append(a, {big_payload(32 * 1024, 'g')});
  REQUIRE(f.wait_all());
  CHECK(f[again].error == store_error::ok);
  CHECK(f[again].base_offset == stored);
}

TEST_CASE("writer: flush runs the completions of everything submitted") {
  writer_fixture f;
  uint32_t a = f.created("a");
  size_t before = f.completion_order.size();
  for (int i = 0; i < 10; ++i) f.append(a, {"x"});
  f.writer->flush();  // no loop run needed
  CHECK(f.completion_order.size() == before + 10);
  CHECK(f.results.back()->base_offset == 9);
  CHECK(f.writer->queued_bytes() == 0);
}

TEST_CASE("writer: stop applies what is queued and later submits fail with closed") {
  writer_fixture f;
  uint32_t a = f.created("a");
  std::vector<size_t> queued;
  for (int i = 0; i < 20; ++i) queued.push_back(f.append(a, {label("q", i)}));
  f.writer->stop();
  for (size_t i : queued) {
    CHECK(f[i].done);
    CHECK(f[i].error == store_error::ok);
  }
  size_t late = f.append(a, {"late"});
  CHECK(f[late].done);  // completed inside submit, without the loop
  CHECK(f[late].error == store_error::closed);
  CHECK(f.stored_state(a)->next_offset == 20);
}

TEST_CASE("writer: the log of a topic deleted before a restart is purged") {
  writer_fixture f(256ull << 20, /*start_now=*/false);
  {
    // A log with no topic metadata left, as after a crash mid-purge.
    auto w = f.store->begin_write();
    auto data = wharf::unit::make_payload_batch({"orphan"});
    for (uint64_t o = 0; o < 50; ++o) REQUIRE(w.put_batch(7, o, 1, 1, data) == store_error::ok);
    REQUIRE(w.commit() == store_error::ok);
  }
  f.stop_writer();  // never started; stop() still closes its loop handle
  f.make_writer({7});
  f.start();
  uint32_t a = f.created("a");  // completes after the first round, which purges
  f.writer->flush();
  auto t = f.store->begin_read();
  CHECK(t.log_topic_ids().empty());
  CHECK_FALSE(t.batch_at(7, 0));
  CHECK(a == 1);
}

TEST_CASE("writer: offsets and timestamps continue after a restart") {
  writer_fixture f;
  uint32_t a = f.created("a");
  size_t last = 0;
  for (int i = 0; i < 3; ++i) last = f.append(a, {"x", "y"});
  REQUIRE(f.wait_all());
  uint64_t last_ts = f[last].timestamp_us;
  f.stop_writer();
  f.store.reset();
  f.open_store();
  f.make_writer();
  f.start();
  size_t next = f.append(a, {"z"});
  size_t dup = f.create_topic("a");
  REQUIRE(f.wait_all());
  CHECK(f[next].error == store_error::ok);
  CHECK(f[next].base_offset == 6);
  CHECK(f[next].timestamp_us >= last_ts);
  CHECK(f[dup].error == store_error::exists);  // names are reloaded too
}
