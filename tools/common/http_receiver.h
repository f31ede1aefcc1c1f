// http_receiver: a small blocking HTTP/1.1 server on loopback for webhook
// receivers: the example receiver (tools/examples/webhook) and the
// integration tests. One thread accepts, one thread per connection reads
// requests (keep-alive, Content-Length bodies) and answers with what the
// handler returns. Not a production server: no chunked bodies, no TLS.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace wharf::tools {

struct http_request {
  std::string method, target;
  std::map<std::string, std::string> headers;  // names lower-cased
  std::string body;
  std::string header(const std::string& lower_name) const {
    auto it = headers.find(lower_name);
    return it == headers.end() ? "" : it->second;
  }
};

struct http_answer {
  int status = 200;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
};

class http_receiver {
 public:
  using handler = std::function<http_answer(const http_request&)>;
  /// Listens on host:port (port 0 = ephemeral); throws std::runtime_error on failure.
  http_receiver(const std::string& host, uint16_t port, handler h);
  ~http_receiver();  // stops: closes every socket and joins the threads
  http_receiver(const http_receiver&) = delete;
  http_receiver& operator=(const http_receiver&) = delete;

  uint16_t port() const { return port_; }
  std::string url(const std::string& path = "/") const;

 private:
  void accept_loop();
  void serve(int fd);

  handler handler_;
  std::string host_;
  uint16_t port_ = 0;
  int listen_fd_ = -1;
  int wake_[2] = {-1, -1};  // a pipe that wakes every poll() at stop
  std::atomic<bool> stopping_{false};
  std::mutex mu_;
  std::vector<std::thread> threads_;
  std::vector<int> conns_;
  std::thread acceptor_;
};

}  // namespace wharf::tools
