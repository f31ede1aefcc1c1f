// parse_broker_config: defaults, every flag, a --config TOML file (sizes such
// as "64GiB", quoted strings), unknown keys and bad values rejected with exit
// code 2, the command line winning over the file, the validation rules, and
// conf/wharfd.toml documenting exactly the defaults.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "config.h"
#include "process.h"

using wharf::broker_config;
using wharf::parse_broker_config;
using wharf::storage::fsync_policy;
using wharf::test::temp_dir;

namespace {

/// Captures what the parser prints (CLI11 help and errors, our own errors).
struct captured_output {
  std::ostringstream out, err;
  std::streambuf* old_out = std::cout.rdbuf(out.rdbuf());
  std::streambuf* old_err = std::cerr.rdbuf(err.rdbuf());
  ~captured_output() {
    std::cout.rdbuf(old_out);
    std::cerr.rdbuf(old_err);
  }
};

struct parsed {
  int rc;
  broker_config config;
  std::string out, err;
};

parsed parse(const std::vector<std::string>& args) {
  parsed p;
  p.config.data_dir = "untouched";
  captured_output cap;
  p.rc = parse_broker_config(args, p.config);
  p.out = cap.out.str();
  p.err = cap.err.str();
  return p;
}

std::string write_file(const temp_dir& dir, const std::string& name, const std::string& text) {
  std::string path = dir.file(name);
  std::ofstream(path) << text;
  return path;
}

void check_defaults(const broker_config& c) {
  broker_config d;
  CHECK(c.listen == "127.0.0.1:7700");
  CHECK(c.data_dir == "./wharf-data");
  CHECK(c.map_size == 64ull << 30);
  CHECK(c.fsync == fsync_policy::always);
  CHECK(c.fsync_interval_ms == 100);
  CHECK(c.max_message_bytes == 1u << 20);
  CHECK(c.max_frame_bytes == 8u << 20);
  CHECK_FALSE(c.auto_create_topics);
  CHECK(c.default_retention_ms == 0);
  CHECK(c.default_retention_bytes == 0);
  CHECK(c.level == wharf::log_level::info);
  CHECK(c.max_connections == d.max_connections);
  CHECK(c.handshake_timeout_ms == d.handshake_timeout_ms);
  CHECK(c.cache_bytes == d.cache_bytes);
  CHECK(c.retention_check_ms == d.retention_check_ms);
  CHECK(c.http_listen == "127.0.0.1:7780");
  CHECK(c.http_max_body_bytes == c.max_message_bytes);
  CHECK(c.http_timeout_ms == 10000);
  CHECK(c.ingest.empty());
  CHECK(c.ingest_tolerance_s == 300);
}

}  // namespace

TEST_CASE("config: no arguments gives the documented defaults") {
  auto p = parse({});
  CHECK(p.rc == -1);
  check_defaults(p.config);
  CHECK(p.err.empty());
}

TEST_CASE("config: every flag is read") {
  auto p = parse({"--listen",
                  "0.0.0.0:0",
                  "--data-dir",
                  "/var/lib/wharf",
                  "--map-size",
                  "1GiB",
                  "--fsync",
                  "interval",
                  "--fsync-interval-ms",
                  "50",
                  "--max-message-bytes",
                  "512KiB",
                  "--max-frame-bytes",
                  "4MiB",
                  "--auto-create-topics",
                  "--default-retention-ms",
                  "86400000",
                  "--default-retention-bytes",
                  "10MiB",
                  "--log-level",
                  "debug",
                  "--max-connections",
                  "10",
                  "--handshake-timeout-ms",
                  "2000",
                  "--cache-bytes",
                  "1MiB",
                  "--retention-check-ms",
                  "500"});
  INFO(p.err);
  REQUIRE(p.rc == -1);
  const auto& c = p.config;
  CHECK(c.listen == "0.0.0.0:0");
  CHECK(c.data_dir == "/var/lib/wharf");
  CHECK(c.map_size == 1ull << 30);
  CHECK(c.fsync == fsync_policy::interval);
  CHECK(c.fsync_interval_ms == 50);
  CHECK(c.max_message_bytes == 512u << 10);
  CHECK(c.max_frame_bytes == 4u << 20);
  CHECK(c.auto_create_topics);
  CHECK(c.default_retention_ms == 86400000);
  CHECK(c.default_retention_bytes == 10u << 20);
  CHECK(c.level == wharf::log_level::debug);
  CHECK(c.max_connections == 10);
  CHECK(c.handshake_timeout_ms == 2000);
  CHECK(c.cache_bytes == 1u << 20);
  CHECK(c.retention_check_ms == 500);
}

