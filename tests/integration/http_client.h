// A minimal HTTP/1.1 client for the integration tests, over a plain blocking
// socket, so a test can also send malformed, oversized, pipelined or slow
// requests byte by byte. It reads responses with Content-Length bodies (all
// wharfd sends), skipping 1xx interim responses. Every read has a deadline.
#pragma once

#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <cctype>
#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "integration_support.h"
#include "loopback_socket.h"

namespace wharf::test {

struct http_result {
  int status = 0;
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;
  std::vector<int> interim;  // 1xx statuses that came first
};

class http_client : public loopback_socket {
 public:
  using loopback_socket::loopback_socket;

  /// Reads one final response; nullopt when the connection closed or
  /// `timeout` passed first.
  std::optional<http_result> read_response(
      std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    bool head_only = head_only_;
    head_only_ = false;
    http_result r;
    while (true) {
      size_t end;
      while ((end = in_.find("\r\n\r\n")) == std::string::npos) {
        if (!read_some(deadline)) return std::nullopt;
      }
      std::string head = in_.substr(0, end);
      in_.erase(0, end + 4);
      // "HTTP/1.1 200 OK"
      if (head.size() < 12 || head.compare(0, 5, "HTTP/") != 0) return std::nullopt;
      r.status = std::stoi(head.substr(9, 3));
      r.headers.clear();
      size_t pos = head.find("\r\n");
      while (pos != std::string::npos) {
        size_t next = head.find("\r\n", pos + 2);
        std::string line =
            head.substr(pos + 2, next == std::string::npos ? std::string::npos : next - pos - 2);
        size_t colon = line.find(':');
        if (colon != std::string::npos) {
          std::string name = line.substr(0, colon);
          for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
          size_t v = line.find_first_not_of(' ', colon + 1);
          r.headers[name] = v == std::string::npos ? "" : line.substr(v);
        }
        pos = next;
      }
      if (r.status >= 100 && r.status < 200) {
        r.interim.push_back(r.status);
        continue;
      }
      size_t length =
          r.headers.count("content-length") ? std::stoul(r.headers["content-length"]) : 0;
      if (!head_only) {
        while (in_.size() < length) {
          if (!read_some(deadline)) return std::nullopt;
        }
        r.body = in_.substr(0, length);
        in_.erase(0, length);
      }
      return r;
    }
  }

  /// Reads (discarding) until the server closes the connection or `timeout`
  /// passes. True when closed.
  bool wait_closed(std::chrono::milliseconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!closed_) {
      if (!read_some(deadline) && !closed_) return false;
    }
    return true;
  }

  /// True once the received bytes contain `text` (not consumed); false after `timeout`.
  bool wait_for_text(std::string_view text, std::chrono::milliseconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (in_.find(text) == std::string::npos) {
      if (!read_some(deadline)) return false;
    }
    return true;
  }

  /// The next response answers a HEAD request: it has no body.
  void expect_head() { head_only_ = true; }
  /// Bytes received and not yet consumed by read_response().
  const std::string& unread() const { return in_; }

 private:
  bool head_only_ = false;
};

/// One request on a fresh connection ("Connection: close"); nullopt if no
/// response came. `headers` are extra header lines without CRLF.
inline std::optional<http_result> http_request(uint16_t port, const std::string& method,
                                               const std::string& target,
                                               const std::string& body = "",
                                               const std::vector<std::string>& headers = {}) {
  http_client c(port);
  if (!c.connected()) return std::nullopt;
  std::string req = method + " " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n";
  for (const auto& h : headers) req += h + "\r\n";
  if (method == "POST" || !body.empty())
    req += "Content-Length: " + std::to_string(body.size()) + "\r\n";
  req += "\r\n" + body;
  if (!c.send(req)) return std::nullopt;
  return c.read_response();
}

/// A broker with HTTP on an ephemeral port; `args` are extra flags.
struct http_broker {
  temp_dir dir;
  broker_process broker;
  explicit http_broker(std::vector<std::string> args = {})
      : broker(dir.file("data"), std::move(args)) {
    broker.enable_http();
    REQUIRE(broker.start());
    REQUIRE(broker.http_port() != 0);
  }
  uint16_t port() const { return broker.http_port(); }
  std::string url(const std::string& target) const {
    return "http://" + broker.http_address() + target;
  }
  /// The broker still answers (after whatever the test did to it).
  void check_alive() {
    CHECK(broker.running());
    auto r = http_request(port(), "GET", "/healthz");
    REQUIRE(r);
    CHECK(r->status == 200);
  }
};

}  // namespace wharf::test
