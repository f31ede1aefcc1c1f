// Bad and unusual HTTP from the network: malformed requests, oversized
// targets, headers and bodies, chunked bodies, missing lengths, slow and idle
// clients, pipelining and keep-alive, Expect: 100-continue, HEAD. Every case
// gets its 4xx (or its answers) and the broker keeps serving.
#include <doctest/doctest.h>

#include "http_client.h"
#include "integration_support.h"

using namespace wharf::test;
using namespace std::chrono_literals;

namespace {

/// Sends `bytes` on a new connection, expects one response with `status`
/// and error `code`, then the connection closed by the broker.
void expect_error_and_close(uint16_t port, const std::string& bytes, int status,
                            const std::string& code) {
  http_client c(port);
  REQUIRE(c.connected());
  c.send(bytes);  // the broker may answer and close before it has everything
  auto r = c.read_response();
  REQUIRE(r);
  CHECK(r->status == status);
  CHECK(r->body.find("{\"error\":\"" + code + "\"") == 0);
  CHECK(r->headers["connection"] == "close");
  CHECK(c.wait_closed(5s));
}

}  // namespace

TEST_CASE("http bad input: malformed requests get 400 and the connection closes") {
  http_broker hb;
  expect_error_and_close(hb.port(), "GET /healthz HTTP/2.0\r\n\r\n", 505, "protocol");
  for (std::string bytes :
       {std::string("GARBAGE\r\n\r\n"), std::string("GET /a b HTTP/1.1\r\n\r\n"),
        std::string("GET / HTTP/1.1 extra\r\n\r\n"), std::string("GET /\x7f HTTP/1.1\r\n\r\n"),
        std::string("POST /topics/t/records HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"),
        std::string("GET /healthz HTTP/1.1\r\nBad Header\r\n\r\n"),
        std::string("GET /healthz HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"),
        std::string("POST /topics/t/records HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n"),
        std::string("POST /topics/t/records HTTP/1.1\r\nContent-Length: -5\r\n\r\n"),
        std::string("GET /healthz HTTP/1.1\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n"),
        std::string("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 11)}) {
    CAPTURE(bytes);
    expect_error_and_close(hb.port(), bytes, 400, "protocol");
  }
  hb.check_alive();
}

TEST_CASE("http bad input: oversized target and headers get 414 and 431") {
  http_broker hb;
  expect_error_and_close(hb.port(), "GET /" + std::string(9000, 'a') + " HTTP/1.1\r\n\r\n", 414,
                         "too_large");
  expect_error_and_close(hb.port(),
                         "GET /healthz HTTP/1.1\r\nX-Big: " + std::string(20000, 'b') + "\r\n\r\n",
                         431, "too_large");
  std::string many = "GET /healthz HTTP/1.1\r\n";
  for (int i = 0; i < 150; ++i) many += "X-" + std::to_string(i) + ": v\r\n";
  expect_error_and_close(hb.port(), many + "\r\n", 431, "too_large");
  // A header flood that never ends is cut off at the limit, not buffered.
  http_client flood(hb.port());
  flood.send("GET /healthz HTTP/1.1\r\n");
  for (int i = 0; i < 100 && flood.send("X-Flood: " + std::string(1000, 'f') + "\r\n"); ++i) {
  }
  auto r = flood.read_response();
  REQUIRE(r);
  CHECK(r->status == 431);
  hb.check_alive();
}

TEST_CASE("http bad input: bodies over the limit get 413, before or while they arrive") {
  http_broker hb({"--http-max-body-bytes", "1KiB", "--auto-create-topics"});
  // By Content-Length: answered without reading the body.
  expect_error_and_close(hb.port(),
                         "POST /topics/t/records HTTP/1.1\r\nContent-Length: 100000000\r\n\r\n",
                         413, "too_large");
  // The client sends the oversized body anyway: it still reads the answer, not a reset.
  expect_error_and_close(hb.port(),
                         "POST /topics/t/records HTTP/1.1\r\nContent-Length: 300000\r\n\r\n" +
                             std::string(300000, 'z'),
                         413, "too_large");
  // Chunked: counted while it arrives.
  std::string chunked = "POST /topics/t/records HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n";
  for (int i = 0; i < 3; ++i) chunked += "200\r\n" + std::string(512, 'c') + "\r\n";
  expect_error_and_close(hb.port(), chunked + "0\r\n\r\n", 413, "too_large");
  auto c = connect_client(hb.broker.address());
  CHECK_FALSE(c->describe_topic("t"));  // nothing was published
  hb.check_alive();
}

TEST_CASE("http bad input: chunked bodies are accepted; a POST without a length gets 411") {
  http_broker hb({"--auto-create-topics"});
  http_client c(hb.port());
  REQUIRE(
      c.send("POST /topics/t/records HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
             "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"));
  auto r = c.read_response();
  REQUIRE(r);
  CHECK(r->status == 200);
  CHECK(r->body == "{\"offset\":0}\n");
  auto sdk = connect_client(hb.broker.address());
  auto got = read_from_earliest(*sdk, "t", 1, 10s);
  REQUIRE(got.size() == 1);
  CHECK(got[0].payload == "hello world");

  expect_error_and_close(hb.port(), "POST /topics/t/records HTTP/1.1\r\nHost: x\r\n\r\nbody", 411,
                         "protocol");
  hb.check_alive();
}

TEST_CASE(
    "http bad input: a slow client gets 408 after http_timeout_ms and an idle connection is "
    "closed") {
  http_broker hb({"--http-timeout-ms", "300"});
  // Slowloris: a byte at a time, never finishing. The deadline is for the whole request.
  http_client slow(hb.port());
  auto started = std::chrono::steady_clock::now();
  std::string req = "POST /topics/t/records HTTP/1.1\r\nHost: x\r\nX-Slow: ";
  std::optional<http_result> r;
  for (size_t i = 0; i < 40 && !r; ++i) {
    if (!slow.send(req.substr(i % req.size(), 1))) break;
    r = slow.read_response(50ms);  // also paces the bytes
  }
  if (!r) r = slow.read_response(5s);
  REQUIRE(r);
  CHECK(r->status == 408);
  CHECK(r->body.find("{\"error\":\"timeout\"") == 0);
  CHECK(std::chrono::steady_clock::now() - started < 3s);
  CHECK(slow.wait_closed(5s));

  // Idle keep-alive connection: closed without a word after the timeout.
  http_client idle(hb.port());
  REQUIRE(idle.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"));
  REQUIRE(idle.read_response());
  CHECK(idle.wait_closed(5s));
  CHECK(idle.unread().empty());

  // A connection that never sends anything is closed too.
  http_client silent(hb.port());
  CHECK(silent.wait_closed(5s));
  hb.check_alive();
}

TEST_CASE("http bad input: pipelined requests on one keep-alive connection are answered in order") {
  http_broker hb({"--auto-create-topics"});
  http_client c(hb.port());
  std::string batch;
  for (int i = 0; i < 20; ++i) {
    std::string body = "p" + std::to_string(i);
    batch += "POST /topics/pipe/records HTTP/1.1\r\nHost: x\r\nContent-Length: " +
             std::to_string(body.size()) + "\r\n\r\n" + body;
    if (i % 5 == 4) batch += "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
  }
  batch += "GET /healthz HTTP/1.0\r\n\r\n";  // HTTP/1.0 without keep-alive: the last one
  REQUIRE(c.send(batch));
  uint64_t expected_offset = 0;
  for (int i = 0; i < 20; ++i) {
    auto r = c.read_response();
    REQUIRE(r);
    CHECK(r->status == 200);
    CHECK(r->body == "{\"offset\":" + std::to_string(expected_offset++) + "}\n");
    if (i % 5 == 4) {
      auto h = c.read_response();
      REQUIRE(h);
      CHECK(h->body == "{\"status\":\"ok\"}\n");
    }
  }
  auto last = c.read_response();
  REQUIRE(last);
  CHECK(last->status == 200);
  CHECK(last->headers["connection"] == "close");
  CHECK(c.wait_closed(5s));
  auto sdk = connect_client(hb.broker.address());
  auto got = read_from_earliest(*sdk, "pipe", 20, 10s);
  REQUIRE(got.size() == 20);
  for (int i = 0; i < 20; ++i) CHECK(got[i].payload == std::string("p").append(std::to_string(i)));
}

TEST_CASE("http bad input: Expect: 100-continue gets 100 first; HEAD gets headers only") {
  http_broker hb({"--auto-create-topics"});
  http_client c(hb.port());
  REQUIRE(
      c.send("POST /topics/t/records HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: "
             "100-continue\r\n\r\n"));
  REQUIRE(c.wait_for_text("\r\n\r\n", 10s));  // the 100, and nothing final before the body
  CHECK(c.unread() == "HTTP/1.1 100 Continue\r\n\r\n");
  REQUIRE(c.send("hello"));
  auto r = c.read_response();
  REQUIRE(r);
  CHECK(r->interim == std::vector<int>{100});
  CHECK(r->status == 200);

  REQUIRE(c.send("HEAD /healthz HTTP/1.1\r\nHost: x\r\n\r\n"));
  c.expect_head();
  auto head = c.read_response();
  REQUIRE(head);
  CHECK(head->status == 200);
  CHECK(head->headers["content-length"] == "16");
  REQUIRE(c.send("GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"));
  auto after = c.read_response();  // would misparse if HEAD had sent a body
  REQUIRE(after);
  CHECK(after->status == 200);
  CHECK(c.unread().empty());
}

TEST_CASE("http bad input: connections above max_connections get 503") {
  http_broker hb({"--max-connections", "3"});
  http_client a(hb.port()), b(hb.port()), c(hb.port());
  for (auto* x : {&a, &b, &c}) REQUIRE(x->send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"));
  for (auto* x : {&a, &b, &c}) {
    auto r = x->read_response();
    REQUIRE(r);
    CHECK(r->status == 200);
  }
  http_client d(hb.port());
  auto r = d.read_response();
  REQUIRE(r);
  CHECK(r->status == 503);
  CHECK(r->body.find("{\"error\":\"too_many_connections\"") == 0);
  CHECK(d.wait_closed(5s));
}
