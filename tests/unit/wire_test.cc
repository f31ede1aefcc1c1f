// wharf_wire: frame_reader cutting a byte stream into 8-byte-aligned frames
// (fed a byte at a time and in big chunks, oversize prefixes), verify_frame
// on a valid frame of each kind and on truncated, random, mislabelled and
// nested-corrupted bytes, verify_record_batch, valid_name, parse_host_port
// and error_name.
#include <doctest/doctest.h>

#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "unit_support.h"
#include "wire.h"

using namespace wharf::wire;

namespace {

using fbb_t = flatbuffers::FlatBufferBuilder;

/// Bytes in 8-byte-aligned memory, as the broker's buffers are.
struct aligned_bytes {
  std::vector<uint64_t> storage;
  size_t size = 0;
  explicit aligned_bytes(std::span<const uint8_t> b) : storage(b.size() / 8 + 1), size(b.size()) {
    if (size) std::memcpy(storage.data(), b.data(), size);
  }
  uint8_t* data() { return reinterpret_cast<uint8_t*>(storage.data()); }
  std::span<const uint8_t> span() const {
    return {reinterpret_cast<const uint8_t*>(storage.data()), size};
  }
  std::span<const uint8_t> first(size_t n) const { return span().first(n); }
};

std::vector<uint8_t> finished(fbb_t& fbb) {
  return {fbb.GetBufferPointer(), fbb.GetBufferPointer() + fbb.GetSize()};
}

std::vector<uint8_t> sample_batch() {
  return wharf::unit::make_batch({{std::string("k1"), {{"h", "v"}}, "first payload"},
                                  {std::nullopt, {}, "second"},
                                  {std::string(""), {}, ""}});
}

std::vector<uint8_t> publish_frame(const std::vector<uint8_t>& batch, uint64_t rid = 7) {
  fbb_t fbb;
  auto topic = fbb.CreateString("orders");
  auto nested = create_nested(fbb, batch);
  finish_frame(fbb, rid, CreatePublish(fbb, topic, nested));
  return finished(fbb);
}

struct kind_case {
  Body type;
  std::function<void(fbb_t&)> build;  // finishes the frame
};

/// One valid frame of (nearly) every body kind.
std::vector<kind_case> all_kinds() {
  StartPosition earliest(StartKind::earliest, 0);
  auto batch = sample_batch();
  return {
      {Body::Hello,
       [](fbb_t& b) { finish_frame(b, 1, CreateHelloDirect(b, kProtocolVersion, "t")); }},
      {Body::HelloOk,
       [](fbb_t& b) { finish_frame(b, 1, CreateHelloOkDirect(b, 1, "0.1.0", 8 << 20, 1 << 20)); }},
      {Body::Error,
       [](fbb_t& b) {
         finish_frame(b, 2, CreateErrorDirect(b, ErrorCode::unknown_topic, "no such topic"));
       }},
      {Body::Ok, [](fbb_t& b) { finish_frame(b, 3, CreateOk(b)); }},
      {Body::CreateTopic,
       [](fbb_t& b) { finish_frame(b, 4, CreateCreateTopicDirect(b, "orders", 1000, {}, true)); }},
      {Body::DeleteTopic,
       [](fbb_t& b) { finish_frame(b, 5, CreateDeleteTopicDirect(b, "orders")); }},
      {Body::ListTopics, [](fbb_t& b) { finish_frame(b, 6, CreateListTopics(b)); }},
      {Body::TopicList,
       [](fbb_t& b) {
         std::vector<flatbuffers::Offset<flatbuffers::String>> groups{b.CreateString("g")};
         std::vector<flatbuffers::Offset<TopicInfo>> topics{
             CreateTopicInfoDirect(b, "orders", 0, 3, 3, 100, 0, 0, 1, 2, &groups)};
         finish_frame(b, 7, CreateTopicListDirect(b, &topics));
       }},
      {Body::Publish,
       [batch](fbb_t& b) {
         auto topic = b.CreateString("orders");
         finish_frame(b, 8, CreatePublish(b, topic, create_nested(b, batch)));
       }},
      {Body::PublishAck, [](fbb_t& b) { finish_frame(b, 8, CreatePublishAck(b, 40, 3, 123456)); }},
      {Body::Subscribe,
       [earliest](fbb_t& b) {
         finish_frame(b, 9, CreateSubscribeDirect(b, "orders", "billing", &earliest, 10, 5000, 3));
       }},
      {Body::SubscribeOk, [](fbb_t& b) { finish_frame(b, 9, CreateSubscribeOk(b, 1, 0)); }},
      {Body::Deliver,
       [batch](fbb_t& b) {
         auto data = create_nested(b, batch);
         std::vector<uint32_t> idx{0, 2};
         std::vector<uint16_t> attempts{1, 2};
         auto i = b.CreateVector(idx);
         auto a = b.CreateVector(attempts);
         std::vector<flatbuffers::Offset<DeliveredBatch>> batches{
             CreateDeliveredBatch(b, 40, 123456, data, 0, 2, i, a)};
         finish_frame(b, 0, CreateDeliver(b, 1, b.CreateVector(batches)));
       }},
      {Body::Credit, [](fbb_t& b) { finish_frame(b, 10, CreateCredit(b, 1, 100)); }},
      {Body::Ack,
       [](fbb_t& b) {
         std::vector<uint64_t> offs{40, 42};
         finish_frame(b, 11, CreateAck(b, 1, b.CreateVector(offs)));
       }},
      {Body::Nack,
       [](fbb_t& b) {
         std::vector<uint64_t> offs{41};
         finish_frame(b, 12, CreateNack(b, 1, b.CreateVector(offs), 250));
       }},
      {Body::SubscriptionEnded,
       [](fbb_t& b) {
         auto m = b.CreateString("topic was deleted");
         finish_frame(b, 0, CreateSubscriptionEnded(b, 1, ErrorCode::unknown_topic, m));
       }},
      {Body::CreateGroup,
       [earliest](fbb_t& b) {
         auto t = b.CreateString("orders");
         auto g = b.CreateString("billing");
         finish_frame(b, 13, CreateCreateGroup(b, t, g, &earliest, 30000, 5, true));
       }},
      {Body::GroupInfo,
       [](fbb_t& b) {
         auto t = b.CreateString("orders");
         auto g = b.CreateString("billing");
         auto peer = b.CreateString("127.0.0.1:5555");
         std::vector<flatbuffers::Offset<MemberInfo>> members{CreateMemberInfo(b, 1, peer, 3, 9)};
         auto m = b.CreateVector(members);
         finish_frame(b, 14, CreateGroupInfo(b, t, g, 1, 2, 3, 4, 5, 6, 30000, 5, 7, m));
       }},
      {Body::GetStats, [](fbb_t& b) { finish_frame(b, 15, CreateGetStats(b)); }},
      {Body::Stats,
       [](fbb_t& b) {
         auto v = b.CreateString("0.1.0");
         auto fs = b.CreateString("always");
         finish_frame(b, 15,
                      CreateStats(b, v, 1000, 2, 3, 4, 5, 6, 7, 1.5, 2.5, 8, 4096, 1 << 30, fs));
       }},
  };
}

std::vector<uint8_t> build(const kind_case& k) {
  fbb_t fbb;
  k.build(fbb);
  return finished(fbb);
}

/// A raw length-prefixed frame (frame_reader does not look inside).
std::vector<uint8_t> raw_frame(const std::string& body) {
  std::vector<uint8_t> out(4 + body.size());
  uint32_t len = static_cast<uint32_t>(body.size());
  std::memcpy(out.data(), &len, 4);
  std::memcpy(out.data() + 4, body.data(), body.size());
  return out;
}

/// Feeds `stream` to `reader` in pieces of `chunk` bytes; returns the
/// frames cut out, checking that each starts 8-byte aligned.
std::vector<std::vector<uint8_t>> feed(frame_reader& reader, const std::vector<uint8_t>& stream,
                                       size_t chunk) {
  std::vector<std::vector<uint8_t>> frames;
  size_t pos = 0;
  while (pos < stream.size()) {
    size_t n = std::min(chunk, stream.size() - pos);
    auto space = reader.prepare(n);
    REQUIRE(space.size() >= n);
    std::memcpy(space.data(), stream.data() + pos, n);
    reader.commit(n);
    pos += n;
    std::span<const uint8_t> frame;
    frame_reader::status st;
    while ((st = reader.next(frame)) == frame_reader::status::ready) {
      CHECK(reinterpret_cast<uintptr_t>(frame.data()) % 8 == 0);
      frames.emplace_back(frame.begin(), frame.end());
      reader.consume();
    }
    REQUIRE(st == frame_reader::status::need_more);
  }
  return frames;
}

}  // namespace

