// Acceptance 4: limits and refusals. Oversize records (too_large), unknown
// topics (unknown_topic), invalid names (invalid_name) through the SDK, the
// CLI and the raw protocol; a full LMDB map (storage_full) that keeps serving
// reads; auto-created topics.
#include <doctest/doctest.h>

#include <algorithm>
#include <fstream>
#include <string>

#include "integration_support.h"

using namespace wharf::test;
using namespace std::chrono_literals;
using wharf::errc;

TEST_CASE("too_large, unknown_topic and invalid_name through the SDK, the CLI and the wire") {
  temp_dir dir;
  broker_process broker(dir.file("data"), {"--max-message-bytes", "1024"});
  REQUIRE(broker.start());
  const auto addr = broker.address();
  auto c = connect_client(addr, [](wharf::client_options& o) { o.request_timeout = 3s; });
  REQUIRE(c->create_topic("small").ok());

  // ---- too_large: the limit counts key + headers + payload ----
  std::string at_limit(1024, 'x'), over(1025, 'y');
  auto ok = c->publish("small", {.payload = at_limit});
  REQUIRE_MESSAGE(ok.ok(), ok.err().to_string());
  CHECK(ok->offset == 0);
  CHECK(code_of(c->publish("small", {.payload = over})) == errc::too_large);
  CHECK(code_of(c->publish("small", {.payload = std::string(1000, 'p'),
                                     .key = std::string(100, 'k')})) == errc::too_large);
  auto fut = c->publish_future("small", {.payload = std::string(5000, 'z')});
  REQUIRE(fut.wait_for(10s) == std::future_status::ready);
  CHECK(code_of(fut.get()) == errc::too_large);
  std::string big_file = dir.file("big.bin");
  std::ofstream(big_file, std::ios::binary) << std::string(2048, 'f');
  auto cli_big = run_cli(addr, {"publish", "small", "--file", big_file});
  CHECK_MESSAGE(cli_failed_with(cli_big, "too_large"),
                "exit " << cli_big.exit_code << ": " << cli_big.err);

  // The broker checks too, whatever the client does: a raw Publish of an
  // oversize record is refused with too_large on a connection that stays usable.
  {
    raw_connection raw(broker.port());
    REQUIRE(raw.connected());
    REQUIRE(raw.send(hello_frame(1)));
    REQUIRE(raw.send(publish_frame(2, "small", {"fits", std::string(1025, 'r')})));
    REQUIRE(raw.send(publish_frame(3, "small", {"fits"})));
    auto frames = raw.read_frames(3, 10s);
    REQUIRE(frames.size() == 3);
    CHECK(frames[0].kind == wharf::wire::Body::HelloOk);
    CHECK(frames[1].request_id == 2);
    CHECK(frames[1].kind == wharf::wire::Body::Error);
    CHECK(frames[1].error == wharf::wire::ErrorCode::too_large);
    CHECK(frames[2].request_id == 3);
    CHECK(frames[2].kind == wharf::wire::Body::PublishAck);
  }
  // Refused batches stored nothing: only the two accepted records are there.
  auto info = c->describe_topic("small");
  REQUIRE(info.ok());
  CHECK(info->next_offset == 2);
  auto stored = read_from_earliest(*c, "small", 2);
  CHECK(stored == std::vector<seen_record>{{0, at_limit}, {1, "fits"}});

  // ---- unknown_topic ----
  CHECK(code_of(c->publish("missing", {.payload = "x"})) == errc::unknown_topic);
  auto fut2 = c->publish_future("missing", {.payload = "x"});
  REQUIRE(fut2.wait_for(10s) == std::future_status::ready);
  CHECK(code_of(fut2.get()) == errc::unknown_topic);
  CHECK(code_of(c->describe_topic("missing")) == errc::unknown_topic);
  CHECK(code_of(c->subscribe("missing", [](wharf::message) {})) == errc::unknown_topic);
  CHECK(code_of(c->delete_topic("missing")) == errc::unknown_topic);
  auto cli_pub = run_cli(addr, {"publish", "missing"}, "x\n");
  CHECK_MESSAGE(cli_failed_with(cli_pub, "unknown_topic"), cli_pub.err);
  auto cli_desc = run_cli(addr, {"topics", "describe", "missing"});
  CHECK_MESSAGE(cli_failed_with(cli_desc, "unknown_topic"), cli_desc.err);
  auto listed = c->list_topics();
  REQUIRE(listed.ok());
  CHECK(listed->size() == 1);  // no auto-create by default

  // ---- invalid_name: 1-200 characters of [A-Za-z0-9._-] ----
  for (std::string bad : {std::string(), std::string("has space"), std::string("slash/name"),
                          std::string("star*"), std::string("ünï"), std::string(201, 'a'),
                          std::string(201, 'a') + ".dlq", std::string(200, 'a') + ".dlq.dlq"}) {
    CAPTURE(bad);
    CHECK(code_of(c->create_topic(bad)) == errc::invalid_name);
    CHECK(code_of(c->publish(bad, {.payload = "x"})) == errc::invalid_name);
  }
  CHECK(c->create_topic(std::string(200, 'a')).ok());
  // The dead-letter topic of a 200-character name can be made ahead of time.
  CHECK(c->create_topic(std::string(200, 'a') + ".dlq").ok());
  CHECK(c->create_topic("A-z_0.9").ok());
  auto cli_create = run_cli(addr, {"topics", "create", "no spaces allowed"});
  CHECK_MESSAGE(cli_failed_with(cli_create, "invalid_name"), cli_create.err);
  auto cli_create2 = run_cli(addr, {"topics", "create", std::string(201, 'b')});
  CHECK_MESSAGE(cli_failed_with(cli_create2, "invalid_name"), cli_create2.err);
  auto cli_pub2 = run_cli(addr, {"publish", "bad$name"}, "x\n");
  CHECK_MESSAGE(cli_failed_with(cli_pub2, "invalid_name"), cli_pub2.err);

  c.reset();
  CHECK(broker.stop() == 0);
}