TEST_CASE("config: underscore spellings and plain numbers are accepted") {
  auto p = parse(
      {"--data_dir", "d", "--map_size", "2097152", "--fsync", "never", "--no-auto-create-topics"});
  INFO(p.err);
  REQUIRE(p.rc == -1);
  CHECK(p.config.data_dir == "d");
  CHECK(p.config.map_size == 2u << 20);
  CHECK(p.config.fsync == fsync_policy::never);
  CHECK_FALSE(p.config.auto_create_topics);
}

TEST_CASE("config: a TOML file sets values including sizes and quoted strings") {
  temp_dir dir;
  auto path = write_file(dir, "wharfd.toml", R"(# a comment
listen = "127.0.0.1:0"
data_dir = "/srv/wharf data"
map_size = "64GiB"
fsync = "interval"
fsync_interval_ms = 250
max_message_bytes = "2MiB"
max_frame_bytes = "16MiB"
auto_create_topics = true
default_retention_ms = 3600000
default_retention_bytes = "1GiB"
log_level = "warn"
cache_bytes = "512KiB"
)");
  auto p = parse({"--config", path});
  INFO(p.err);
  REQUIRE(p.rc == -1);
  const auto& c = p.config;
  CHECK(c.listen == "127.0.0.1:0");
  CHECK(c.data_dir == "/srv/wharf data");
  CHECK(c.map_size == 64ull << 30);
  CHECK(c.fsync == fsync_policy::interval);
  CHECK(c.fsync_interval_ms == 250);
  CHECK(c.max_message_bytes == 2u << 20);
  CHECK(c.max_frame_bytes == 16u << 20);
  CHECK(c.auto_create_topics);
  CHECK(c.default_retention_ms == 3600000);
  CHECK(c.default_retention_bytes == 1ull << 30);
  CHECK(c.level == wharf::log_level::warn);
  CHECK(c.cache_bytes == 512u << 10);
}

TEST_CASE("config: the shipped conf/wharfd.toml parses to the defaults") {
  auto conf = std::filesystem::path(__FILE__).parent_path() / ".." / ".." / "conf" / "wharfd.toml";
  REQUIRE(std::filesystem::exists(conf));
  auto p = parse({"--config", conf.string()});
  INFO(p.err);
  REQUIRE(p.rc == -1);
  check_defaults(p.config);
}

TEST_CASE("config: unknown keys are rejected") {
  temp_dir dir;
  SUBCASE("in the file") {
    auto path = write_file(dir, "bad.toml", "listen = \"127.0.0.1:7700\"\nno_such_key = 1\n");
    auto p = parse({"--config", path});
    CHECK(p.rc == 2);
    CHECK(p.err.find("no_such_key") != std::string::npos);
    CHECK(p.config.data_dir == "untouched");  // nothing written on failure
  }
  SUBCASE("on the command line") {
    auto p = parse({"--no-such-flag", "1"});
    CHECK(p.rc == 2);
    CHECK_FALSE(p.err.empty());
  }
  SUBCASE("a stray positional argument") {
    auto p = parse({"extra"});
    CHECK(p.rc == 2);
  }
}