TEST_CASE("wire: verify_frame accepts a valid frame of each kind") {
  for (const auto& k : all_kinds()) {
    auto bytes = build(k);
    CAPTURE(EnumNameBody(k.type));
    aligned_bytes a(bytes);
    const Frame* f = verify_frame(a.span());
    REQUIRE(f != nullptr);
    CHECK(f->body_type() == k.type);
  }
}

TEST_CASE("wire: a verified Publish frame gives back the batch it carries") {
  auto batch = sample_batch();
  auto bytes = publish_frame(batch, 77);
  aligned_bytes a(bytes);
  const Frame* f = verify_frame(a.span());
  REQUIRE(f);
  CHECK(f->request_id() == 77);
  auto p = f->body_as_Publish();
  REQUIRE(p);
  CHECK(p->topic()->str() == "orders");
  CHECK(reinterpret_cast<uintptr_t>(p->batch()->data()) % 8 == 0);  // create_nested aligns it
  CHECK(std::vector<uint8_t>(p->batch()->begin(), p->batch()->end()) == batch);
  auto rb = p->batch_nested_root();
  REQUIRE(rb->records()->size() == 3);
  CHECK(wharf::unit::as_string(rb->records()->Get(0)->key()) == "k1");
  CHECK(rb->records()->Get(1)->key() == nullptr);
  CHECK(rb->records()->Get(2)->key() != nullptr);  // an empty key is a key
  CHECK(rb->records()->Get(0)->headers()->Get(0)->name()->str() == "h");
}

