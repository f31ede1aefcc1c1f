// webhook-receiver: the other end of a Wharf webhook. Listens for POSTs,
// checks each one's Standard Webhooks signature and timestamp with the
// webhook's secret, prints the verified events and answers 204 (401 for a
// bad signature, so the broker retries and eventually dead-letters).
//   webhook-receiver --listen 127.0.0.1:8080 --secret whsec_...
#include <CLI/CLI.hpp>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <mutex>
#include <thread>

#include "../../common/http_receiver.h"
#include "webhooks/signature.h"

namespace {
volatile std::sig_atomic_t g_stop = 0;
}

int main(int argc, char** argv) {
  std::string listen = "127.0.0.1:8080", secret;
  uint32_t fail_first = 0;
  CLI::App app{"webhook-receiver: verify and print Wharf webhook deliveries"};
  app.add_option("--listen", listen, "HOST:PORT")->capture_default_str();
  app.add_option("--secret", secret,
                 "the webhook's whsec_... secret (wharf webhooks describe shows it)")
      ->required();
  app.add_option("--fail-first", fail_first,
                 "answer 500 to the first N requests (to watch retries)");
  CLI11_PARSE(app, argc, argv);
  auto key = wharf::webhooks::decode_secret(secret);
  if (!key) {
    std::fprintf(stderr, "webhook-receiver: --secret is not a whsec_ secret\n");
    return 2;
  }
  auto colon = listen.rfind(':');
  std::mutex mu;
  uint32_t seen = 0;
  auto handle = [&](const wharf::tools::http_request& r) -> wharf::tools::http_answer {
    std::lock_guard lk(mu);
    int64_t now = std::chrono::duration_cast<std::chrono::seconds>(
                      std::chrono::system_clock::now().time_since_epoch())
                      .count();
    auto v = wharf::webhooks::verify(*key, r.header("webhook-id"), r.header("webhook-timestamp"),
                                     r.header("webhook-signature"), r.body, now, 300);
    if (v != wharf::webhooks::verify_result::ok) {
      std::printf("REJECTED %s: %s\n", r.header("webhook-id").c_str(),
                  wharf::webhooks::verify_result_name(v));
      std::fflush(stdout);
      return {401, {}, "bad signature"};
    }
    if (++seen <= fail_first) {
      std::printf("failing  %s on purpose (500)\n", r.header("webhook-id").c_str());
      std::fflush(stdout);
      return {500, {}, "try again"};
    }
    std::printf("verified %s (%s): %s\n", r.header("webhook-id").c_str(),
                r.header("content-type").c_str(), r.body.c_str());
    std::fflush(stdout);
    return {204, {}, ""};
  };
  try {
    wharf::tools::http_receiver server(listen.substr(0, colon),
                                       static_cast<uint16_t>(std::stoi(listen.substr(colon + 1))),
                                       handle);
    std::printf("listening on %s\n", server.url().c_str());
    std::fflush(stdout);
    std::signal(SIGINT, [](int) { g_stop = 1; });
    std::signal(SIGTERM, [](int) { g_stop = 1; });
    while (!g_stop) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "webhook-receiver: %s\n", e.what());
    return 1;
  }
  return 0;
}
