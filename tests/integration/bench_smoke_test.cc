// A short wharf-bench run: it completes, and its own exact loss/duplicate
// check finds nothing. Speed is measured by tools/bench-suite, not here.
#include <doctest/doctest.h>

#include <string>

#include "process.h"

using namespace wharf::test;

namespace {
std::string field(const std::string& json, const std::string& key) {
  auto at = json.find("\"" + key + "\":");
  if (at == std::string::npos) return "";
  auto start = at + key.size() + 3;
  return json.substr(start, json.find_first_of(",}", start) - start);
}
}  // namespace

TEST_CASE("wharf-bench completes a small fan-out run and counts no loss") {
  temp_dir dir;
  broker_process broker(dir.file("data"));
  REQUIRE(broker.start());
  auto r = run_tool("wharf-bench", {"--broker", broker.address(), "--topic", "smoke", "--producers", "2",
                                    "--messages", "20000", "--groups", "2", "--consumers", "2", "--key-count",
                                    "10", "--json"});
  INFO(r.err);
  CHECK(r.exit_code == 0);
  CHECK(field(r.out, "published") == "20000");
  CHECK(field(r.out, "received") == "40000");  // every record once per group
  CHECK(field(r.out, "lost") == "0");
  CHECK(field(r.out, "duplicated") == "0");
  CHECK_FALSE(field(r.out, "e2e_latency_us").empty());
  // The topic it created is gone again.
  auto topics = run_cli(broker.address(), {"topics", "list"});
  CHECK(topics.out.find("smoke") == std::string::npos);
}