TEST_CASE("wire: verify_frame rejects every truncation of a valid frame") {
  for (const auto& k : all_kinds()) {
    auto bytes = build(k);
    CAPTURE(EnumNameBody(k.type));
    aligned_bytes a(bytes);
    for (size_t n = 0; n < bytes.size(); ++n) {
      CAPTURE(n);
      CHECK(verify_frame(a.first(n)) == nullptr);
    }
    // Cut in half with the size prefix rewritten to match: the tables the
    // root points to are gone.
    size_t half = bytes.size() / 2;
    std::vector<uint8_t> cut(bytes.begin(), bytes.begin() + half);
    uint32_t len = static_cast<uint32_t>(half - 4);
    std::memcpy(cut.data(), &len, 4);
    aligned_bytes c(cut);
    CHECK(verify_frame(c.span()) == nullptr);
  }
}

TEST_CASE("wire: verify_frame rejects random bytes") {
  std::mt19937 rng(12345);
  for (int i = 0; i < 5000; ++i) {
    size_t size = 12 + rng() % 600;
    std::vector<uint8_t> bytes(size);
    for (auto& b : bytes) b = static_cast<uint8_t>(rng());
    if (i % 2 == 0) {
      // Past the cheap checks: a matching size prefix and the right identifier.
      uint32_t len = static_cast<uint32_t>(size - 4);
      std::memcpy(bytes.data(), &len, 4);
      std::memcpy(bytes.data() + 8, FrameIdentifier(), 4);
    }
    aligned_bytes a(bytes);
    CAPTURE(i);
    CHECK(verify_frame(a.span()) == nullptr);
  }
}

TEST_CASE("wire: verify_frame rejects a frame with a bad file identifier") {
  auto bytes = build(all_kinds()[0]);
  REQUIRE(std::memcmp(bytes.data() + 8, "WHRF", 4) == 0);
  std::memcpy(bytes.data() + 8, "WHRX", 4);
  aligned_bytes a(bytes);
  CHECK(verify_frame(a.span()) == nullptr);
  std::memcpy(a.data() + 8, "WHRF", 4);
  CHECK(verify_frame(a.span()) != nullptr);  // the identifier was the only fault
}

