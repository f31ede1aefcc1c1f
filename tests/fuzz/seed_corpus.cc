// seed_corpus OUTDIR [REGRESSIONS_DIR]: writes protocol_fuzzer's seed
// corpus, one file per input in the format of conversation.h (a flags byte,
// then frames). There is a seed for the handshake and its failures, for every
// request kind, for every kind a client must not send, and whole
// conversations (create, publish, subscribe, ack). Every frame meant to be
// valid is checked with verify_frame(), and the program fails unless every
// Body kind of protocol.fbs appears in some seed. With REGRESSIONS_DIR, each
// regression input kept there as hex (*.hex) is written out too, so fuzzing
// starts from every past finding. Run at build time; nothing is committed.
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "conversation.h"
#include "wire.h"

namespace {

using namespace wharf::wire;
using bytes = std::vector<uint8_t>;
using fbb_t = flatbuffers::FlatBufferBuilder;

using wharf::fuzz::kDribble;
using wharf::fuzz::kHello;
using wharf::fuzz::kInteractive;
using wharf::fuzz::kReset;
int g_failures = 0;
std::set<Body> g_kinds;  // Body kinds some seed carries

struct rec {
  std::optional<std::string> key;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string payload;
};

/// A RecordBatch buffer ("WREC").
bytes record_batch(const std::vector<rec>& records) {
  fbb_t fbb(256);
  std::vector<flatbuffers::Offset<Record>> offs;
  for (const auto& r : records) {
    flatbuffers::Offset<flatbuffers::Vector<uint8_t>> key;
    if (r.key)
      key = fbb.CreateVector(reinterpret_cast<const uint8_t*>(r.key->data()), r.key->size());
    flatbuffers::Offset<flatbuffers::Vector<flatbuffers::Offset<Header>>> headers;
    if (!r.headers.empty()) {
      std::vector<flatbuffers::Offset<Header>> hs;
      for (const auto& [n, v] : r.headers) {
        auto name = fbb.CreateString(n);
        auto value = fbb.CreateVector(reinterpret_cast<const uint8_t*>(v.data()), v.size());
        hs.push_back(CreateHeader(fbb, name, value));
      }
      headers = fbb.CreateVector(hs);
    }
    auto payload =
        fbb.CreateVector(reinterpret_cast<const uint8_t*>(r.payload.data()), r.payload.size());
    offs.push_back(CreateRecord(fbb, key, headers, payload));
  }
  fbb.Finish(CreateRecordBatch(fbb, fbb.CreateVector(offs)), RecordBatchIdentifier());
  return {fbb.GetBufferPointer(), fbb.GetBufferPointer() + fbb.GetSize()};
}

/// Finishes a frame and checks it (unless it is meant to be bad).
template <class T>
bytes frame(fbb_t& fbb, uint64_t rid, flatbuffers::Offset<T> body, bool must_verify = true) {
  finish_frame(fbb, rid, body);
  g_kinds.insert(Body{BodyTraits<T>::enum_value});  // a copy: enum_value is not defined
  bytes out(fbb.GetBufferPointer(), fbb.GetBufferPointer() + fbb.GetSize());
  if (must_verify) {
    std::vector<uint64_t> aligned(out.size() / 8 + 1);
    std::memcpy(aligned.data(), out.data(), out.size());
    if (!verify_frame({reinterpret_cast<const uint8_t*>(aligned.data()), out.size()})) {
      std::fprintf(stderr, "seed_corpus: a %s frame fails the Verifier\n",
                   EnumNameBody(BodyTraits<T>::enum_value));
      ++g_failures;
    }
  }
  return out;
}

// ---- one builder per request kind ----------------------------------------

bytes hello(uint32_t version = kProtocolVersion, uint64_t rid = 1) {
  fbb_t fbb;
  return frame(fbb, rid, CreateHello(fbb, version, fbb.CreateString("seed")));
}

bytes create_topic(const std::string& name, std::optional<uint64_t> retention_ms = {},
                   std::optional<uint64_t> retention_bytes = {}, bool if_not_exists = true,
                   uint64_t rid = 2) {
  fbb_t fbb;
  auto n = fbb.CreateString(name);
  CreateTopicBuilder b(fbb);
  b.add_name(n);
  if (retention_ms) b.add_retention_ms(*retention_ms);
  if (retention_bytes) b.add_retention_bytes(*retention_bytes);
  b.add_if_not_exists(if_not_exists);
  return frame(fbb, rid, b.Finish());
}

bytes delete_topic(const std::string& name, uint64_t rid = 3) {
  fbb_t fbb;
  return frame(fbb, rid, CreateDeleteTopic(fbb, fbb.CreateString(name)));
}

bytes list_topics(uint64_t rid = 4) {
  fbb_t fbb;
  return frame(fbb, rid, CreateListTopics(fbb));
}

bytes describe_topic(const std::string& name, uint64_t rid = 5) {
  fbb_t fbb;
  return frame(fbb, rid, CreateDescribeTopic(fbb, fbb.CreateString(name)));
}

bytes publish(const std::string& topic, const std::vector<rec>& records, uint64_t rid = 6) {
  fbb_t fbb;
  auto batch = record_batch(records);
  auto t = fbb.CreateString(topic);
  auto data = create_nested(fbb, batch);
  return frame(fbb, rid, CreatePublish(fbb, t, data));
}

struct sub_opts {
  std::string group;
  StartKind kind = StartKind::earliest;
  uint64_t value = 0;
  uint32_t max_in_flight = 0;
  std::optional<uint32_t> ack_timeout_ms, max_deliveries;
};

bytes subscribe(const std::string& topic, const sub_opts& o, uint64_t rid = 7) {
  fbb_t fbb;
  auto t = fbb.CreateString(topic);
  auto g = o.group.empty() ? 0 : fbb.CreateString(o.group);
  StartPosition start(o.kind, o.value);
  SubscribeBuilder b(fbb);
  b.add_topic(t);
  if (!g.IsNull()) b.add_group(g);
  b.add_start(&start);
  b.add_max_in_flight(o.max_in_flight);
  if (o.ack_timeout_ms) b.add_ack_timeout_ms(*o.ack_timeout_ms);
  if (o.max_deliveries) b.add_max_deliveries(*o.max_deliveries);
  return frame(fbb, rid, b.Finish());
}

// Subscription ids: 1 means the connection's first subscription (the
// fuzzer maps it in interactive mode), so force_defaults keeps the field.
bytes unsubscribe(uint64_t sub, const std::vector<uint64_t>& held = {}, uint64_t rid = 8) {
  fbb_t fbb;
  fbb.ForceDefaults(true);
  auto h = held.empty() ? 0 : fbb.CreateVector(held);
  return frame(fbb, rid, CreateUnsubscribe(fbb, sub, h));
}

bytes credit(uint64_t sub, uint32_t records) {
  fbb_t fbb;
  fbb.ForceDefaults(true);
  return frame(fbb, 0, CreateCredit(fbb, sub, records));
}

bytes ack(uint64_t sub, const std::vector<uint64_t>& offsets) {
  fbb_t fbb;
  fbb.ForceDefaults(true);
  return frame(fbb, 0, CreateAck(fbb, sub, fbb.CreateVector(offsets)));
}

bytes nack(uint64_t sub, const std::vector<uint64_t>& offsets, uint32_t delay_ms, bool release) {
  fbb_t fbb;
  fbb.ForceDefaults(true);
  return frame(fbb, 0, CreateNack(fbb, sub, fbb.CreateVector(offsets), delay_ms, release));
}

bytes create_group(const std::string& topic, const std::string& group,
                   StartKind kind = StartKind::earliest, uint64_t value = 0,
                   std::optional<uint32_t> ack_timeout_ms = {},
                   std::optional<uint32_t> max_deliveries = {}, bool if_not_exists = true,
                   uint64_t rid = 9) {
  fbb_t fbb;
  auto t = fbb.CreateString(topic);
  auto g = fbb.CreateString(group);
  StartPosition start(kind, value);
  CreateGroupBuilder b(fbb);
  b.add_topic(t);
  b.add_group(g);
  b.add_start(&start);
  if (ack_timeout_ms) b.add_ack_timeout_ms(*ack_timeout_ms);
  if (max_deliveries) b.add_max_deliveries(*max_deliveries);
  b.add_if_not_exists(if_not_exists);
  return frame(fbb, rid, b.Finish());
}

bytes list_groups(const std::string& topic, uint64_t rid = 10) {
  fbb_t fbb;
  return frame(fbb, rid, CreateListGroups(fbb, fbb.CreateString(topic)));
}

bytes describe_group(const std::string& topic, const std::string& group, uint64_t rid = 11) {
  fbb_t fbb;
  auto t = fbb.CreateString(topic);
  return frame(fbb, rid, CreateDescribeGroup(fbb, t, fbb.CreateString(group)));
}

bytes reset_group(const std::string& topic, const std::string& group, StartKind kind,
                  uint64_t value = 0, uint64_t rid = 12) {
  fbb_t fbb;
  auto t = fbb.CreateString(topic);
  auto g = fbb.CreateString(group);
  StartPosition to(kind, value);
  return frame(fbb, rid, CreateResetGroup(fbb, t, g, &to));
}

bytes delete_group(const std::string& topic, const std::string& group, uint64_t rid = 13) {
  fbb_t fbb;
  auto t = fbb.CreateString(topic);
  return frame(fbb, rid, CreateDeleteGroup(fbb, t, fbb.CreateString(group)));
}

bytes add_webhook(const std::string& topic, const std::string& name, uint64_t rid = 30,
                  bool update = false) {
  fbb_t fbb;
  auto t = fbb.CreateString(topic);
  auto n = fbb.CreateString(name);
  // Port 1 on loopback: refused at once, so attempts fail fast and retry.
  auto url = fbb.CreateString("http://127.0.0.1:1/hook");
  std::vector<flatbuffers::Offset<HttpHeader>> hs{
      CreateHttpHeader(fbb, fbb.CreateString("X-A"), fbb.CreateString("b"))};
  auto headers = fbb.CreateVector(hs);
  std::vector<uint32_t> schedule{0, 10, 20};
  auto sched = fbb.CreateVector(schedule);
  auto config = CreateWebhookConfig(fbb, url, 0, headers, 200, 4, sched, 0, 1000);
  StartPosition start(StartKind::earliest, 0);
  return frame(fbb, rid, CreateAddWebhook(fbb, t, n, config, &start, update));
}

bytes list_webhooks(const std::string& topic, uint64_t rid = 31) {
  fbb_t fbb;
  return frame(fbb, rid, CreateListWebhooks(fbb, fbb.CreateString(topic)));
}

bytes describe_webhook(const std::string& topic, const std::string& name, uint64_t rid = 32) {
  fbb_t fbb;
  auto t = fbb.CreateString(topic);
  return frame(fbb, rid, CreateDescribeWebhook(fbb, t, fbb.CreateString(name)));
}

bytes pause_webhook(const std::string& topic, const std::string& name, bool paused,
                    uint64_t rid = 33) {
  fbb_t fbb;
  auto t = fbb.CreateString(topic);
  return frame(fbb, rid, CreatePauseWebhook(fbb, t, fbb.CreateString(name), paused));
}

bytes remove_webhook(const std::string& topic, const std::string& name, uint64_t rid = 34) {
  fbb_t fbb;
  auto t = fbb.CreateString(topic);
  return frame(fbb, rid, CreateRemoveWebhook(fbb, t, fbb.CreateString(name)));
}

bytes get_stats(uint64_t rid = 14) {
  fbb_t fbb;
  return frame(fbb, rid, CreateGetStats(fbb));
}

// Frames only the broker sends: a client sending them is a protocol error.
bytes publish_ack() {
  fbb_t fbb;
  return frame(fbb, 15, CreatePublishAck(fbb, 1, 2, 3));
}

bytes deliver() {
  fbb_t fbb;
  auto batch = record_batch({{"k", {}, "p"}});
  auto data = create_nested(fbb, batch);
  std::vector<flatbuffers::Offset<DeliveredBatch>> bs{CreateDeliveredBatch(fbb, 0, 1, data, 0, 1)};
  return frame(fbb, 0, CreateDeliver(fbb, 1, fbb.CreateVector(bs)));
}

/// One frame of every other kind only the broker sends, all fields default.
std::vector<std::pair<std::string, bytes>> broker_only_frames() {
  std::vector<std::pair<std::string, bytes>> out;
  auto add = [&](const char* name, auto make) {
    fbb_t fbb;
    out.emplace_back(name, frame(fbb, 16, make(fbb)));
  };
  add("hello_ok", [](fbb_t& f) { return CreateHelloOk(f, kProtocolVersion); });
  add("error", [](fbb_t& f) { return CreateError(f, ErrorCode::internal); });
  add("ok", [](fbb_t& f) { return CreateOk(f); });
  add("topic_info", [](fbb_t& f) { return CreateTopicInfo(f); });
  add("topic_list", [](fbb_t& f) { return CreateTopicList(f); });
  add("subscribe_ok", [](fbb_t& f) { return CreateSubscribeOk(f, 1, 0); });
  add("subscription_ended",
      [](fbb_t& f) { return CreateSubscriptionEnded(f, 1, ErrorCode::unknown_topic); });
  add("group_info", [](fbb_t& f) { return CreateGroupInfo(f); });
  add("group_list", [](fbb_t& f) { return CreateGroupList(f); });
  add("webhook_info", [](fbb_t& f) { return CreateWebhookInfo(f); });
  add("webhook_list", [](fbb_t& f) { return CreateWebhookList(f); });
  add("stats", [](fbb_t& f) { return CreateStats(f); });
  return out;
}

// ---- writing ---------------------------------------------------------------

std::filesystem::path g_dir;

void seed(const std::string& name, uint8_t flags, const std::vector<bytes>& frames) {
  std::ofstream out(g_dir / name, std::ios::binary | std::ios::trunc);
  out.put(static_cast<char>(flags));
  for (const auto& f : frames)
    out.write(reinterpret_cast<const char*>(f.data()), static_cast<std::streamsize>(f.size()));
  if (!out) {
    std::fprintf(stderr, "seed_corpus: cannot write %s\n", (g_dir / name).c_str());
    ++g_failures;
  }
}

const std::vector<rec> kRecords = {
    {"user-1", {{"type", "PurchasedItemOnWebsite"}, {"trace", "abc"}}, "payload-1"},
    {std::nullopt, {}, "no key"},
    {"", {{"empty-key", ""}}, ""},
    {"user-1", {}, "same key again"},
    {"user-2", {}, std::string(300, 'x')},
};

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2 && argc != 3) {
    std::fprintf(stderr, "usage: seed_corpus OUTDIR [REGRESSIONS_DIR]\n");
    return 2;
  }
  g_dir = argv[1];
  std::filesystem::create_directories(g_dir);
  const std::string T = "fz", T2 = "fz-2", G = "g1";
  const uint8_t H = kHello, HI = kHello | kInteractive;

  // Handshake.
  seed("hello", 0, {hello()});
  seed("hello_bad_version", 0, {hello(2)});
  seed("hello_missing_first_frame_list_topics", 0, {list_topics()});
  seed("hello_twice", H, {hello(1, 99)});
  seed("hello_then_requests", kInteractive, {hello(), create_topic(T), list_topics()});

  // Topics.
  seed("create_topic", HI, {create_topic(T)});
  seed("create_topic_retention", HI, {create_topic("fz-ret", 50, 2000)});
  // Retention trims this topic at every check (100 ms) under its readers.
  seed("retention_under_readers", HI,
       {create_topic("fz-trim", 1, 300), publish("fz-trim", kRecords),
        publish("fz-trim", kRecords, 30),
        subscribe("fz-trim", {.group = "g-trim", .max_in_flight = 3}, 31),
        subscribe("fz-trim", {}, 32), ack(1, {0, 1}), nack(1, {2}, 50, false),
        publish("fz-trim", kRecords, 33)});
  seed("create_topic_exists", HI, {create_topic(T), create_topic(T, {}, {}, false, 20)});
  seed("create_topic_invalid_name", HI,
       {create_topic("bad name!"), create_topic(""), create_topic(std::string(201, 'a'))});
  seed("list_topics", HI, {list_topics()});
  seed("describe_topic", HI, {create_topic(T), describe_topic(T), describe_topic("nope")});
  seed("delete_topic", HI,
       {create_topic("fz-del"), delete_topic("fz-del"), delete_topic("fz-del", 21)});
  seed("get_stats", HI, {get_stats()});

  // Publishing.
  seed("publish", HI, {create_topic(T), publish(T, kRecords)});
  seed("publish_one", HI, {create_topic(T), publish(T, {{std::nullopt, {}, "one"}})});
  seed("publish_unknown_topic", HI, {publish("fz-unknown", kRecords)});
  seed("publish_invalid_topic", HI, {publish("bad topic", kRecords)});
  seed("publish_empty_batch", HI, {create_topic(T), publish(T, {})});
  seed("publish_too_large", HI,
       {create_topic(T),
        publish(T, {{std::nullopt, {}, std::string(wharf::fuzz::kMaxMessageBytes + 1, 'z')}})});
  seed("publish_many", HI,
       {create_topic(T2), publish(T2, kRecords, 30), publish(T2, kRecords, 31),
        publish(T2, kRecords, 32)});
  seed("publish_dribble", HI | kDribble | 0x30, {create_topic(T), publish(T, kRecords)});

  // Ephemeral subscriptions.
  seed("subscribe_ephemeral_earliest", HI,
       {create_topic(T), publish(T, kRecords), subscribe(T, {.max_in_flight = 2}), credit(1, 2),
        credit(1, 1000), unsubscribe(1)});
  seed("subscribe_ephemeral_latest", HI,
       {create_topic(T), subscribe(T, {.kind = StartKind::latest}), publish(T, kRecords)});
  seed("subscribe_ephemeral_offset", HI,
       {create_topic(T), subscribe(T, {.kind = StartKind::offset, .value = 3})});
  seed("subscribe_ephemeral_timestamp", HI,
       {create_topic(T), subscribe(T, {.kind = StartKind::timestamp, .value = 1})});
  seed("subscribe_unknown_topic", HI, {subscribe("fz-unknown", {})});
  seed("unsubscribe_unknown", HI, {unsubscribe(12345)});
  seed("credit_ack_nack_unknown_subscription", HI,
       {credit(777, 1), ack(777, {0}), nack(777, {0}, 0, false)});

  // Group subscriptions.
  sub_opts grp{.group = G, .max_in_flight = 10, .ack_timeout_ms = 100, .max_deliveries = 3};
  seed("subscribe_group_ack", HI,
       {create_topic(T), publish(T, kRecords), subscribe(T, grp), ack(1, {0, 1, 2, 3, 4})});
  seed("subscribe_group_nack_delay", HI,
       {create_topic(T), publish(T, kRecords), subscribe(T, grp), nack(1, {0, 1}, 10, false),
        ack(1, {2})});
  seed("subscribe_group_nack_release", HI,
       {create_topic(T), publish(T, kRecords), subscribe(T, grp), nack(1, {0, 1, 2}, 0, true)});
  seed("subscribe_group_unsubscribe_held", HI,
       {create_topic(T), publish(T, kRecords), subscribe(T, grp), unsubscribe(1, {0, 1})});
  seed("subscribe_group_two_members", HI,
       {create_topic(T), publish(T, kRecords), subscribe(T, grp, 7), subscribe(T, grp, 8),
        ack(2, {1}), ack(1, {0})});
  sub_opts dlq{.group = "g-dlq", .max_in_flight = 1, .ack_timeout_ms = 1, .max_deliveries = 1};
  seed("subscribe_group_dead_letter", HI,
       {create_topic(T), publish(T, kRecords), subscribe(T, dlq), nack(1, {0}, 0, false)});
  sub_opts latest{.group = "g-latest", .kind = StartKind::latest};
  seed("subscribe_group_latest_then_publish", HI,
       {create_topic(T), subscribe(T, latest), publish(T, kRecords), ack(1, {0})});
  seed("subscribe_group_invalid_name", HI, {create_topic(T), subscribe(T, {.group = "bad group"})});

  // Group administration.
  seed("create_group", HI, {create_topic(T), create_group(T, "g-admin")});
  seed("create_group_settings", HI,
       {create_topic(T), create_group(T, "g-set", StartKind::offset, 2, 5, 0, false, 22)});
  seed("create_group_unknown_topic", HI, {create_group("fz-unknown", G)});
  seed("list_groups", HI, {create_topic(T), list_groups(T), list_groups("fz-unknown", 23)});
  seed("describe_group", HI,
       {create_topic(T), create_group(T, G), describe_group(T, G), describe_group(T, "nope", 24)});
  seed("reset_group_earliest", HI,
       {create_topic(T), create_group(T, G), reset_group(T, G, StartKind::earliest)});
  seed("reset_group_latest", HI,
       {create_topic(T), create_group(T, G), reset_group(T, G, StartKind::latest)});
  seed("reset_group_offset", HI,
       {create_topic(T), create_group(T, G), reset_group(T, G, StartKind::offset, 3)});
  seed("reset_group_timestamp", HI,
       {create_topic(T), create_group(T, G),
        reset_group(T, G, StartKind::timestamp, 1700000000000ull)});
  seed("webhooks", HI,
       {create_topic(T), add_webhook(T, "w"), publish(T, kRecords), list_webhooks(T),
        list_webhooks("", 35), describe_webhook(T, "w"), add_webhook(T, "w", 36, true),
        pause_webhook(T, "w", true), pause_webhook(T, "w", false, 37),
        describe_webhook(T, "nope", 38), remove_webhook(T, "w"), remove_webhook(T, "w", 39)});
  seed("delete_group", HI,
       {create_topic(T), create_group(T, "g-del"), delete_group(T, "g-del"),
        delete_group(T, "g-del", 25)});

  // Conversations.
  seed("conversation_create_publish_subscribe_ack", HI,
       {create_topic(T2), publish(T2, kRecords),
        subscribe(T2, {.group = "g-conv", .max_in_flight = 100}),
        ack(1, {0, 1, 2, 3, 4, 5, 6, 7, 8, 9}), describe_group(T2, "g-conv"), describe_topic(T2),
        get_stats()});
  seed("conversation_delete_topic_with_subscribers", HI,
       {create_topic("fz-gone"), publish("fz-gone", kRecords), subscribe("fz-gone", {}, 40),
        subscribe("fz-gone", {.group = G}, 41), delete_topic("fz-gone"),
        publish("fz-gone", kRecords), list_topics()});
  seed("conversation_every_request", HI,
       {create_topic(T), describe_topic(T), list_topics(), publish(T, kRecords),
        subscribe(T, {}, 50), subscribe(T, grp, 51), credit(1, 5), ack(2, {0}),
        nack(2, {1}, 5, false), nack(2, {2}, 0, true), create_group(T, "g-every"), list_groups(T),
        describe_group(T, "g-every"), reset_group(T, "g-every", StartKind::earliest),
        delete_group(T, "g-every"), unsubscribe(1), unsubscribe(2), get_stats()});

  // The same requests pipelined: sent at once, the connection closing before
  // the slower answers (writer commits) come back.
  seed("pipelined_every_request", H,
       {create_topic(T), describe_topic(T), list_topics(), publish(T, kRecords),
        subscribe(T, {}, 50), subscribe(T, grp, 51), credit(1, 5), ack(2, {0}),
        create_group(T, "g-pipe"), list_groups(T), describe_group(T, "g-pipe"),
        reset_group(T, "g-pipe", StartKind::earliest), delete_group(T, "g-pipe"), unsubscribe(1),
        get_stats(), delete_topic("fz-pipe-none")});

  // Connections reset while the broker still owes them answers and deliveries.
  seed("reset_after_publish", H | kReset,
       {create_topic(T), publish(T, kRecords), publish(T, kRecords, 30)});
  seed("reset_with_group_member", HI | kReset,
       {create_topic(T), publish(T, kRecords),
        subscribe(T, {.group = "g-reset", .max_in_flight = 2}), publish(T, kRecords, 30)});

  // Bad input.
  seed("unexpected_publish_ack", H, {publish_ack()});
  seed("unexpected_deliver", H, {deliver()});
  seed("frame_length_too_large", H, {bytes{0x01, 0x00, 0x01, 0x00, 1, 2, 3, 4}});
  seed("frame_garbage", H, {bytes{8, 0, 0, 0, 'W', 'H', 'R', 'F', 0xde, 0xad, 0xbe, 0xef}});
  seed("frame_truncated", H, {[] {
         auto f = list_topics();
         f.resize(f.size() - 3);
         return f;
       }()});
  seed("frame_zero_length", H, {bytes{0, 0, 0, 0}});
  {
    // A Publish whose nested batch lacks the "WREC" identifier.
    fbb_t inner;
    inner.Finish(
        CreateRecordBatch(inner, inner.CreateVector(std::vector<flatbuffers::Offset<Record>>{})));
    fbb_t fbb;
    auto t = fbb.CreateString(T);
    auto data = create_nested(fbb, {inner.GetBufferPointer(), inner.GetSize()});
    seed("publish_batch_without_identifier", H,
         {frame(fbb, 60, CreatePublish(fbb, t, data), false)});
  }

  for (auto& [name, f] : broker_only_frames()) seed("unexpected_" + name, H, {f});

  for (auto k = static_cast<int>(Body::MIN) + 1; k <= static_cast<int>(Body::MAX); ++k) {
    if (!g_kinds.count(static_cast<Body>(k))) {
      std::fprintf(stderr, "seed_corpus: no seed carries a %s frame\n",
                   EnumNameBody(static_cast<Body>(k)));
      ++g_failures;
    }
  }

  // Past findings (regression inputs, kept as hex).
  if (argc == 3) {
    std::error_code ec;
    for (auto& e : std::filesystem::directory_iterator(argv[2], ec)) {
      if (e.path().extension() != ".hex") continue;
      std::ifstream in(e.path());
      std::stringstream text;
      text << in.rdbuf();
      auto input = wharf::fuzz::parse_hex(text.str());
      if (!input) {
        std::fprintf(stderr, "seed_corpus: %s is not hex\n", e.path().c_str());
        ++g_failures;
        continue;
      }
      std::ofstream out(g_dir / ("regression_" + e.path().stem().string()),
                        std::ios::binary | std::ios::trunc);
      out.write(reinterpret_cast<const char*>(input->data()),
                static_cast<std::streamsize>(input->size()));
    }
  }

  return g_failures ? 1 : 0;
}
