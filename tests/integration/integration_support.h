// Shared helpers of the integration tests: SDK clients against a test
// broker, a collector for ephemeral subscriptions that the test can wait on
// (condition variable, bounded), a tiny JSON number reader for the CLI's
// --json output, and raw TCP connections for feeding the broker bad bytes.
//
// Everything here waits on events with a deadline; nothing sleeps to
// synchronise.
#pragma once

#include <doctest/doctest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>
#include <wharf/client.h>

#include <arpa/inet.h>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "loopback_socket.h"
#include "process.h"
#include "wire.h"

namespace wharf::test {

using namespace std::chrono_literals;

/// Connects an SDK client to `address`; `tweak` adjusts the options first.
/// Fails the test case when the connection cannot be made.
template <class Tweak>
std::unique_ptr<wharf::client> connect_client_unsettled(const std::string& address, Tweak tweak) {
  wharf::client_options o;
  o.broker = address;
  o.client_name = "integration-test";
  o.connect_timeout = 5s;
  o.request_timeout = 10s;
  o.reconnect_backoff_min = 20ms;
  o.reconnect_backoff_max = 200ms;
  tweak(o);
  auto c = wharf::client::connect(o);
  if (!c) FAIL("cannot connect to " << address << ": " << c.err().to_string());
  return std::move(*c);
}

/// Like connect_client_unsettled, then makes one round trip so that the
/// client's I/O thread has finished its connection set-up. This works around
/// a known SDK bug (connect() returns before the I/O thread has re-opened
/// subscriptions, so a subscribe() right after connect() can be sent twice
/// and deliver records twice). The tests for that bug use
/// connect_client_unsettled; every other test uses this.
template <class Tweak>
std::unique_ptr<wharf::client> connect_client(const std::string& address, Tweak tweak) {
  auto c = connect_client_unsettled(address, tweak);
  auto settle = c->list_topics();
  if (!settle) FAIL("first request to " << address << " failed: " << settle.err().to_string());
  return c;
}

inline std::unique_ptr<wharf::client> connect_client(const std::string& address) {
  return connect_client(address, [](wharf::client_options&) {});
}

/// One record as a subscriber saw it.
struct seen_record {
  uint64_t offset = 0;
  std::string payload;
  bool operator==(const seen_record&) const = default;
};

inline std::ostream& operator<<(std::ostream& os, const seen_record& r) {
  return os << "{" << r.offset << ", '" << r.payload << "'}";
}

/// Receives the messages of an ephemeral subscription (on its worker thread)
/// and lets the test wait until enough have arrived. Declare it before the
/// subscription so the subscription is destroyed first.
class collector {
 public:
  wharf::message_handler handler() {
    return [this](wharf::message m) {
      std::lock_guard lk(mu_);
      records_.push_back({m.offset(), std::string(m.payload())});
      cv_.notify_all();
    };
  }
  /// True once at least `n` records arrived; false after `timeout`.
  bool wait_for(size_t n, std::chrono::milliseconds timeout) {
    std::unique_lock lk(mu_);
    return cv_.wait_for(lk, timeout, [&] { return records_.size() >= n; });
  }
  /// True once a record with `payload` arrived; false after `timeout`.
  bool wait_for_payload(const std::string& payload, std::chrono::milliseconds timeout) {
    std::unique_lock lk(mu_);
    return cv_.wait_for(lk, timeout, [&] {
      for (auto it = records_.rbegin(); it != records_.rend(); ++it) {
        if (it->payload == payload) return true;
      }
      return false;
    });
  }
  std::vector<seen_record> snapshot() const {
    std::lock_guard lk(mu_);
    return records_;
  }
  size_t size() const {
    std::lock_guard lk(mu_);
    return records_.size();
  }

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<seen_record> records_;
};

/// Reads `topic` from its earliest record with an ephemeral subscription
/// until `count` records arrived (or `timeout`), and returns what arrived.
inline std::vector<seen_record> read_from_earliest(wharf::client& c, const std::string& topic,
                                                   size_t count,
                                                   std::chrono::milliseconds timeout = 60s) {
  collector got;
  wharf::subscribe_options o;
  o.start = wharf::start_position::earliest();
  auto sub = c.subscribe(topic, got.handler(), o);
  if (!sub) {
    FAIL_CHECK("subscribe to " << topic << " failed: " << sub.err().to_string());
    return {};
  }
  bool all = got.wait_for(count, timeout);
  CHECK_MESSAGE(all, "received " << got.size() << " of " << count << " records of " << topic);
  (*sub)->close();
  return got.snapshot();
}

/// Where a record went, per the acks a producer received.
class ack_log {
 public:
  /// Publish callback for record `payload`.
  wharf::publish_callback callback(std::string payload) {
    return [this, p = std::move(payload)](const wharf::result<wharf::publish_ack>& r) {
      std::lock_guard lk(mu_);
      if (r) {
        acked_[r->offset] = p;
        ++ok_;
      } else {
        errors_.push_back(r.err().code);
      }
      ++done_;
      cv_.notify_all();
    };
  }
  /// True once at least `n` publishes were acked; false after `timeout`.
  bool wait_acked(size_t n, std::chrono::milliseconds timeout) {
    std::unique_lock lk(mu_);
    return cv_.wait_for(lk, timeout, [&] { return ok_ >= n; });
  }
  /// True once `n` publishes completed (acked or failed).
  bool wait_done(size_t n, std::chrono::milliseconds timeout) {
    std::unique_lock lk(mu_);
    return cv_.wait_for(lk, timeout, [&] { return done_ >= n; });
  }
  std::map<uint64_t, std::string> acked() const {
    std::lock_guard lk(mu_);
    return acked_;
  }
  std::vector<wharf::errc> errors() const {
    std::lock_guard lk(mu_);
    return errors_;
  }
  size_t ok_count() const {
    std::lock_guard lk(mu_);
    return ok_;
  }
  size_t done_count() const {
    std::lock_guard lk(mu_);
    return done_;
  }

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::map<uint64_t, std::string> acked_;  // offset -> payload
  std::vector<wharf::errc> errors_;
  size_t ok_ = 0, done_ = 0;
};

/// The number after `"key":` in one JSON object printed by the CLI.
inline std::optional<uint64_t> json_u64(const std::string& json, const std::string& key) {
  auto at = json.find("\"" + key + "\":");
  if (at == std::string::npos) return std::nullopt;
  at += key.size() + 3;
  if (at >= json.size() || json[at] < '0' || json[at] > '9') return std::nullopt;
  uint64_t v = 0;
  while (at < json.size() && json[at] >= '0' && json[at] <= '9') v = v * 10 + (json[at++] - '0');
  return v;
}

/// True when the CLI failed the documented way: non-zero exit and exactly one
/// line on stderr that names `code` ("wharf: unknown_topic: ...").
inline bool cli_failed_with(const cli_result& r, const std::string& code) {
  auto err_lines = lines(r.err);
  return r.exit_code != 0 && err_lines.size() == 1 && err_lines[0].find(code) != std::string::npos;
}

// ---- raw protocol access ---------------------------------------------------

/// A frame as the test builds it: size prefix included.
inline std::vector<uint8_t> finished_bytes(flatbuffers::FlatBufferBuilder& fbb) {
  return {fbb.GetBufferPointer(), fbb.GetBufferPointer() + fbb.GetSize()};
}

inline std::vector<uint8_t> hello_frame(uint64_t rid = 1,
                                        uint32_t version = wire::kProtocolVersion) {
  flatbuffers::FlatBufferBuilder fbb;
  auto name = fbb.CreateString("raw-test");
  wire::finish_frame(fbb, rid, wire::CreateHello(fbb, version, name));
  return finished_bytes(fbb);
}

inline std::vector<uint8_t> describe_frame(uint64_t rid, const std::string& topic) {
  flatbuffers::FlatBufferBuilder fbb;
  auto name = fbb.CreateString(topic);
  wire::finish_frame(fbb, rid, wire::CreateDescribeTopic(fbb, name));
  return finished_bytes(fbb);
}

/// A Publish frame whose nested RecordBatch holds one record per payload.
inline std::vector<uint8_t> publish_frame(uint64_t rid, const std::string& topic,
                                          const std::vector<std::string>& payloads) {
  flatbuffers::FlatBufferBuilder inner;
  std::vector<flatbuffers::Offset<wire::Record>> recs;
  for (auto& p : payloads) {
    auto v = inner.CreateVector(reinterpret_cast<const uint8_t*>(p.data()), p.size());
    recs.push_back(wire::CreateRecord(inner, 0, 0, v));
  }
  auto vec = inner.CreateVector(recs);
  inner.Finish(wire::CreateRecordBatch(inner, vec), wire::RecordBatchIdentifier());
  flatbuffers::FlatBufferBuilder fbb;
  auto name = fbb.CreateString(topic);
  auto nested = wire::create_nested(fbb, {inner.GetBufferPointer(), inner.GetSize()});
  wire::finish_frame(fbb, rid, wire::CreatePublish(fbb, name, nested));
  return finished_bytes(fbb);
}

/// What the broker sent on a raw connection, decoded.
struct received_frame {
  wire::Body kind = wire::Body::NONE;
  uint64_t request_id = 0;
  wire::ErrorCode error = wire::ErrorCode::none;  // for Error frames
};

/// A blocking TCP connection to the broker for sending arbitrary bytes.
class raw_connection : public loopback_socket {
 public:
  using loopback_socket::loopback_socket;
  using loopback_socket::send;
  bool send(std::span<const uint8_t> bytes) {
    return send(std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
  }

  /// Reads whole frames until `n` frames arrived, the broker closed the
  /// connection, or `timeout` passed. Frames failing the verifier end the read.
  std::vector<received_frame> read_frames(size_t n, std::chrono::milliseconds timeout) {
    std::vector<received_frame> out;
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (out.size() < n) {
      if (!parse_one(out)) {
        if (!read_some(deadline)) break;
      }
    }
    return out;
  }

  /// Reads (and decodes) until the broker closes the connection or
  /// `timeout` passes. True when closed: read returned 0 or an error.
  bool wait_closed(std::chrono::milliseconds timeout,
                   std::vector<received_frame>* frames = nullptr) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (true) {
      std::vector<received_frame> tmp;
      while (parse_one(tmp)) {
      }
      if (frames) frames->insert(frames->end(), tmp.begin(), tmp.end());
      if (closed_) return true;
      if (!read_some(deadline) && !closed_) return false;
    }
  }

 private:
  bool parse_one(std::vector<received_frame>& out) {
    if (in_.size() < 4) return false;
    uint32_t len;
    std::memcpy(&len, in_.data(), 4);
    if (in_.size() < 4 + size_t{len}) return false;
    // Copy into 8-byte aligned storage for the verifier.
    std::vector<uint64_t> aligned((len + 4) / 8 + 1);
    std::memcpy(aligned.data(), in_.data(), len + 4);
    auto bytes =
        std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(aligned.data()), len + 4);
    in_.erase(in_.begin(), in_.begin() + 4 + len);
    const wire::Frame* f = wire::verify_frame(bytes);
    received_frame rf;
    if (f) {
      rf.kind = f->body_type();
      rf.request_id = f->request_id();
      if (auto e = f->body_as_Error()) rf.error = e->code();
    }
    out.push_back(rf);
    return true;
  }

};

}  // namespace wharf::test
