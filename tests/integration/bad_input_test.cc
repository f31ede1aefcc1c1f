// Acceptance 3: hostile bytes on raw TCP connections. Each bad connection is
// closed by the broker (with an Error frame where it can name the problem),
// while a well-behaved SDK client keeps publishing and consuming before,
// during and after, and records stored earlier stay intact.
#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <random>
#include <thread>

#include "integration_support.h"

using namespace wharf::test;
using namespace std::chrono_literals;
using wharf::wire::Body;
using wharf::wire::ErrorCode;

namespace {

constexpr auto kCloseTimeout = 10s;

bool is_protocol_or_too_large(const received_frame& f) {
  return f.kind == Body::Error &&
         (f.error == ErrorCode::protocol || f.error == ErrorCode::too_large);
}

/// Sends `bytes` on `c` and expects one Error frame (protocol or too_large)
/// and then the broker closing the connection.
void expect_error_then_close(raw_connection& c, std::span<const uint8_t> bytes) {
  c.send(bytes);  // may fail part-way if the broker already closed; that is fine
  std::vector<received_frame> frames;
  bool closed = c.wait_closed(kCloseTimeout, &frames);
  CHECK_MESSAGE(closed, "the broker kept the connection open; got " << describe(frames));
  REQUIRE_MESSAGE(frames.size() == 1, describe(frames));
  CHECK_MESSAGE(is_protocol_or_too_large(frames[0]), describe(frames));
}

}  // namespace

