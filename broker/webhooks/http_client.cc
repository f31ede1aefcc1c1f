#include "webhooks/http_client.h"

#include <algorithm>
#include <mutex>

#include "log.h"
#include "wire.h"

namespace wharf::webhooks {
namespace {

constexpr size_t kKeptBodyBytes = 200;  // of a failed answer, for describe

}  // namespace

const char* to_string(http_response::outcome o) {
  switch (o) {
    case http_response::outcome::ok:
      return "success";
    case http_response::outcome::status:
      return "http_error";
    case http_response::outcome::timeout:
      return "timeout";
    case http_response::outcome::connect:
      return "connect_error";
    case http_response::outcome::other:
      return "error";
  }
  return "?";
}

struct http_client::transfer {
  uint64_t id = 0;
  CURL* easy = nullptr;
  curl_slist* headers = nullptr;
  http_request request;
  done_fn done;
  uint64_t started_us = 0;
  std::string body_start;  // first bytes of the answer
  char error[CURL_ERROR_SIZE] = {};
};

// One watched socket. curl owns the socket; we own the uv_poll_t, which is
// freed in its close callback.
struct http_client::socket_watch {
  uv_poll_t poll;
  http_client* owner;
  curl_socket_t fd;
};

http_client::http_client(uv_loop_t* loop) : loop_(loop) {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
  multi_ = curl_multi_init();
  curl_multi_setopt(multi_, CURLMOPT_SOCKETFUNCTION, &http_client::on_socket);
  curl_multi_setopt(multi_, CURLMOPT_SOCKETDATA, this);
  curl_multi_setopt(multi_, CURLMOPT_TIMERFUNCTION, &http_client::on_timer_request);
  curl_multi_setopt(multi_, CURLMOPT_TIMERDATA, this);
  uv_timer_init(loop_, &timer_);
  timer_.data = this;
}

http_client::~http_client() {
  close();
}

void http_client::close() {
  if (closed_) return;
  closed_ = true;
  auto all = std::move(transfers_);
  transfers_.clear();
  for (auto& [id, t] : all) drop(*t);
  curl_multi_cleanup(multi_);  // closes cached connections: on_socket(REMOVE) frees their watches
  multi_ = nullptr;
  uv_close(reinterpret_cast<uv_handle_t*>(&timer_), nullptr);
}

uint64_t http_client::post(http_request request, done_fn done) {
  uint64_t id = ++last_id_;
  auto t = std::make_unique<transfer>();
  t->id = id;
  t->request = std::move(request);
  t->done = std::move(done);
  t->started_us = wire::now_us();
  CURL* e = closed_ ? nullptr : curl_easy_init();
  if (!e) return 0;
  t->easy = e;
  for (auto& h : t->request.headers) t->headers = curl_slist_append(t->headers, h.c_str());
  // A body above 1 KiB would make curl send "Expect: 100-continue" and wait
  // for the server's interim answer; webhook receivers rarely send one.
  t->headers = curl_slist_append(t->headers, "Expect:");
  curl_easy_setopt(e, CURLOPT_URL, t->request.url.c_str());
  curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(e, CURLOPT_POST, 1L);
  curl_easy_setopt(e, CURLOPT_POSTFIELDS, t->request.body);
  curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(t->request.body_size));
  curl_easy_setopt(e, CURLOPT_HTTPHEADER, t->headers);
  curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, static_cast<long>(t->request.timeout_ms));
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);  // a redirect is an answer, not a success
  curl_easy_setopt(e, CURLOPT_ERRORBUFFER, t->error);
  curl_easy_setopt(e, CURLOPT_PRIVATE, t.get());
  curl_easy_setopt(e, CURLOPT_USERAGENT, "wharf/" WHARF_VERSION);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, t.get());
  curl_easy_setopt(
      e, CURLOPT_WRITEFUNCTION, +[](char* data, size_t size, size_t n, void* userp) -> size_t {
        auto* tr = static_cast<transfer*>(userp);
        size_t room = kKeptBodyBytes - std::min(kKeptBodyBytes, tr->body_start.size());
        tr->body_start.append(data, std::min(room, size * n));
        return size * n;  // the rest of the answer is read and dropped
      });
  transfers_[id] = std::move(t);
  curl_multi_add_handle(multi_, e);
  return id;
}

void http_client::cancel(uint64_t id) {
  auto it = transfers_.find(id);
  if (it == transfers_.end()) return;
  auto t = std::move(it->second);
  transfers_.erase(it);
  drop(*t);
}

