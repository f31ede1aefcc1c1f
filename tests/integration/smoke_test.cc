// The README walkthrough, end to end through the real binaries.
#include <doctest/doctest.h>

#include "process.h"

using namespace wharf::test;

TEST_CASE("walkthrough: create, publish, describe, consume through the CLI") {
  temp_dir dir;
  broker_process broker(dir.file("data"));
  REQUIRE(broker.start());
  auto b = broker.address();

  auto created = run_cli(b, {"topics", "create", "orders"});
  CHECK(created.exit_code == 0);
  auto pub = run_cli(b, {"publish", "orders"}, "first\nsecond\nthird\n");
  CHECK(pub.exit_code == 0);
  CHECK(lines(pub.out) == std::vector<std::string>{"0", "1", "2"});
  auto desc = run_cli(b, {"--json", "topics", "describe", "orders"});
  CHECK(desc.exit_code == 0);
  CHECK(desc.out.find("\"records\":3") != std::string::npos);
  auto con = run_cli(b, {"consume", "orders", "--from", "earliest", "--count", "3"});
  CHECK(con.exit_code == 0);
  CHECK(lines(con.out) == std::vector<std::string>{"first", "second", "third"});
  CHECK(broker.stop() == 0);
}

// Regression: the signal handlers were installed after the "listening on"
// line, so a SIGTERM sent as soon as it appeared killed wharfd (exit 143)
// instead of shutting it down cleanly.
TEST_CASE("SIGTERM right after the listening line shuts down cleanly") {
  temp_dir dir;
  broker_process broker(dir.file("data"));
  for (int i = 0; i < 10; ++i) {
    REQUIRE(broker.start());
    CHECK(broker.stop() == 0);
  }
}