TEST_CASE("bad input on raw connections closes them while other clients go on") {
  temp_dir dir;
  broker_process broker(dir.file("data"));
  REQUIRE(broker.start());
  const auto addr = broker.address();
  const uint16_t port = broker.port();

  // Records stored before any bad input.
  std::vector<std::string> stored;
  auto keeper = connect_client(addr);
  REQUIRE(keeper->create_topic("stable").ok());
  for (int i = 0; i < 500; ++i) {
    stored.push_back("stable-" + std::to_string(i));
    keeper->publish_async("stable", {.payload = stored.back()}, [](const auto&) {});
  }
  REQUIRE(keeper->flush(20s).ok());

  healthy_client healthy(addr);
  REQUIRE(healthy.wait_progress(50, 20s));  // before

  std::mt19937 rng(20240611);
  auto random_bytes = [&](size_t n) {
    std::vector<uint8_t> v(n);
    for (auto& b : v) b = static_cast<uint8_t>(rng());
    return v;
  };

  {
    INFO("(a) random bytes with a small length prefix before Hello");
    auto body = random_bytes(256);
    std::vector<uint8_t> bytes{0x00, 0x01, 0x00, 0x00};  // 256
    bytes.insert(bytes.end(), body.begin(), body.end());
    REQUIRE(wharf::wire::verify_frame(bytes) == nullptr);
    raw_connection c(port);
    REQUIRE(c.connected());
    expect_error_then_close(c, bytes);
  }
  {
    INFO("(a) 64 KiB of random bytes before Hello");
    auto bytes = random_bytes(64 * 1024);
    uint32_t len;
    std::memcpy(&len, bytes.data(), 4);
    // The broker can decide: either the length is over max_frame_bytes, or
    // the whole (invalid) frame is here.
    REQUIRE((len > (8u << 20) || len + 4 <= bytes.size()));
    raw_connection c(port);
    REQUIRE(c.connected());
    expect_error_then_close(c, bytes);
  }
  {
    INFO("(a) random bytes after a valid Hello");
    auto c = handshaken(port);
    auto body = random_bytes(1000);
    std::vector<uint8_t> bytes{0xe8, 0x03, 0x00, 0x00};  // 1000
    bytes.insert(bytes.end(), body.begin(), body.end());
    REQUIRE(wharf::wire::verify_frame(bytes) == nullptr);
    expect_error_then_close(*c, bytes);
  }
  CHECK(healthy.wait_progress(20, 20s));
  {
    INFO("(b) truncated Hello, then half-close");
    auto hello = hello_frame(1);
    raw_connection c(port);
    REQUIRE(c.connected());
    REQUIRE(c.send(std::span(hello).first(hello.size() / 2)));
    c.shutdown_write();
    std::vector<received_frame> frames;
    CHECK(c.wait_closed(kCloseTimeout, &frames));
    for (auto& f : frames) CHECK_MESSAGE(f.kind == Body::Error, describe(frames));
  }
  {
    INFO("(b) Hello, truncated request, then close");
    auto c = handshaken(port);
    auto req = describe_frame(2, "stable");
    REQUIRE(c->send(std::span(req).first(req.size() - 3)));
    c->close_now();
    auto d = handshaken(port);  // the broker still accepts and answers
    REQUIRE(d->send(describe_frame(7, "stable")));
    auto frames = d->read_frames(1, kCloseTimeout);
    REQUIRE_MESSAGE(frames.size() == 1, describe(frames));
    CHECK(frames[0].kind == Body::TopicInfo);
    CHECK(frames[0].request_id == 7);
  }
  CHECK(healthy.wait_progress(20, 20s));
  {
    INFO("(c) huge length prefix 0x7fffffff before Hello");
    std::vector<uint8_t> bytes{0xff, 0xff, 0xff, 0x7f, 'W', 'H', 'R', 'F', 0, 0, 0, 0};
    raw_connection c(port);
    REQUIRE(c.connected());
    expect_error_then_close(c, bytes);
  }
  {
    INFO("(c) huge length prefix 0x7fffffff after Hello");
    auto c = handshaken(port);
    std::vector<uint8_t> bytes{0xff, 0xff, 0xff, 0x7f};
    auto tail = random_bytes(4096);
    bytes.insert(bytes.end(), tail.begin(), tail.end());
    expect_error_then_close(*c, bytes);
  }
  {
    INFO("(c) length just above max_frame_bytes (8 MiB)");
    auto c = handshaken(port);
    uint32_t len = (8u << 20) + 1;
    std::vector<uint8_t> bytes(4);
    std::memcpy(bytes.data(), &len, 4);
    expect_error_then_close(*c, bytes);
  }
  CHECK(healthy.wait_progress(20, 20s));
  {
    INFO("(d) Hello, then a valid-length frame with every body byte flipped");
    auto c = handshaken(port);
    auto frame = describe_frame(2, "stable");
    for (size_t i = 4; i < frame.size(); ++i) frame[i] ^= 0xff;
    REQUIRE(wharf::wire::verify_frame(frame) == nullptr);
    expect_error_then_close(*c, frame);
  }
  {
    INFO("(d) Hello, then a frame whose root offset points outside it");
    auto c = handshaken(port);
    auto frame = describe_frame(2, "stable");
    uint32_t bogus = static_cast<uint32_t>(frame.size()) * 4;
    std::memcpy(frame.data() + 4, &bogus, 4);
    REQUIRE(wharf::wire::verify_frame(frame) == nullptr);
    expect_error_then_close(*c, frame);
  }
  {
    INFO("(d) Hello, then a Publish whose nested RecordBatch is corrupted");
    auto c = handshaken(port);
    auto frame = publish_frame(2, "stable", {"evil-1", "evil-2"});
    REQUIRE(wharf::wire::verify_frame(frame) != nullptr);
    // The nested batch starts with its root offset, right before its
    // identifier "WREC": point the root outside the nested buffer.
    auto at = std::search(frame.begin(), frame.end(), std::begin("WREC"), std::end("WREC") - 1);
    REQUIRE(at - frame.begin() >= 8);
    uint32_t bogus = 0x00ffff00;
    std::memcpy(&*(at - 4), &bogus, 4);
    REQUIRE(wharf::wire::verify_frame(frame) == nullptr);
    expect_error_then_close(*c, frame);
  }
  CHECK(healthy.wait_progress(20, 20s));
  {
    INFO("the first frame is not Hello");
    raw_connection c(port);
    REQUIRE(c.connected());
    REQUIRE(c.send(describe_frame(1, "stable")));
    std::vector<received_frame> frames;
    CHECK(c.wait_closed(kCloseTimeout, &frames));
    REQUIRE_MESSAGE(frames.size() == 1, describe(frames));
    CHECK(frames[0].kind == Body::Error);
    CHECK_MESSAGE(frames[0].error == ErrorCode::protocol, describe(frames));
  }
  {
    INFO("Hello with an unsupported protocol version");
    raw_connection c(port);
    REQUIRE(c.connected());
    REQUIRE(c.send(hello_frame(1, 99)));
    std::vector<received_frame> frames;
    CHECK(c.wait_closed(kCloseTimeout, &frames));
    REQUIRE_MESSAGE(frames.size() == 1, describe(frames));
    CHECK(frames[0].kind == Body::Error);
    CHECK_MESSAGE(frames[0].error == ErrorCode::unsupported_version, describe(frames));
  }
  {
    INFO("a second Hello, and a frame only the broker may send");
    auto c = handshaken(port);
    REQUIRE(c->send(hello_frame(2)));
    std::vector<received_frame> frames;
    CHECK(c->wait_closed(kCloseTimeout, &frames));
    REQUIRE_MESSAGE(frames.size() == 1, describe(frames));
    CHECK_MESSAGE(frames[0].error == ErrorCode::protocol, describe(frames));
  }
  {
    INFO("many bad connections at once");
    std::vector<std::unique_ptr<raw_connection>> conns;
    for (int i = 0; i < 50; ++i) {
      conns.push_back(std::make_unique<raw_connection>(port));
      REQUIRE(conns.back()->connected());
      auto junk = random_bytes(64 + i);
      junk[0] = static_cast<uint8_t>(junk.size() - 4);
      junk[1] = junk[2] = junk[3] = 0;
      conns.back()->send(junk);
    }
    size_t closed = 0;
    for (auto& c : conns) closed += c->wait_closed(kCloseTimeout);
    CHECK(closed == conns.size());
  }
  CHECK(healthy.wait_progress(50, 20s));  // after
  healthy.stop();
  healthy.check();

  // Records stored before are unharmed, and the broker still speaks to raw
  // clients that follow the protocol.
  auto info = keeper->describe_topic("stable");
  REQUIRE(info.ok());
  CHECK(info->first_offset == 0);
  CHECK(info->next_offset == stored.size());
  auto records = read_from_earliest(*keeper, "stable", stored.size());
  REQUIRE(records.size() == stored.size());
  for (size_t i = 0; i < stored.size(); ++i) {
    if (records[i].offset != i || records[i].payload != stored[i]) {
      FAIL_CHECK("stable record " << i << " is " << records[i]);
      break;
    }
  }
  keeper.reset();
  CHECK(broker.stop() == 0);
}