void http_client::drop(transfer& t) {
  if (multi_) curl_multi_remove_handle(multi_, t.easy);
  curl_easy_cleanup(t.easy);
  curl_slist_free_all(t.headers);
  t.easy = nullptr;
  t.headers = nullptr;
}

int http_client::on_socket(CURL*, curl_socket_t fd, int what, void* userp, void* socketp) {
  auto* self = static_cast<http_client*>(userp);
  auto* w = static_cast<socket_watch*>(socketp);
  if (what == CURL_POLL_REMOVE) {
    if (w) {
      uv_poll_stop(&w->poll);
      uv_close(reinterpret_cast<uv_handle_t*>(&w->poll),
               [](uv_handle_t* h) { delete static_cast<socket_watch*>(h->data); });
      if (!self->closed_) curl_multi_assign(self->multi_, fd, nullptr);
    }
    return 0;
  }
  if (!w) {
    w = new socket_watch{{}, self, fd};
    if (uv_poll_init_socket(self->loop_, &w->poll, fd) != 0) {
      delete w;
      return -1;  // curl fails the transfer
    }
    w->poll.data = w;
    curl_multi_assign(self->multi_, fd, w);
  }
  int events = 0;
  if (what & CURL_POLL_IN) events |= UV_READABLE;
  if (what & CURL_POLL_OUT) events |= UV_WRITABLE;
  uv_poll_start(&w->poll, events, &http_client::on_poll);
  return 0;
}

int http_client::on_timer_request(CURLM*, long timeout_ms, void* userp) {
  auto* self = static_cast<http_client*>(userp);
  if (self->closed_) return 0;
  if (timeout_ms < 0) {
    uv_timer_stop(&self->timer_);
  } else {
    // Zero means "as soon as possible": from the loop, not from inside curl.
    uv_timer_start(&self->timer_, &http_client::on_timeout, static_cast<uint64_t>(timeout_ms), 0);
  }
  return 0;
}

void http_client::on_poll(uv_poll_t* handle, int status, int events) {
  auto* w = static_cast<socket_watch*>(handle->data);
  int flags = 0;
  if (status < 0) flags = CURL_CSELECT_ERR;
  if (events & UV_READABLE) flags |= CURL_CSELECT_IN;
  if (events & UV_WRITABLE) flags |= CURL_CSELECT_OUT;
  w->owner->act(w->fd, flags);
}

void http_client::on_timeout(uv_timer_t* timer) {
  static_cast<http_client*>(timer->data)->act(CURL_SOCKET_TIMEOUT, 0);
}

void http_client::act(curl_socket_t fd, int flags) {
  if (closed_) return;
  int running = 0;
  curl_multi_socket_action(multi_, fd, flags, &running);
  finish_done_transfers();
}

void http_client::finish_done_transfers() {
  int left = 0;
  while (CURLMsg* msg = curl_multi_info_read(multi_, &left)) {
    if (msg->msg != CURLMSG_DONE) continue;
    transfer* raw = nullptr;
    curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &raw);
    CURLcode code = msg->data.result;
    auto it = transfers_.find(raw->id);
    if (it == transfers_.end()) continue;
    auto t = std::move(it->second);
    transfers_.erase(it);

    http_response r;
    r.id = t->id;
    r.latency_us = wire::now_us() - t->started_us;
    long status = 0;
    curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &status);
    r.status = static_cast<uint32_t>(status);
    if (code == CURLE_OK && status >= 200 && status < 300) {
      r.result = http_response::outcome::ok;
    } else if (code == CURLE_OK) {
      r.result = http_response::outcome::status;
      curl_off_t retry_after = 0;
      if (curl_easy_getinfo(t->easy, CURLINFO_RETRY_AFTER, &retry_after) == CURLE_OK &&
          retry_after > 0) {
        r.retry_after_ms = static_cast<int64_t>(retry_after) * 1000;
      }
      r.error = "HTTP " + std::to_string(status);
      if (!t->body_start.empty()) r.error += ": " + t->body_start;
    } else {
      r.result = code == CURLE_OPERATION_TIMEDOUT ? http_response::outcome::timeout
                 : (code == CURLE_COULDNT_CONNECT || code == CURLE_COULDNT_RESOLVE_HOST ||
                    code == CURLE_COULDNT_RESOLVE_PROXY)
                     ? http_response::outcome::connect
                     : http_response::outcome::other;
      r.error = t->error[0] ? t->error : curl_easy_strerror(code);
    }
    drop(*t);
    t->done(r);  // may post() or cancel() other transfers
  }
}

}  // namespace wharf::webhooks
