// shop-service: one of the shop's back-end services. Each role is its own
// consumer group on the purchases topic, so every service sees every event at
// its own pace; running the same role twice shares that role's work (per-user
// order is kept because events are keyed by user).
//
//   shop-service --role payment|inventory|analytics|dispatch [--worker NAME]
//                [--broker 127.0.0.1:7700] [--topic purchases] [--count N]
#include <wharf/client.h>

#include <CLI/CLI.hpp>

#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <mutex>

#include "purchase_generated.h"

namespace {
std::mutex mu;
std::condition_variable cv;
volatile std::sig_atomic_t stop = 0;
void on_signal(int) { stop = 1; }
}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"shop-service - consumes PurchasedItemOnWebsite events in one consumer group"};
  std::string broker = "127.0.0.1:7700", topic = "purchases", role, worker;
  uint64_t count = 0;
  app.add_option("--broker", broker, "broker HOST:PORT")->capture_default_str();
  app.add_option("--topic", topic, "topic")->capture_default_str();
  app.add_option("--role", role, "payment | inventory | analytics | dispatch")
      ->required()
      ->check(CLI::IsMember({"payment", "inventory", "analytics", "dispatch"}));
  app.add_option("--worker", worker, "name printed with each line (defaults to the role)");
  app.add_option("--count", count, "exit after handling this many events (0 = run until Ctrl-C)");
  CLI11_PARSE(app, argc, argv);
  if (worker.empty()) worker = role;
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);

  auto c = wharf::client::connect({.broker = broker, .client_name = "shop-" + worker});
  if (!c) {
    std::fprintf(stderr, "%s: %s\n", worker.c_str(), c.err().to_string().c_str());
    return 1;
  }
  uint64_t handled = 0;
  wharf::subscribe_options opts;
  opts.start = wharf::start_position::earliest();  // a new service catches up on past purchases
  auto handler = [&](wharf::message m) {
    flatbuffers::Verifier v(reinterpret_cast<const uint8_t*>(m.payload().data()), m.payload().size());
    if (!shop::events::VerifyPurchasedItemOnWebsiteBuffer(v)) {
      std::printf("[%s] offset %lu: not a PurchasedItemOnWebsite, skipped\n", worker.c_str(), m.offset());
      m.ack();
      return;
    }
    auto e = shop::events::GetPurchasedItemOnWebsite(m.payload().data());
    auto cur = e->price()->currency();
    std::string currency(reinterpret_cast<const char*>(cur->Data()), 3);
    double amount = static_cast<double>(e->price()->minor_units()) / 100;
    const char* user = e->user_id()->c_str();
    const char* item = e->item_id()->c_str();
    if (role == "payment") {
      std::printf("[%s] charged %s %.2f %s for %s (offset %lu)\n", worker.c_str(), user, amount, currency.c_str(), item, m.offset());
    } else if (role == "inventory") {
      std::printf("[%s] reserved one %s for %s (offset %lu)\n", worker.c_str(), item, user, m.offset());
    } else if (role == "analytics") {
      std::printf("[%s] recorded sale of %s, %.2f %s%s (offset %lu)\n", worker.c_str(), item, amount, currency.c_str(),
                  e->prime() ? ", prime customer" : "", m.offset());
    } else {
      std::printf("[%s] scheduled delivery of %s to %s%s%s (offset %lu)\n", worker.c_str(), item, user,
                  e->instructions() ? ": " : "", e->instructions() ? e->instructions()->c_str() : "", m.offset());
    }
    std::fflush(stdout);
    m.ack();
    std::lock_guard lk(mu);
    ++handled;
    cv.notify_all();
  };
  auto sub = (*c)->subscribe(topic, role, handler, opts);
  if (!sub) {
    std::fprintf(stderr, "%s: %s\n", worker.c_str(), sub.err().to_string().c_str());
    return 1;
  }
  std::unique_lock lk(mu);
  while (!stop && (count == 0 || handled < count)) cv.wait_for(lk, std::chrono::milliseconds(100));
  lk.unlock();
  (*sub)->close();
  return 0;
}
