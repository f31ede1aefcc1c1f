// shop-producer: the shop's "Confirm Purchase" button. Publishes
// PurchasedItemOnWebsite events (schemas/events/purchase.fbs) to a topic,
// keyed by user so each customer's purchases stay in order in every group.
//
//   shop-producer --broker 127.0.0.1:7700 --topic purchases --count 20 [--sync]
#include <wharf/client.h>

#include <CLI/CLI.hpp>

#include <atomic>
#include <cstdio>

#include "purchase_generated.h"

int main(int argc, char** argv) {
  CLI::App app{"shop-producer - publishes PurchasedItemOnWebsite events"};
  std::string broker = "127.0.0.1:7700", topic = "purchases";
  int count = 20;
  bool sync = false;
  app.add_option("--broker", broker, "broker HOST:PORT")->capture_default_str();
  app.add_option("--topic", topic, "topic")->capture_default_str();
  app.add_option("--count", count, "events to publish")->capture_default_str();
  app.add_flag("--sync", sync, "wait for each event to be durable (like a blocking checkout call)");
  CLI11_PARSE(app, argc, argv);

  auto c = wharf::client::connect({.broker = broker, .client_name = "shop-producer"});
  if (!c) {
    std::fprintf(stderr, "shop-producer: %s\n", c.err().to_string().c_str());
    return 1;
  }
  const char* items[] = {"kettle", "teapot", "mug", "espresso-machine", "grinder"};
  const int64_t prices[] = {2999, 1850, 899, 34900, 7999};
  std::atomic<int> failed{0};
  for (int i = 0; i < count; ++i) {
    flatbuffers::FlatBufferBuilder fbb(256);
    std::string user = "user-" + std::to_string(i % 7);
    shop::events::Money price(prices[i % 5], flatbuffers::span<const uint8_t, 3>(reinterpret_cast<const uint8_t*>("EUR"), 3));
    auto event = shop::events::CreatePurchasedItemOnWebsiteDirect(
        fbb, items[i % 5], 1795400000000ull + i * 1000ull, user.c_str(), &price, i % 3 == 0,
        i % 4 == 0 ? "leave at the door" : nullptr);
    shop::events::FinishPurchasedItemOnWebsiteBuffer(fbb, event);
    std::string_view payload(reinterpret_cast<const char*>(fbb.GetBufferPointer()), fbb.GetSize());
    wharf::header type{"type", "PurchasedItemOnWebsite"};
    wharf::record r{payload, user, {&type, 1}};
    if (sync) {
      auto ack = (*c)->publish(topic, r);  // returns once the event is on disk
      if (!ack) {
        std::fprintf(stderr, "shop-producer: %s\n", ack.err().to_string().c_str());
        return 1;
      }
      std::printf("purchase %d by %s stored at offset %lu\n", i, user.c_str(), ack->offset);
    } else {
      (*c)->publish_async(topic, r, [&failed](const wharf::result<wharf::publish_ack>& res) {
        if (!res) failed++;
      });
    }
  }
  if (auto f = (*c)->flush(); !f || failed) {
    std::fprintf(stderr, "shop-producer: %d publishes failed %s\n", failed.load(), f ? "" : f.err().to_string().c_str());
    return 1;
  }
  std::printf("published %d PurchasedItemOnWebsite events to %s\n", count, topic.c_str());
  return 0;
}