TEST_CASE("config: an invalid fsync value is rejected") {
  auto p = parse({"--fsync", "sometimes"});
  CHECK(p.rc == 2);
  CHECK(p.err.find("sometimes") != std::string::npos);
  temp_dir dir;
  auto path = write_file(dir, "bad.toml", "fsync = \"weekly\"\n");
  auto f = parse({"--config", path});
  CHECK(f.rc == 2);
  CHECK(f.config.data_dir == "untouched");
}

TEST_CASE("config: other bad values are rejected with exit code 2") {
  temp_dir dir;
  const std::vector<std::vector<std::string>> bad = {
      {"--log-level", "verbose"},
      {"--fsync-interval-ms", "0"},
      {"--map-size", "lots"},
      {"--map-size", "512KiB"},  // below 1 MiB
      {"--default-retention-ms", "soon"},
      {"--listen", "7700"},
      {"--listen", "localhost:70000"},
      {"--data-dir", ""},
      {"--max-frame-bytes", "1024"},
      {"--max-message-bytes", "0"},
      {"--max-message-bytes", "8MiB"},  // no room left in an 8 MiB frame
      {"--max-message-bytes", "8GiB"},  // does not fit the field
      {"--max-connections", "0"},
      {"--retention-check-ms", "1"},
      {"--config", dir.file("missing.toml")},
  };
  for (const auto& args : bad) {
    CAPTURE(args[0]);
    CAPTURE(args[1]);
    auto p = parse(args);
    CHECK(p.rc == 2);
    CHECK_FALSE(p.err.empty());
    CHECK(p.config.data_dir == "untouched");
  }
}

// Regression: max_message_bytes + 1024 was computed in uint32_t, so a value
// near 4 GiB wrapped around and passed the "1KiB below max_frame_bytes" check.
TEST_CASE("config: max_message_bytes above max_frame_bytes is rejected near 4 GiB") {
  auto p = parse({"--max-message-bytes", "4294967295"});
  CHECK(p.rc == 2);
  auto q = parse({"--max-message-bytes", "4294966784", "--max-frame-bytes", "8MiB"});
  CHECK(q.rc == 2);
}

// Regression: CLI11 2.1 converts "-1" to uint64_t by wrapping, so
// --map-size -1 became 2^64-1 bytes and --default-retention-ms -5 "keep for
// 584 million years". Negative numbers are now refused.
TEST_CASE("config: negative numbers are rejected for 64-bit settings") {
  for (std::string flag : {"--map-size", "--default-retention-ms", "--default-retention-bytes"}) {
    CAPTURE(flag);
    auto p = parse({flag, "-1"});
    CHECK(p.rc == 2);
    CHECK(p.config.data_dir == "untouched");
  }
  temp_dir dir;
  auto path = write_file(dir, "neg.toml", "default_retention_bytes = -5\n");
  CHECK(parse({"--config", path}).rc == 2);
}

TEST_CASE("config: the command line overrides the file") {
  temp_dir dir;
  auto path = write_file(dir, "wharfd.toml",
                         "data_dir = \"from-file\"\nfsync = \"never\"\nmap_size = \"2GiB\"\n"
                         "auto_create_topics = true\n");
  SUBCASE("flags after --config") {
    auto p = parse({"--config", path, "--data-dir", "from-cli", "--fsync", "always"});
    INFO(p.err);
    REQUIRE(p.rc == -1);
    CHECK(p.config.data_dir == "from-cli");
    CHECK(p.config.fsync == fsync_policy::always);
    CHECK(p.config.map_size == 2ull << 30);  // not on the command line: from the file
    CHECK(p.config.auto_create_topics);
  }
  SUBCASE("flags before --config") {
    auto p = parse({"--data-dir", "from-cli", "--no-auto-create-topics", "--config", path});
    INFO(p.err);
    REQUIRE(p.rc == -1);
    CHECK(p.config.data_dir == "from-cli");
    CHECK(p.config.fsync == fsync_policy::never);
    CHECK_FALSE(p.config.auto_create_topics);
  }
}