TEST_CASE("wire: verify_frame rejects a Publish whose nested RecordBatch is corrupted") {
  auto batch = sample_batch();
  auto bytes = publish_frame(batch);
  aligned_bytes good(bytes);
  const Frame* f = verify_frame(good.span());
  REQUIRE(f);
  const auto* nested = f->body_as_Publish()->batch();
  size_t at = nested->data() - good.span().data();  // where the nested buffer starts
  size_t records_at =
      reinterpret_cast<const uint8_t*>(f->body_as_Publish()->batch_nested_root()->records()) -
      good.span().data();

  SUBCASE("root offset pointing outside the nested buffer") {
    aligned_bytes bad(bytes);
    uint32_t off = 0x7FFFFFF0;
    std::memcpy(bad.data() + at, &off, 4);
    CHECK(verify_frame(bad.span()) == nullptr);
  }
  SUBCASE("records vector claiming more elements than fit") {
    aligned_bytes bad(bytes);
    uint32_t n = 0x00FFFFFF;
    std::memcpy(bad.data() + records_at, &n, 4);
    CHECK(verify_frame(bad.span()) == nullptr);
  }
  SUBCASE("a nested buffer too small to be a flatbuffer") {
    fbb_t fbb;
    auto topic = fbb.CreateString("orders");
    std::vector<uint8_t> tiny{1, 2, 3};
    finish_frame(fbb, 1, CreatePublish(fbb, topic, create_nested(fbb, tiny)));
    aligned_bytes bad(finished(fbb));
    CHECK(verify_frame(bad.span()) == nullptr);
  }
  SUBCASE("a Deliver frame with a corrupted batch") {
    fbb_t fbb;
    auto data = create_nested(fbb, batch);
    std::vector<flatbuffers::Offset<DeliveredBatch>> batches{
        CreateDeliveredBatch(fbb, 0, 1, data, 0, 3)};
    finish_frame(fbb, 0, CreateDeliver(fbb, 1, fbb.CreateVector(batches)));
    aligned_bytes bad(finished(fbb));
    const Frame* ok = verify_frame(bad.span());
    REQUIRE(ok);
    size_t d = ok->body_as_Deliver()->batches()->Get(0)->data()->data() - bad.span().data();
    uint32_t off = 0x7FFFFFF0;
    std::memcpy(bad.data() + d, &off, 4);
    CHECK(verify_frame(bad.span()) == nullptr);
  }
}

// The broker stores a published batch as it arrived and, when it reads the
// batch back from LMDB (broker::batch_at), checks it with
// verify_record_batch, which requires the "WREC" identifier. Regression:
// verify_frame used to accept a nested batch without it, so a batch it
// accepted could later be reported as corrupted and skipped.
TEST_CASE("wire: verify_frame and verify_record_batch agree on a nested batch") {
  // With the identifier both accept it; the identifier is the only difference.
  auto labelled = wharf::unit::make_batch({{std::nullopt, {}, "no identifier"}});
  aligned_bytes labelled_frame(publish_frame(labelled));
  aligned_bytes labelled_alone(labelled);
  REQUIRE(verify_frame(labelled_frame.span()) != nullptr);
  REQUIRE(verify_record_batch(labelled_alone.span()) != nullptr);

  auto batch = wharf::unit::make_batch({{std::nullopt, {}, "no identifier"}}, false);
  auto bytes = publish_frame(batch);
  aligned_bytes frame(bytes);
  aligned_bytes alone(batch);
  bool frame_ok = verify_frame(frame.span()) != nullptr;
  bool batch_ok = verify_record_batch(alone.span()) != nullptr;
  CHECK(frame_ok == batch_ok);
}

TEST_CASE("wire: verify_record_batch checks identifier and bounds") {
  auto batch = sample_batch();
  aligned_bytes a(batch);
  const RecordBatch* rb = verify_record_batch(a.span());
  REQUIRE(rb);
  CHECK(rb->records()->size() == 3);
  CHECK(wharf::unit::as_string(rb->records()->Get(0)->payload()) == "first payload");
  // Without a size prefix only the alignment padding at the end (under 8
  // bytes) may be cut and still verify; any deeper cut must not.
  for (size_t n = 0; n + 8 <= batch.size(); ++n) {
    CAPTURE(n);
    CHECK(verify_record_batch(a.first(n)) == nullptr);
  }
  CHECK(verify_record_batch({}) == nullptr);
  auto anon = wharf::unit::make_batch({{std::nullopt, {}, "x"}}, false);
  aligned_bytes b(anon);
  CHECK(verify_record_batch(b.span()) == nullptr);
  // A Frame is not a RecordBatch.
  auto frame = build(all_kinds()[0]);
  aligned_bytes c(std::span<const uint8_t>(frame).subspan(4));
  CHECK(verify_record_batch(c.span()) == nullptr);
}

