#include "http_receiver.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <stdexcept>

namespace wharf::tools {
namespace {

constexpr size_t kMaxHead = 64 * 1024;
constexpr size_t kMaxBody = 64 * 1024 * 1024;

const char* reason(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 201:
      return "Created";
    case 204:
      return "No Content";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 404:
      return "Not Found";
    case 429:
      return "Too Many Requests";
    case 500:
      return "Internal Server Error";
    case 503:
      return "Service Unavailable";
    default:
      return "Status";
  }
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

std::string trim(const std::string& s) {
  size_t b = s.find_first_not_of(" \t"), e = s.find_last_not_of(" \t\r");
  return b == std::string::npos ? "" : s.substr(b, e - b + 1);
}

}  // namespace

http_receiver::http_receiver(const std::string& host, uint16_t port, handler h)
    : handler_(std::move(h)), host_(host) {
  listen_fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  if (inet_pton(AF_INET, host.c_str(), &a.sin_addr) != 1 ||
      bind(listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      ::listen(listen_fd_, 128) != 0 || pipe(wake_) != 0) {
    ::close(listen_fd_);
    throw std::runtime_error("cannot listen on " + host + ":" + std::to_string(port));
  }
  socklen_t len = sizeof a;
  getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&a), &len);
  port_ = ntohs(a.sin_port);
  acceptor_ = std::thread([this] { accept_loop(); });
}

http_receiver::~http_receiver() {
  stopping_ = true;
  (void)!write(wake_[1], "x", 1);
  acceptor_.join();
  std::vector<std::thread> threads;
  {
    std::lock_guard lk(mu_);
    for (int fd : conns_) shutdown(fd, SHUT_RDWR);
    threads = std::move(threads_);
  }
  for (auto& t : threads) t.join();
  ::close(listen_fd_);
  ::close(wake_[0]);
  ::close(wake_[1]);
}

std::string http_receiver::url(const std::string& path) const {
  return "http://" + host_ + ":" + std::to_string(port_) + path;
}

void http_receiver::accept_loop() {
  while (!stopping_) {
    pollfd p[2] = {{listen_fd_, POLLIN, 0}, {wake_[0], POLLIN, 0}};
    if (poll(p, 2, 1000) <= 0 || stopping_) continue;
    int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    std::lock_guard lk(mu_);
    conns_.push_back(fd);
    threads_.emplace_back([this, fd] { serve(fd); });
  }
}

void http_receiver::serve(int fd) {
  std::string buf;
  char chunk[16384];
  auto fill = [&]() -> bool {  // false on EOF, error or stop
    while (!stopping_) {
      pollfd p[2] = {{fd, POLLIN, 0}, {wake_[0], POLLIN, 0}};
      int r = poll(p, 2, 1000);
      if (r < 0) return false;
      if (r == 0) continue;
      if (p[1].revents) return false;
      ssize_t n = read(fd, chunk, sizeof chunk);
      if (n <= 0) return false;
      buf.append(chunk, static_cast<size_t>(n));
      return true;
    }
    return false;
  };
  bool open = true;
  while (open) {
    size_t head_end;
    while ((head_end = buf.find("\r\n\r\n")) == std::string::npos) {
      if (buf.size() > kMaxHead || !fill()) {
        open = false;
        break;
      }
    }
    if (!open) break;
    http_request req;
    std::string head = buf.substr(0, head_end);
    buf.erase(0, head_end + 4);
    size_t line_end = head.find("\r\n");
    std::string first = head.substr(0, line_end);
    size_t sp1 = first.find(' '), sp2 = first.rfind(' ');
    if (sp1 == std::string::npos || sp2 <= sp1) break;
    req.method = first.substr(0, sp1);
    req.target = first.substr(sp1 + 1, sp2 - sp1 - 1);
    size_t pos = line_end == std::string::npos ? head.size() : line_end + 2;
    while (pos < head.size()) {
      size_t e = head.find("\r\n", pos);
      if (e == std::string::npos) e = head.size();
      std::string line = head.substr(pos, e - pos);
      size_t colon = line.find(':');
      if (colon != std::string::npos)
        req.headers[lower(line.substr(0, colon))] = trim(line.substr(colon + 1));
      pos = e + 2;
    }
    size_t length = 0;
    try {
      length =
          std::stoul(req.header("content-length").empty() ? "0" : req.header("content-length"));
    } catch (...) {
      break;
    }
    if (length > kMaxBody) break;
    while (buf.size() < length) {
      if (!fill()) {
        open = false;
        break;
      }
    }
    if (!open) break;
    req.body = buf.substr(0, length);
    buf.erase(0, length);
    http_answer a = handler_(req);
    std::string out = "HTTP/1.1 " + std::to_string(a.status) + " " + reason(a.status) + "\r\n";
    for (auto& [k, v] : a.headers) out += k + ": " + v + "\r\n";
    out += "Content-Length: " + std::to_string(a.body.size()) + "\r\n\r\n" + a.body;
    for (size_t done = 0; done < out.size();) {
      ssize_t n = ::send(fd, out.data() + done, out.size() - done, MSG_NOSIGNAL);
      if (n <= 0) {
        open = false;
        break;
      }
      done += static_cast<size_t>(n);
    }
    if (lower(req.header("connection")) == "close") break;
  }
  std::lock_guard lk(mu_);
  conns_.erase(std::remove(conns_.begin(), conns_.end(), fd), conns_.end());
  ::close(fd);
}

}  // namespace wharf::tools
