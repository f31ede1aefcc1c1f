// The fuzzer's inputs in the normal suite: every generated seed and every
// kept regression input (tests/fuzz/regressions/*.hex, one per finding that
// was fixed) is played against a real wharfd started with the fuzz broker's
// settings, through the same conversation code protocol_fuzzer uses. A
// regression input gets a fresh broker of its own (inputs are minimised to
// be self-contained) and must leave it alive and answering.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "conversation.h"
#include "process.h"

using namespace wharf;
using namespace std::chrono_literals;
using wire::Body;
namespace fs = std::filesystem;

namespace {

constexpr auto kCloseTimeout = 10s;

std::vector<uint8_t> read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

std::vector<fs::path> files_in(const fs::path& dir, const std::string& ext = "") {
  std::vector<fs::path> out;
  std::error_code ec;
  for (auto& e : fs::directory_iterator(dir, ec)) {
    if (ext.empty() || e.path().extension() == ext) out.push_back(e.path());
  }
  std::sort(out.begin(), out.end());
  return out;
}

bool has(const fuzz::outcome& o, Body kind, wire::ErrorCode error = wire::ErrorCode::none) {
  return std::any_of(o.frames.begin(), o.frames.end(),
                     [&](const fuzz::received& r) { return r.kind == kind && r.error == error; });
}

/// A new connection still gets through the handshake.
bool answers_hello(uint16_t port) {
  std::vector<uint8_t> hello_only{fuzz::kHello};
  auto o = fuzz::play(port, hello_only, kCloseTimeout);
  return o.connected && o.finding.empty() && has(o, Body::HelloOk);
}

struct fuzz_broker {
  test::temp_dir dir;
  test::broker_process proc{dir.path(), fuzz::broker_flags()};
};

}  // namespace

TEST_CASE(
    "the seed corpus plays against wharfd without findings, and reaches deeper than the "
    "handshake") {
  auto seeds = files_in(WHARF_FUZZ_SEEDS);
  REQUIRE(seeds.size() >= 60);
  fuzz_broker b;
  REQUIRE(b.proc.start());
  std::map<std::string, fuzz::outcome> outcomes;
  for (auto& path : seeds) {
    auto o = fuzz::play(b.proc.port(), read_file(path), kCloseTimeout);
    INFO("seed " << path.filename().string());
    REQUIRE(o.connected);
    CHECK_MESSAGE(o.finding.empty(), o.finding);
    outcomes[path.filename().string()] = std::move(o);
  }
  CHECK(b.proc.running());
  CHECK(answers_hello(b.proc.port()));

  // The seeds do what their names say (so the corpus cannot silently rot).
  CHECK(has(outcomes["hello"], Body::HelloOk));
  CHECK(has(outcomes["hello_bad_version"], Body::Error, wire::ErrorCode::unsupported_version));
  CHECK(has(outcomes["frame_length_too_large"], Body::Error, wire::ErrorCode::too_large));
  CHECK(has(outcomes["frame_garbage"], Body::Error, wire::ErrorCode::protocol));
  CHECK(has(outcomes["unexpected_deliver"], Body::Error, wire::ErrorCode::protocol));
  CHECK(has(outcomes["publish_too_large"], Body::Error, wire::ErrorCode::too_large));
  CHECK(has(outcomes["publish"], Body::PublishAck));
  CHECK(has(outcomes["create_group"], Body::GroupInfo));
  auto& conv = outcomes["conversation_create_publish_subscribe_ack"];
  CHECK(has(conv, Body::SubscribeOk));
  CHECK(conv.delivered_records > 0);
  CHECK(has(conv, Body::GroupInfo));
  CHECK(has(outcomes["conversation_delete_topic_with_subscribers"], Body::SubscriptionEnded,
            wire::ErrorCode::unknown_topic));
}

TEST_CASE("every kept regression input leaves a fresh wharfd alive and answering") {
  REQUIRE(fs::is_directory(WHARF_FUZZ_REGRESSIONS));
  auto inputs = files_in(WHARF_FUZZ_REGRESSIONS, ".hex");
  MESSAGE(inputs.size() << " regression inputs");
  for (auto& path : inputs) {
    SUBCASE(path.filename().string().c_str()) {
      std::stringstream text;
      text << std::ifstream(path).rdbuf();
      auto input = fuzz::parse_hex(text.str());
      REQUIRE(input);
      fuzz_broker b;
      REQUIRE(b.proc.start());
      auto o = fuzz::play(b.proc.port(), *input, kCloseTimeout);
      REQUIRE(o.connected);
      CHECK_MESSAGE(o.finding.empty(), o.finding);
      CHECK_MESSAGE(b.proc.running(), b.proc.log());
      CHECK(answers_hello(b.proc.port()));
    }
  }
}

TEST_CASE("regression inputs are read from hex as od writes it, comments allowed") {
  auto bytes = fuzz::parse_hex("# found by protocol_fuzzer\n 03 0c 00 00\n 00 ff # rest\nAb\n");
  REQUIRE(bytes);
  CHECK(*bytes == std::vector<uint8_t>{0x03, 0x0c, 0x00, 0x00, 0x00, 0xff, 0xab});
  CHECK_FALSE(fuzz::parse_hex("0"));     // half a byte
  CHECK_FALSE(fuzz::parse_hex("0x01"));  // not od's format
}