TEST_CASE("storage_full when the LMDB map is full, and reads keep working") {
  temp_dir dir;
  broker_process broker(dir.file("data"), {"--map-size", "2MiB"});
  REQUIRE(broker.start());
  const auto addr = broker.address();
  auto c = connect_client(addr, [](wharf::client_options& o) { o.request_timeout = 5s; });
  REQUIRE(c->create_topic("fill").ok());

  auto acked = fill_until_full(*c, "fill");
  REQUIRE_FALSE(acked.empty());
  CHECK(acked.size() > 100);  // something fit before the map filled up
  CHECK(acked.rbegin()->first == acked.size() - 1);

  // Still full: later publishes fail the same way, asynchronously too.
  CHECK(code_of(c->publish("fill", {.payload = std::string(1000, 'q')})) == errc::storage_full);
  auto fut = c->publish_future("fill", {.payload = std::string(1000, 'q')});
  REQUIRE(fut.wait_for(10s) == std::future_status::ready);
  CHECK(code_of(fut.get()) == errc::storage_full);
  auto cli_pub = run_cli(addr, {"publish", "fill"}, std::string(1000, 'c') + "\n");
  CHECK_MESSAGE(cli_failed_with(cli_pub, "storage_full"), cli_pub.err);

  // Reads are served: describe and consume from earliest see exactly what was acked.
  auto info = c->describe_topic("fill");
  REQUIRE(info.ok());
  CHECK(info->first_offset == 0);
  CHECK(info->next_offset == acked.size());
  CHECK(info->records == acked.size());
  auto desc = run_cli(addr, {"--json", "topics", "describe", "fill"});
  CHECK(desc.exit_code == 0);
  CHECK(json_u64(desc.out, "next_offset") == acked.size());
  auto records = read_from_earliest(*c, "fill", acked.size());
  REQUIRE(records.size() == acked.size());
  size_t bad = 0;
  for (auto& r : records) bad += !acked.count(r.offset) || acked[r.offset] != r.payload;
  CHECK(bad == 0);
  auto cli_con =
      run_cli(addr, {"--timeout", "20", "consume", "fill", "--from", "earliest", "--count", "3"});
  CHECK(cli_con.exit_code == 0);
  CHECK(lines(cli_con.out) == std::vector<std::string>{acked[0], acked[1], acked[2]});
  auto listed = c->list_topics();
  CHECK(listed.ok());

  // Acked data survives a restart of the full store.
  c.reset();
  CHECK(broker.stop() == 0);
  REQUIRE(broker.start());
  auto c2 = connect_client(addr);
  auto again = c2->describe_topic("fill");
  REQUIRE(again.ok());
  CHECK(again->next_offset == acked.size());
  auto records2 = read_from_earliest(*c2, "fill", acked.size());
  CHECK(records2 == records);
  CHECK(code_of(c2->publish("fill", {.payload = std::string(1000, 'r')})) == errc::storage_full);

  c2.reset();
  CHECK(broker.stop() == 0);
}

