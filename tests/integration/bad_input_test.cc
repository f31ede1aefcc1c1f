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

/// A client that publishes synchronously in a loop and reads its own topic
/// back through an ephemeral subscription, until stopped.
class healthy_client {
 public:
  explicit healthy_client(const std::string& address) {
    client_ = connect_client(address, [](wharf::client_options& o) { o.request_timeout = 5s; });
    auto t = client_->create_topic("live");
    if (!t) FAIL("create live: " << t.err().to_string());
    wharf::subscribe_options o;
    o.start = wharf::start_position::earliest();
    auto sub = client_->subscribe("live", seen_.handler(), o);
    if (!sub) FAIL("subscribe live: " << sub.err().to_string());
    sub_ = std::move(*sub);
    thread_ = std::thread([this] { run(); });
  }
  ~healthy_client() { stop(); }

  void stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  /// Waits until `more` publishes succeeded after this call.
  bool wait_progress(size_t more, std::chrono::milliseconds timeout) {
    std::unique_lock lk(mu_);
    size_t target = payloads_.size() + more;
    return cv_.wait_for(lk, timeout, [&] { return payloads_.size() >= target || failed_ > 0; }) &&
           failed_ == 0;
  }
  /// After stop(): every publish succeeded and the subscription saw each
  /// record once, in order, with its payload.
  void check() {
    std::vector<std::string> published;
    {
      std::lock_guard lk(mu_);
      CHECK_MESSAGE(failed_ == 0, failed_ << " publishes failed, first: " << first_error_);
      published = payloads_;
    }
    CHECK(published.size() > 0);
    CHECK_MESSAGE(seen_.wait_for(published.size(), 20s),
                  "subscription saw " << seen_.size() << " of " << published.size());
    auto got = seen_.snapshot();
    CHECK(got.size() == published.size());
    size_t bad = 0;
    for (size_t i = 0; i < std::min(got.size(), published.size()); ++i) {
      bad += got[i].offset != i || got[i].payload != published[i];
    }
    CHECK_MESSAGE(bad == 0, bad << " records seen out of place");
  }

 private:
  void run() {
    auto deadline = std::chrono::steady_clock::now() + 90s;
    for (size_t i = 0; i < 100000 && !stop_ && std::chrono::steady_clock::now() < deadline; ++i) {
      std::string payload = "live-" + std::to_string(i);
      auto r = client_->publish("live", {.payload = payload});
      std::lock_guard lk(mu_);
      if (!r) {
        if (failed_++ == 0) first_error_ = r.err().to_string();
      } else if (r->offset != payloads_.size()) {
        if (failed_++ == 0) first_error_ = "offset " + std::to_string(r->offset) + " out of order";
      } else {
        payloads_.push_back(payload);
      }
      cv_.notify_all();
    }
  }

  std::unique_ptr<wharf::client> client_;
  collector seen_;
  std::unique_ptr<wharf::subscription> sub_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::string> payloads_;  // published[i] has offset i
  size_t failed_ = 0;
  std::string first_error_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

bool is_protocol_or_too_large(const received_frame& f) {
  return f.kind == Body::Error &&
         (f.error == ErrorCode::protocol || f.error == ErrorCode::too_large);
}

std::string describe(const std::vector<received_frame>& frames) {
  std::string s;
  for (auto& f : frames) {
    s += std::string(wharf::wire::EnumNameBody(f.kind)) + "(rid " + std::to_string(f.request_id);
    if (f.kind == Body::Error) s += ", " + wharf::wire::error_name(f.error);
    s += ") ";
  }
  return s.empty() ? "no frames" : s;
}

/// Connects and says Hello; checks the HelloOk.
std::unique_ptr<raw_connection> handshaken(uint16_t port) {
  auto c = std::make_unique<raw_connection>(port);
  REQUIRE(c->connected());
  REQUIRE(c->send(hello_frame(1)));
  auto frames = c->read_frames(1, kCloseTimeout);
  REQUIRE_MESSAGE(frames.size() == 1, describe(frames));
  REQUIRE(frames[0].kind == Body::HelloOk);
  REQUIRE(frames[0].request_id == 1);
  return c;
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

TEST_CASE("silent or stalled connections are closed after the handshake timeout") {
  temp_dir dir;
  broker_process broker(dir.file("data"), {"--handshake-timeout-ms", "300"});
  REQUIRE(broker.start());
  const uint16_t port = broker.port();
  auto c = connect_client(broker.address());
  REQUIRE(c->create_topic("t").ok());

  raw_connection silent(port);
  raw_connection stalled(port);
  REQUIRE(silent.connected());
  REQUIRE(stalled.connected());
  auto hello = hello_frame(1);
  REQUIRE(stalled.send(std::span(hello).first(hello.size() - 1)));  // never completes
  for (auto* conn : {&silent, &stalled}) {
    std::vector<received_frame> frames;
    CHECK(conn->wait_closed(kCloseTimeout, &frames));
    REQUIRE_MESSAGE(frames.size() == 1, describe(frames));
    CHECK(frames[0].kind == Body::Error);
    CHECK_MESSAGE(frames[0].error == ErrorCode::timeout, describe(frames));
  }
  // A client that said Hello in time is not affected, however long it idles:
  // outlive one more handshake timeout (another silent connection closing).
  auto ok = handshaken(port);
  raw_connection witness(port);
  REQUIRE(witness.connected());
  REQUIRE(witness.wait_closed(kCloseTimeout));
  REQUIRE(c->publish("t", {.payload = "still here"}).ok());
  REQUIRE(ok->send(describe_frame(5, "t")));
  auto frames = ok->read_frames(1, kCloseTimeout);
  REQUIRE_MESSAGE(frames.size() == 1, describe(frames));
  CHECK(frames[0].kind == Body::TopicInfo);
  CHECK(c->publish("t", {.payload = "and here"}).ok());
}

TEST_CASE("connections above max_connections are refused with too_many_connections") {
  temp_dir dir;
  broker_process broker(dir.file("data"), {"--max-connections", "2"});
  REQUIRE(broker.start());
  const uint16_t port = broker.port();
  auto first = handshaken(port);
  auto second = handshaken(port);
  raw_connection third(port);
  REQUIRE(third.connected());
  std::vector<received_frame> frames;
  CHECK(third.wait_closed(kCloseTimeout, &frames));
  REQUIRE_MESSAGE(frames.size() == 1, describe(frames));
  CHECK_MESSAGE(frames[0].error == ErrorCode::too_many_connections, describe(frames));
  // The SDK reports it as a failed connect, and the existing connections work.
  wharf::client_options o;
  o.broker = broker.address();
  o.connect_timeout = 2s;
  o.reconnect = false;
  auto refused = wharf::client::connect(o);
  REQUIRE_FALSE(refused.ok());
  CHECK_MESSAGE(refused.err().code == wharf::errc::too_many_connections, refused.err().to_string());
  REQUIRE(first->send(describe_frame(2, "nothing")));
  auto reply = first->read_frames(1, kCloseTimeout);
  REQUIRE(reply.size() == 1);
  CHECK(reply[0].error == ErrorCode::unknown_topic);
  // Once one closes, a new client gets in.
  second->close_now();
  std::unique_ptr<wharf::client> later;
  for (int attempt = 0; attempt < 50 && !later;
       ++attempt) {  // the close reaches the broker asynchronously
    auto r = wharf::client::connect(o);
    if (r) later = std::move(*r);
  }
  REQUIRE(later);
  CHECK(later->list_topics().ok());
}