TEST_CASE("wire: frame_reader cuts a stream fed one byte at a time") {
  std::vector<std::vector<uint8_t>> sent;
  for (const auto& k : all_kinds()) sent.push_back(build(k));
  // Odd lengths put the next frame's start off 8-byte alignment in the stream.
  for (const std::string& body :
       std::vector<std::string>{"a", "hello", "", "0123456789abc", std::string(1000, 'z')}) {
    sent.push_back(raw_frame(body));
  }
  sent.push_back(publish_frame(sample_batch()));
  std::vector<uint8_t> stream;
  for (auto& f : sent) stream.insert(stream.end(), f.begin(), f.end());

  frame_reader reader(kDefaultMaxFrameBytes);
  auto got = feed(reader, stream, 1);
  CHECK(reader.buffered() == 0);
  REQUIRE(got.size() == sent.size());
  for (size_t i = 0; i < sent.size(); ++i) CHECK(got[i] == sent[i]);
  // Frames that came out aligned verify in place.
  size_t verified = 0;
  for (auto& f : got) {
    aligned_bytes a(f);
    if (verify_frame(a.span())) ++verified;
  }
  CHECK(verified == all_kinds().size() + 1);
}

TEST_CASE("wire: frame_reader cuts a stream fed in big chunks") {
  std::vector<std::vector<uint8_t>> sent;
  std::mt19937 rng(99);
  for (int i = 0; i < 300; ++i) {
    if (i % 3 == 0) {
      sent.push_back(publish_frame(wharf::unit::make_payload_batch(
          {std::string(rng() % 5000, static_cast<char>('a' + i % 26))})));
    } else {
      sent.push_back(raw_frame(std::string(rng() % 300, static_cast<char>('A' + i % 26))));
    }
  }
  std::vector<uint8_t> stream;
  for (auto& f : sent) stream.insert(stream.end(), f.begin(), f.end());

  for (size_t chunk : {size_t{7}, size_t{1000}, size_t{65536}, stream.size()}) {
    CAPTURE(chunk);
    frame_reader reader(kDefaultMaxFrameBytes);
    auto got = feed(reader, stream, chunk);
    CHECK(reader.buffered() == 0);
    REQUIRE(got.size() == sent.size());
    for (size_t i = 0; i < sent.size(); ++i) CHECK(got[i] == sent[i]);
  }
}

TEST_CASE("wire: frame_reader grows for a large frame and the frame stays aligned") {
  std::string body(3u << 20, 'x');
  for (size_t i = 0; i < body.size(); i += 4096) body[i] = static_cast<char>('a' + (i / 4096) % 26);
  auto big = raw_frame(body);
  std::vector<uint8_t> stream = raw_frame("abc");  // 7 bytes first: misaligns the big one
  stream.insert(stream.end(), big.begin(), big.end());
  frame_reader reader(kDefaultMaxFrameBytes);
  auto got = feed(reader, stream, 64 * 1024);
  REQUIRE(got.size() == 2);
  CHECK(got[1] == big);
  CHECK(reader.buffered() == 0);
}

TEST_CASE("wire: frame_reader reports too_large for a huge length prefix") {
  frame_reader reader(1024);
  std::span<const uint8_t> frame;
  CHECK(reader.next(frame) == frame_reader::status::need_more);

  auto put = [&](std::vector<uint8_t> bytes) {
    auto space = reader.prepare(bytes.size());
    std::memcpy(space.data(), bytes.data(), bytes.size());
    reader.commit(bytes.size());
  };
  put({0xFF, 0xFF});
  CHECK(reader.next(frame) == frame_reader::status::need_more);  // prefix incomplete
  CHECK(reader.announced_length() == 0);
  put({0xFF, 0xFF});
  CHECK(reader.next(frame) == frame_reader::status::too_large);
  CHECK(reader.announced_length() == 0);
  CHECK(reader.next(frame) == frame_reader::status::too_large);  // it stays that way

  frame_reader at_limit(1024);
  uint32_t len = 1024;
  std::vector<uint8_t> prefix(4);
  std::memcpy(prefix.data(), &len, 4);
  auto space = at_limit.prepare(4);
  std::memcpy(space.data(), prefix.data(), 4);
  at_limit.commit(4);
  CHECK(at_limit.next(frame) == frame_reader::status::need_more);
  CHECK(at_limit.announced_length() == 1028);
  CHECK(at_limit.prepare().size() >= 1024);  // room for the rest of the frame

  frame_reader over(1024);
  len = 1025;
  std::memcpy(prefix.data(), &len, 4);
  space = over.prepare(4);
  std::memcpy(space.data(), prefix.data(), 4);
  over.commit(4);
  CHECK(over.next(frame) == frame_reader::status::too_large);
}