TEST_CASE("config: --help and --version exit 0 without starting") {
  auto h = parse({"--help"});
  CHECK(h.rc == 0);
  CHECK(h.out.find("--data-dir") != std::string::npos);
  CHECK(h.out.find("--config") != std::string::npos);
  auto v = parse({"--version"});
  CHECK(v.rc == 0);
  CHECK(v.out.find(WHARF_VERSION) != std::string::npos);
  CHECK(v.config.data_dir == "untouched");
}

TEST_CASE("config: fsync policy names") {
  CHECK(std::string(wharf::to_string(fsync_policy::always)) == "always");
  CHECK(std::string(wharf::to_string(fsync_policy::interval)) == "interval");
  CHECK(std::string(wharf::to_string(fsync_policy::never)) == "never");
}

TEST_CASE("config: HTTP settings and ingest endpoints from flags and TOML") {
  const std::string secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
  SUBCASE("flags") {
    auto p = parse({"--http-listen", "", "--http-max-body-bytes", "64KiB", "--http-timeout-ms",
                    "500", "--ingest", "crm:crm-events:" + secret, "--ingest",
                    "shop.orders:orders:" + secret.substr(6), "--ingest-tolerance-s", "60"});
    INFO(p.err);
    REQUIRE(p.rc == -1);
    CHECK(p.config.http_listen.empty());
    CHECK(p.config.http_max_body_bytes == 64u << 10);
    CHECK(p.config.http_timeout_ms == 500);
    CHECK(p.config.ingest_tolerance_s == 60);
    REQUIRE(p.config.ingest.size() == 2);
    CHECK(p.config.ingest[0].name == "crm");
    CHECK(p.config.ingest[0].topic == "crm-events");
    CHECK(p.config.ingest[0].key.size() == 24);
    CHECK(p.config.ingest[1].name == "shop.orders");
    CHECK(p.config.ingest[1].key == p.config.ingest[0].key);  // the whsec_ prefix is optional
  }
  SUBCASE("TOML array") {
    temp_dir dir;
    auto path = write_file(
        dir, "w.toml",
        "http_listen = \"0.0.0.0:8080\"\nmax_message_bytes = \"2MiB\"\ningest = [\"a:t1:" + secret +
            "\", \"b:t2:" + secret + "\"]\n");
    auto p = parse({"--config", path});
    INFO(p.err);
    REQUIRE(p.rc == -1);
    CHECK(p.config.http_listen == "0.0.0.0:8080");
    CHECK(p.config.http_max_body_bytes == 2u << 20);  // follows max_message_bytes
    REQUIRE(p.config.ingest.size() == 2);
    CHECK(p.config.ingest[1].name == "b");
    CHECK(p.config.ingest[1].topic == "t2");
  }
}

TEST_CASE("config: bad HTTP settings and ingest endpoints are rejected with exit code 2") {
  const std::string secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
  std::vector<std::vector<std::string>> bad = {
      {"--http-listen", "nowhere"},
      {"--http-timeout-ms", "0"},
      {"--ingest", "crm"},
      {"--ingest", "crm:topic"},
      {"--ingest", "bad name:t:" + secret},
      {"--ingest", "crm:bad/topic:" + secret},
      {"--ingest", "crm:t:not-base64!"},
      {"--ingest", "crm:t:whsec_c2hvcnQ="},  // 5-byte key
      {"--ingest", "crm:t1:" + secret, "--ingest", "crm:t2:" + secret},
      {"--ingest-tolerance-s", "0"},
  };
  for (const auto& args : bad) {
    CAPTURE(args[1]);
    auto p = parse(args);
    CHECK(p.rc == 2);
    CHECK_FALSE(p.err.empty());
  }
}