// Known bug: when the map is full, the writer's retry without appends
// (group_commit_writer::commit_group) fails again, but non-append ops keep
// the ok status from their second apply(), so delete_topic / create_topic
// are acknowledged although their transaction was rolled back.
TEST_CASE("storage_full: delete_topic and create_topic tell the truth when the map is full") {
  temp_dir dir;
  broker_process broker(dir.file("data"), {"--map-size", "2MiB"});
  REQUIRE(broker.start());
  const auto addr = broker.address();
  auto c = connect_client(addr, [](wharf::client_options& o) { o.request_timeout = 5s; });
  REQUIRE(c->create_topic("fill").ok());
  auto acked = fill_until_full(*c, "fill");
  REQUIRE_FALSE(acked.empty());
  auto topic_names = [](wharf::client& cl) {
    std::vector<std::string> names;
    auto l = cl.list_topics();
    REQUIRE(l.ok());
    for (auto& t : *l) names.push_back(t.name);
    std::sort(names.begin(), names.end());
    return names;
  };

  // Either the delete fails with storage_full and nothing changes, or it
  // succeeds and stays done across a restart.
  auto del = c->delete_topic("fill");
  if (!del) CHECK_MESSAGE(del.err().code == errc::storage_full, del.err().to_string());
  const bool deleted = del.ok();
  // Same for a create: a topic the broker reports as created accepts
  // publishes (or says storage_full), and exists after a restart.
  auto created = c->create_topic("fresh");
  if (!created) CHECK_MESSAGE(created.err().code == errc::storage_full, created.err().to_string());
  if (created) {
    auto r = c->publish("fresh", {.payload = "x"});
    if (!r)
      CHECK_MESSAGE(r.err().code == errc::storage_full,
                    "publish to fresh: " << r.err().to_string());
  }
  std::vector<std::string> expected;
  if (created) expected.push_back("fresh");
  if (!deleted) expected.push_back("fill");
  CHECK(topic_names(*c) == expected);

  c.reset();
  REQUIRE(broker.stop() == 0);
  REQUIRE(broker.start());
  auto c2 = connect_client(addr);
  auto join = [](const std::vector<std::string>& v) {
    std::string out;
    for (auto& n : v) out += (out.empty() ? "" : ",") + n;
    return "[" + out + "]";
  };
  auto after = topic_names(*c2);
  CHECK_MESSAGE(after == expected, "after a restart the topics are "
                                       << join(after) << ", acknowledged: " << join(expected));
  if (!deleted) {
    auto info = c2->describe_topic("fill");
    REQUIRE(info.ok());
    CHECK(info->next_offset == acked.size());
  }
  c2.reset();
  CHECK(broker.stop() == 0);
}