TEST_CASE("wire: a topic name may be the dead-letter topic of any valid name") {
  const std::string longest(kMaxNameLength, 'x');
  CHECK(dead_letter_topic("orders") == "orders.dlq");
  CHECK(valid_topic_name("orders"));
  CHECK(valid_topic_name(dead_letter_topic(longest)));
  CHECK_FALSE(valid_name(dead_letter_topic(longest)));  // groups stay at 200
  CHECK_FALSE(valid_topic_name(dead_letter_topic(dead_letter_topic(longest))));
  CHECK_FALSE(valid_topic_name(longest + "x.dlq"));
  CHECK_FALSE(valid_topic_name(longest + "xdlq"));
  CHECK_FALSE(valid_topic_name(".dlq" + longest));
  CHECK_FALSE(valid_topic_name("bad name.dlq"));
  CHECK(valid_topic_name(".dlq"));
}

TEST_CASE("wire: valid_name edge cases") {
  CHECK(valid_name("orders"));
  CHECK(valid_name("Orders.v1_eu-west-2"));
  CHECK(valid_name("a"));
  CHECK(valid_name("."));
  CHECK(valid_name("0"));
  CHECK(valid_name(std::string(kMaxNameLength, 'x')));
  CHECK_FALSE(valid_name(std::string(kMaxNameLength + 1, 'x')));
  CHECK_FALSE(valid_name(""));
  CHECK_FALSE(valid_name("a b"));
  CHECK_FALSE(valid_name("a/b"));
  CHECK_FALSE(valid_name("a:b"));
  CHECK_FALSE(valid_name("a\nb"));
  CHECK_FALSE(valid_name(std::string("a\0b", 3)));
  CHECK_FALSE(valid_name("caf\xc3\xa9"));
  CHECK_FALSE(valid_name("orders*"));
}

TEST_CASE("wire: parse_host_port edge cases") {
  auto hp = parse_host_port("127.0.0.1:7700");
  REQUIRE(hp);
  CHECK(hp->host == "127.0.0.1");
  CHECK(hp->port == 7700);
  hp = parse_host_port("localhost:0");
  REQUIRE(hp);
  CHECK(hp->host == "localhost");
  CHECK(hp->port == 0);
  hp = parse_host_port("broker.example.com:65535");
  REQUIRE(hp);
  CHECK(hp->port == 65535);
  hp = parse_host_port("h:00080");
  REQUIRE(hp);
  CHECK(hp->port == 80);

  CHECK_FALSE(parse_host_port(""));
  CHECK_FALSE(parse_host_port("localhost"));
  CHECK_FALSE(parse_host_port(":7700"));
  CHECK_FALSE(parse_host_port("localhost:"));
  CHECK_FALSE(parse_host_port("localhost:65536"));
  CHECK_FALSE(parse_host_port("localhost:99999"));
  CHECK_FALSE(parse_host_port("localhost:123456"));
  CHECK_FALSE(parse_host_port("localhost:-1"));
  CHECK_FALSE(parse_host_port("localhost:+80"));
  CHECK_FALSE(parse_host_port("localhost: 80"));
  CHECK_FALSE(parse_host_port("localhost:80x"));
  CHECK_FALSE(parse_host_port("localhost:0x50"));
}

TEST_CASE("wire: error_name gives stable names") {
  CHECK(error_name(ErrorCode::none) == "none");
  CHECK(error_name(ErrorCode::unknown_topic) == "unknown_topic");
  CHECK(error_name(ErrorCode::invalid_name) == "invalid_name");
  CHECK(error_name(ErrorCode::too_large) == "too_large");
  CHECK(error_name(ErrorCode::storage_full) == "storage_full");
  CHECK(error_name(ErrorCode::protocol) == "protocol");
  CHECK(error_name(ErrorCode::unavailable) == "unavailable");
  CHECK(error_name(static_cast<ErrorCode>(999)) == "error_999");
  CHECK(error_name(static_cast<ErrorCode>(static_cast<int>(ErrorCode::MAX) + 1)) ==
        "error_" + std::to_string(static_cast<int>(ErrorCode::MAX) + 1));
}

TEST_CASE("wire: now_us is wall-clock microseconds") {
  uint64_t a = now_us();
  uint64_t b = now_us();
  CHECK(b >= a);
  CHECK(a > 1'600'000'000'000'000ull);  // after 2020
  CHECK(a < 4'000'000'000'000'000ull);
}
