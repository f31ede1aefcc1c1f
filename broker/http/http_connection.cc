#include "http/http_connection.h"

#include <algorithm>
#include <cctype>

#include "http/http_server.h"
#include "log.h"

namespace wharf::http {
namespace {

// How long a closing connection keeps reading (and discarding) what the
// client still sends, so that closing does not reset the connection before
// the client has read the response.
constexpr uint32_t kLingerMs = 2000;

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

http_connection* of(http_parser* p) {
  return static_cast<http_connection*>(p->data);
}

}  // namespace

struct http_connection::write_req {
  uv_write_t req;
  http_connection* owner;
  std::string bytes;
};

const http_parser_settings http_connection::kSettings = [] {
  http_parser_settings s;
  http_parser_settings_init(&s);
  s.on_message_begin = &http_connection::on_message_begin;
  s.on_url = &http_connection::on_url;
  s.on_header_field = &http_connection::on_header_field;
  s.on_header_value = &http_connection::on_header_value;
  s.on_headers_complete = &http_connection::on_headers_complete;
  s.on_body = &http_connection::on_body;
  s.on_message_complete = &http_connection::on_message_complete;
  return s;
}();

http_connection::http_connection(http_server& server, uint64_t id) : server_(server), id_(id) {
  uv_tcp_init(server.loop(), &tcp_);
  uv_timer_init(server.loop(), &timer_);
  tcp_.data = this;
  timer_.data = this;
  http_parser_init(&parser_, HTTP_REQUEST);
  parser_.data = this;
}

http_connection::~http_connection() = default;

void http_connection::start() {
  uv_tcp_nodelay(&tcp_, 1);
  arm_timer();
  start_reading();
}

// ---------------------------------------------------------------------------
// Input
// ---------------------------------------------------------------------------

void http_connection::start_reading() {
  if (reading_ || phase_ == phase::closed) return;
  if (uv_read_start(reinterpret_cast<uv_stream_t*>(&tcp_), &http_connection::on_alloc,
                    &http_connection::on_read) == 0) {
    reading_ = true;
  }
}

void http_connection::stop_reading() {
  if (!reading_) return;
  uv_read_stop(reinterpret_cast<uv_stream_t*>(&tcp_));
  reading_ = false;
}

void http_connection::on_alloc(uv_handle_t* h, size_t, uv_buf_t* buf) {
  auto self = static_cast<http_connection*>(h->data);
  *buf = uv_buf_init(self->read_buf_.data(), static_cast<unsigned>(self->read_buf_.size()));
}

void http_connection::on_read(uv_stream_t* s, ssize_t nread, const uv_buf_t*) {
  auto self = static_cast<http_connection*>(s->data);
  if (nread == 0) return;
  if (nread < 0) {
    // The client is gone or finished sending. A response still being
    // written is finished first; otherwise there is nothing left to do.
    self->stop_reading();
    if (self->phase_ != phase::writing) self->close();
    return;
  }
  if (self->phase_ != phase::reading) return;  // discarding behind a closing response
  if (!self->in_request_) {
    self->in_request_ = true;  // the request's deadline runs from its first byte
    self->arm_timer();
  }
  self->pending_.append(self->read_buf_.data(), static_cast<size_t>(nread));
  self->parse_pending();
}

void http_connection::parse_pending() {
  while (phase_ == phase::reading && !pending_.empty()) {
    size_t n = http_parser_execute(&parser_, &kSettings, pending_.data(), pending_.size());
    auto err = HTTP_PARSER_ERRNO(&parser_);
    if (err == HPE_PAUSED) {
      // One whole request (the parser pauses at its end). Later bytes wait.
      pending_.erase(0, n);
      phase_ = phase::handling;
      stop_reading();
      uv_timer_stop(&timer_);
      server_.route(req_, id_, ++request_no_);  // may answer before returning
      return;
    }
    pending_.clear();
    if (err != HPE_OK) {
      if (!error_) {
        error_ =
            error_response(400, wire::ErrorCode::protocol,
                           std::string("malformed HTTP request: ") + http_errno_description(err));
      }
      log_debug("http connection %lu: %s", id_, error_->body.c_str());
      send(std::move(*error_));
      return;
    }
    if (parser_.upgrade) {
      send(error_response(400, wire::ErrorCode::protocol,
                          "protocol upgrades and CONNECT are not supported"));
      return;
    }
  }
}

int http_connection::fail(http_response r) {
  error_ = std::move(r);
  return -1;  // any value but 0, 1 and 2 stops the parser (1 and 2 mean "no body")
}

int http_connection::on_message_begin(http_parser* p) {
  auto c = of(p);
  c->req_ = http_request{};
  c->header_bytes_ = 0;
  c->in_header_value_ = false;
  c->error_.reset();
  c->head_ = false;
  c->in_request_ = true;
  return 0;
}

int http_connection::on_url(http_parser* p, const char* at, size_t n) {
  auto c = of(p);
  if (c->req_.path.size() + n > http_limits::kMaxTargetBytes) {
    return c->fail(error_response(
        414, wire::ErrorCode::too_large,
        "the request target exceeds " + std::to_string(http_limits::kMaxTargetBytes) + " bytes"));
  }
  c->req_.path.append(at, n);  // the whole target for now; split into path and query later
  return 0;
}

int http_connection::on_header_field(http_parser* p, const char* at, size_t n) {
  auto c = of(p);
  auto& headers = c->req_.headers;
  if (headers.empty() || c->in_header_value_) {
    if (headers.size() == http_limits::kMaxHeaders) {
      return c->fail(
          error_response(431, wire::ErrorCode::too_large,
                         "more than " + std::to_string(http_limits::kMaxHeaders) + " headers"));
    }
    headers.emplace_back();
  }
  c->in_header_value_ = false;
  c->header_bytes_ += n;
  if (c->header_bytes_ > http_limits::kMaxHeaderBytes) {
    return c->fail(error_response(
        431, wire::ErrorCode::too_large,
        "headers exceed " + std::to_string(http_limits::kMaxHeaderBytes) + " bytes"));
  }
  for (size_t i = 0; i < n; ++i) {
    headers.back().first.push_back(
        static_cast<char>(std::tolower(static_cast<unsigned char>(at[i]))));
  }
  return 0;
}

int http_connection::on_header_value(http_parser* p, const char* at, size_t n) {
  auto c = of(p);
  if (c->req_.headers.empty())
    return c->fail(error_response(400, wire::ErrorCode::protocol, "header value without a name"));
  c->in_header_value_ = true;
  c->header_bytes_ += n;
  if (c->header_bytes_ > http_limits::kMaxHeaderBytes) {
    return c->fail(error_response(
        431, wire::ErrorCode::too_large,
        "headers exceed " + std::to_string(http_limits::kMaxHeaderBytes) + " bytes"));
  }
  c->req_.headers.back().second.append(at, n);
  return 0;
}

int http_connection::on_headers_complete(http_parser* p) {
  auto c = of(p);
  auto& req = c->req_;
  std::string target = std::move(req.path);
  http_parser_url url;
  http_parser_url_init(&url);
  if (http_parser_parse_url(target.data(), target.size(), p->method == HTTP_CONNECT, &url) != 0) {
    return c->fail(error_response(400, wire::ErrorCode::protocol, "malformed request target"));
  }
  auto field = [&](int f) {
    return url.field_set & (1 << f) ? target.substr(url.field_data[f].off, url.field_data[f].len)
                                    : std::string();
  };
  req.path = field(UF_PATH);
  req.query = field(UF_QUERY);
  if (req.path.empty())
    req.path.assign(1, '/');  // (operator= trips a GCC 12 -Wrestrict false positive)
  req.method = http_method_str(static_cast<http_method>(p->method));
  for (auto& [name, value] : req.headers) {
    while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.pop_back();
  }
  c->head_ = p->method == HTTP_HEAD;
  if (p->http_major != 1) {
    return c->fail(error_response(505, wire::ErrorCode::protocol,
                                  "only HTTP/1.0 and HTTP/1.1 are spoken here"));
  }
  if (p->upgrade) {  // the parser would hand over the connection after these headers
    return c->fail(error_response(400, wire::ErrorCode::protocol,
                                  "protocol upgrades and CONNECT are not supported"));
  }

  bool chunked = p->flags & F_CHUNKED;
  bool has_length = p->flags & F_CONTENTLENGTH;
  uint32_t max = c->server_.limits().max_body_bytes;
  bool wants_body = p->method == HTTP_POST || p->method == HTTP_PUT || p->method == HTTP_PATCH;
  if (!chunked && req.header("transfer-encoding")) {
    return c->fail(error_response(400, wire::ErrorCode::protocol,
                                  "the only Transfer-Encoding understood is chunked"));
  }
  if (wants_body && !chunked && !has_length) {
    return c->fail(
        error_response(411, wire::ErrorCode::protocol,
                       "a request body needs Content-Length or Transfer-Encoding: chunked"));
  }
  if (has_length && p->content_length > max) {
    return c->fail(error_response(413, wire::ErrorCode::too_large,
                                  "body of " + std::to_string(p->content_length) +
                                      " bytes exceeds http_max_body_bytes (" + std::to_string(max) +
                                      ")"));
  }
  // curl and others wait (about a second) for this before sending a larger body.
  auto expect = req.header("expect");
  if (expect && iequals(*expect, "100-continue") && p->http_major == 1 && p->http_minor >= 1) {
    c->write_raw("HTTP/1.1 100 Continue\r\n\r\n");
  }
  return 0;
}

int http_connection::on_body(http_parser* p, const char* at, size_t n) {
  auto c = of(p);
  uint32_t max = c->server_.limits().max_body_bytes;
  if (c->req_.body.size() + n > max) {
    return c->fail(
        error_response(413, wire::ErrorCode::too_large,
                       "body exceeds http_max_body_bytes (" + std::to_string(max) + ")"));
  }
  c->req_.body.append(at, n);
  return 0;
}

int http_connection::on_message_complete(http_parser* p) {
  auto c = of(p);
  c->keep_alive_ = http_should_keep_alive(p) != 0;
  http_parser_pause(p, 1);  // hand this request over before parsing the next
  return 0;
}

// ---------------------------------------------------------------------------
// Output
// ---------------------------------------------------------------------------

void http_connection::respond(uint64_t request, http_response r) {
  if (request != request_no_ || phase_ != phase::handling) return;
  if (!keep_alive_ || server_.shutting_down()) r.close = true;
  send(std::move(r));
}

void http_connection::refuse(http_response r) {
  r.close = true;
  send(std::move(r));
}

void http_connection::send(http_response r) {
  server_.count_response(r.status);
  close_after_ = r.close =
      r.close || phase_ == phase::reading;  // an error while reading ends the connection
  phase_ = phase::writing;
  std::string bytes = serialize(r);
  if (head_) bytes.resize(bytes.size() - r.body.size());  // HEAD: the headers only
  write_raw(std::move(bytes));
  arm_timer();                        // the client must take the response in time
  if (close_after_) start_reading();  // and discard what it still sends (see kLingerMs)
}

void http_connection::write_raw(std::string bytes) {
  if (phase_ == phase::closed) return;
  auto w = new write_req;
  w->owner = this;
  w->bytes = std::move(bytes);
  uv_buf_t buf = uv_buf_init(w->bytes.data(), static_cast<unsigned>(w->bytes.size()));
  if (uv_write(&w->req, reinterpret_cast<uv_stream_t*>(&tcp_), &buf, 1,
               &http_connection::on_write) != 0) {
    delete w;
    close();
    return;
  }
  ++writes_in_flight_;
}

void http_connection::on_write(uv_write_t* req, int status) {
  auto w = reinterpret_cast<write_req*>(req);
  http_connection* self = w->owner;
  delete w;
  --self->writes_in_flight_;
  if (status < 0) {
    self->close();
    return;
  }
  if (self->writes_in_flight_ == 0 && self->phase_ == phase::writing) self->after_response();
}

void http_connection::after_response() {
  if (close_after_ || server_.shutting_down()) {
    phase_ = phase::lingering;
    if (!reading_) {  // the client already finished sending (or shutdown stopped reading)
      close();
      return;
    }
    uv_shutdown(&shutdown_req_, reinterpret_cast<uv_stream_t*>(&tcp_),
                &http_connection::on_shutdown);
    uv_timer_start(&timer_, &http_connection::on_timer,
                   std::min(kLingerMs, server_.limits().timeout_ms), 0);
    return;
  }
  phase_ = phase::reading;
  in_request_ = !pending_.empty();
  head_ = false;
  http_parser_pause(&parser_, 0);
  arm_timer();
  start_reading();
  parse_pending();  // pipelined requests that arrived with the last one
}

void http_connection::on_shutdown(uv_shutdown_t*, int) {}

// ---------------------------------------------------------------------------
// Deadlines and closing
// ---------------------------------------------------------------------------

void http_connection::arm_timer() {
  if (phase_ == phase::closed) return;
  uv_timer_start(&timer_, &http_connection::on_timer, server_.limits().timeout_ms, 0);
}

void http_connection::on_timer(uv_timer_t* t) {
  auto self = static_cast<http_connection*>(t->data);
  switch (self->phase_) {
    case phase::reading:
      if (self->in_request_) {
        log_info("http connection %lu: request incomplete after %u ms; closing", self->id_,
                 self->server_.limits().timeout_ms);
        self->send(error_response(408, wire::ErrorCode::timeout,
                                  "the request did not arrive within http_timeout_ms"));
      } else {
        self->close();  // idle keep-alive connection
      }
      return;
    case phase::writing:
      log_info("http connection %lu: the client took no response for %u ms; dropping it", self->id_,
               self->server_.limits().timeout_ms);
      self->close();
      return;
    case phase::lingering:
      self->close();
      return;
    case phase::handling:
    case phase::closed:
      return;
  }
}

void http_connection::shutdown() {
  switch (phase_) {
    case phase::reading:
      close();
      return;  // nothing owed (a partial request is dropped)
    case phase::handling:
      return;  // respond() closes after the answer
    case phase::writing:
      stop_reading();
      return;  // after_response() closes
    case phase::lingering:
    case phase::closed:
      return;
  }
}

void http_connection::close() {
  if (phase_ == phase::closed) return;
  phase_ = phase::closed;
  reading_ = false;
  uv_close(reinterpret_cast<uv_handle_t*>(&tcp_), &http_connection::on_close);
  uv_close(reinterpret_cast<uv_handle_t*>(&timer_), &http_connection::on_close);
}

void http_connection::on_close(uv_handle_t* h) {
  auto self = static_cast<http_connection*>(h->data);
  if (--self->open_handles_ == 0) self->server_.on_connection_closed(self->id_);
}

}  // namespace wharf::http