TEST_CASE("--auto-create-topics: publishing to a new topic creates it") {
  temp_dir dir;
  broker_process broker(dir.file("data"), {"--auto-create-topics"});
  REQUIRE(broker.start());
  const auto addr = broker.address();
  auto c = connect_client(addr, [](wharf::client_options& o) { o.request_timeout = 5s; });

  auto first = c->publish("auto.created", {.payload = "hello"});
  REQUIRE_MESSAGE(first.ok(), first.err().to_string());
  CHECK(first->offset == 0);
  auto second = c->publish("auto.created", {.payload = "again"});
  REQUIRE(second.ok());
  CHECK(second->offset == 1);
  auto info = c->describe_topic("auto.created");
  REQUIRE(info.ok());
  CHECK(info->records == 2);

  // Through the CLI, and asynchronously with many records at once.
  auto cli = run_cli(addr, {"publish", "auto.cli"}, "a\nb\nc\n");
  CHECK(cli.exit_code == 0);
  CHECK(lines(cli.out) == std::vector<std::string>{"0", "1", "2"});
  ack_log acks;
  for (int i = 0; i < 1000; ++i) {
    c->publish_async("auto.async", {.payload = std::to_string(i)},
                     acks.callback(std::to_string(i)));
  }
  REQUIRE(c->flush(20s).ok());
  CHECK(acks.errors().empty());
  auto acked = acks.acked();
  REQUIRE(acked.size() == 1000);
  bool in_order = true;
  for (auto& [offset, payload] : acked) in_order = in_order && payload == std::to_string(offset);
  CHECK(in_order);

  auto listed = c->list_topics();
  REQUIRE(listed.ok());
  std::vector<std::string> names;
  for (auto& t : *listed) names.push_back(t.name);
  std::sort(names.begin(), names.end());
  CHECK(names == std::vector<std::string>{"auto.async", "auto.cli", "auto.created"});
  CHECK(read_from_earliest(*c, "auto.created", 2) ==
        std::vector<seen_record>{{0, "hello"}, {1, "again"}});

  // Names are still checked.
  CHECK(code_of(c->publish("not valid", {.payload = "x"})) == errc::invalid_name);
  // Auto-created topics are durable.
  c.reset();
  CHECK(broker.stop() == 0);
  REQUIRE(broker.start());
  auto c2 = connect_client(addr);
  auto info2 = c2->describe_topic("auto.async");
  REQUIRE(info2.ok());
  CHECK(info2->next_offset == 1000);
}

TEST_CASE("records up to max_message_bytes (1 MiB by default) round-trip") {
  temp_dir dir;
  broker_process broker(dir.file("data"));
  REQUIRE(broker.start());
  const auto addr = broker.address();
  auto c = connect_client(addr);
  REQUIRE(c->create_topic("large").ok());
  std::vector<std::string> payloads;
  ack_log acks;
  for (int i = 0; i < 20; ++i) {
    payloads.push_back(std::string(1u << 20, static_cast<char>('A' + i)));
    c->publish_async("large", {.payload = payloads.back()}, acks.callback(std::to_string(i)));
  }
  REQUIRE(c->flush(30s).ok());
  CHECK(acks.errors().empty());
  CHECK(acks.ok_count() == 20);
  CHECK(code_of(c->publish("large", {.payload = std::string((1u << 20) + 1, 'x')})) ==
        errc::too_large);
  auto got = read_from_earliest(*c, "large", 20);
  REQUIRE(got.size() == 20);
  size_t bad = 0;
  for (size_t i = 0; i < got.size(); ++i)
    bad += got[i].offset != i || got[i].payload != payloads[i];
  CHECK(bad == 0);
}

// Known bug: the SDK sizes its frame reader before HelloOk tells it the
// broker's max_frame_bytes (client::impl::on_connected uses the 8 MiB
// default + 1 MiB), so the first Deliver frame above 9 MiB drops the
// connection ("frame from broker too large"); the client reconnects and
// then reads it, but requests in flight on that connection fail with
// errc::disconnected.
TEST_CASE("a record above 8 MiB (raised limits) reaches a subscriber without a reconnect") {
  temp_dir dir;
  broker_process broker(dir.file("data"), {"--max-message-bytes", "12MiB", "--max-frame-bytes",
                                           "16MiB", "--log-level", "debug"});
  REQUIRE(broker.start());
  const auto addr = broker.address();
  std::string big(10u << 20, 'b');
  {
    auto producer = connect_client(addr);
    REQUIRE(producer->create_topic("huge").ok());
    auto r = producer->publish("huge", {.payload = big});
    REQUIRE_MESSAGE(r.ok(), r.err().to_string());
  }
  auto consumer = connect_client(addr);
  auto got = read_from_earliest(*consumer, "huge", 1);
  REQUIRE(got.size() == 1);
  CHECK(got[0].payload == big);
  // Two clients, two connections: the consumer's first connection must
  // have carried the delivery.
  auto log = broker.log();
  size_t connections = 0;
  for (size_t at = log.find("connection from"); at != std::string::npos;
       at = log.find("connection from", at + 1)) {
    ++connections;
  }
  CHECK_MESSAGE(connections == 2, connections << " connections for 2 clients; broker log:\n"
                                              << log);
}
