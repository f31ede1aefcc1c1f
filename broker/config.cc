#include "config.h"

#include <CLI/CLI.hpp>

#include <iostream>
#include <map>
#include <type_traits>

#include "webhooks/signature.h"
#include "wire.h"

#ifndef WHARF_VERSION
#define WHARF_VERSION "0.0.0"
#endif

namespace wharf {

const char* to_string(storage::fsync_policy p) {
  switch (p) {
    case storage::fsync_policy::always:
      return "always";
    case storage::fsync_policy::interval:
      return "interval";
    case storage::fsync_policy::never:
      return "never";
  }
  return "?";
}

namespace {

struct parsed_ingest {
  ingest_config value;
  std::string error;  // empty when value is valid
  explicit operator bool() const { return error.empty(); }
};

// "NAME:TOPIC:SECRET". A whsec_ secret is base64, which has no ':'.
parsed_ingest parse_ingest(const std::string& spec) {
  parsed_ingest r;
  size_t a = spec.find(':');
  size_t b = a == std::string::npos ? a : spec.find(':', a + 1);
  if (b == std::string::npos) {
    r.error = "expected NAME:TOPIC:SECRET, got '" + spec + "'";
    return r;
  }
  r.value.name = spec.substr(0, a);
  r.value.topic = spec.substr(a + 1, b - a - 1);
  auto key = webhooks::decode_secret(std::string_view(spec).substr(b + 1));
  if (!wire::valid_name(r.value.name)) {
    r.error = "invalid endpoint name '" + r.value.name + "' (1-200 characters of [A-Za-z0-9._-])";
  } else if (!wire::valid_topic_name(r.value.topic)) {
    r.error = "endpoint " + r.value.name + ": invalid topic name '" + r.value.topic + "'";
  } else if (!key) {
    r.error =
        "endpoint " + r.value.name + ": the secret must be whsec_ + base64 of at least 16 bytes";
  } else {
    r.value.key = std::move(*key);
  }
  return r;
}

}  // namespace

int parse_broker_config(int argc, const char* const* argv, broker_config& out) {
  CLI::App app{"wharfd - the Wharf message broker", "wharfd"};
  app.set_version_flag("--version", WHARF_VERSION);
  app.set_config("--config", "", "TOML file with settings (keys as below, with _ for -)");
  app.allow_config_extras(false);
  app.get_formatter()->column_width(40);

  broker_config c;
  std::string fsync = to_string(c.fsync), level = "info";
  // CLI11 converts "-1" to an unsigned option by wrapping; refuse it first.
  CLI::Validator non_negative(
      [](std::string& v) {
        return v.find('-') == std::string::npos ? std::string() : "must not be negative";
      },
      "NON-NEGATIVE");
  // Each option answers to --foo-bar and to the config key foo_bar.
  auto opt = [&](const char* key, auto& var, const char* help) {
    std::string dashed = key;
    for (auto& ch : dashed) ch = ch == '_' ? '-' : ch;
    std::string names = "--" + dashed;
    if (dashed != key) names += std::string(",--") + key;
    auto o = app.add_option(names, var, help)->capture_default_str();
    if constexpr (std::is_integral_v<std::remove_reference_t<decltype(var)>>)
      o->check(non_negative);
    return o;
  };
  opt("listen", c.listen, "address to listen on, HOST:PORT (port 0 = any free port)");
  opt("data_dir", c.data_dir, "directory of the LMDB environment");
  opt("map_size", c.map_size, "LMDB map size, e.g. 64GiB (sparse)")
      ->transform(CLI::AsSizeValue(false));
  opt("fsync", fsync, "always | interval | never")
      ->check(CLI::IsMember({"always", "interval", "never"}));
  opt("fsync_interval_ms", c.fsync_interval_ms, "with fsync = interval: flush period")
      ->check(CLI::Range(1u, 3600000u));
  opt("max_message_bytes", c.max_message_bytes, "largest record (key + headers + payload)")
      ->transform(CLI::AsSizeValue(false));
  opt("max_frame_bytes", c.max_frame_bytes, "largest protocol frame")
      ->transform(CLI::AsSizeValue(false));
  app.add_flag("--auto-create-topics,--auto_create_topics,!--no-auto-create-topics",
               c.auto_create_topics, "create unknown topics on first publish");
  opt("default_retention_ms", c.default_retention_ms, "retention of new topics, 0 = forever");
  opt("default_retention_bytes", c.default_retention_bytes, "size limit of new topics, 0 = none")
      ->transform(CLI::AsSizeValue(false));
  opt("log_level", level, "debug | info | warn | error")
      ->check(CLI::IsMember({"debug", "info", "warn", "error"}));
  opt("max_connections", c.max_connections, "connections above this are refused")
      ->check(CLI::Range(1u, 1000000u));
  opt("handshake_timeout_ms", c.handshake_timeout_ms, "a client must say Hello within this")
      ->check(CLI::Range(1u, 3600000u));
  opt("frame_timeout_ms", c.frame_timeout_ms,
      "close a connection whose started frame stalls this long")
      ->check(CLI::Range(1u, 3600000u));
  opt("write_timeout_ms", c.write_timeout_ms, "drop a client that takes no data for this long")
      ->check(CLI::Range(1u, 3600000u));
  opt("cache_bytes", c.cache_bytes, "memory for recently appended batches")
      ->transform(CLI::AsSizeValue(false));
  opt("retention_check_ms", c.retention_check_ms, "how often retention is enforced")
      ->check(CLI::Range(10u, 3600000u));
  app.add_flag("--webhook-loopback-only,--webhook_loopback_only,!--no-webhook-loopback-only",
               c.webhook_loopback_only, "webhook URLs must name localhost, 127.0.0.0/8 or ::1");
  opt("http_listen", c.http_listen, "HTTP address, HOST:PORT (\"\" = no HTTP listener)");
  opt("http_max_body_bytes", c.http_max_body_bytes,
      "largest HTTP request body (0 = max_message_bytes)")
      ->transform(CLI::AsSizeValue(false));
  opt("http_timeout_ms", c.http_timeout_ms, "an HTTP request must arrive whole within this")
      ->check(CLI::Range(1u, 3600000u));
  std::vector<std::string> ingest;
  opt("ingest", ingest, "inbound webhook endpoint NAME:TOPIC:SECRET (repeatable)");
  opt("ingest_tolerance_s", c.ingest_tolerance_s,
      "webhook-timestamp tolerance and dedup window, seconds")
      ->check(CLI::Range(1u, 86400u));

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? 0 : 2;
  }
  c.fsync = fsync == "interval" ? storage::fsync_policy::interval
            : fsync == "never"  ? storage::fsync_policy::never
                                : storage::fsync_policy::always;
  parse_log_level(level, c.level);

  auto fail = [](const std::string& msg) {
    std::cerr << "wharfd: " << msg << "\n";
    return 2;
  };
  if (!wire::parse_host_port(c.listen))
    return fail("listen: expected HOST:PORT, got '" + c.listen + "'");
  if (c.data_dir.empty()) return fail("data_dir must not be empty");
  if (c.map_size < (1u << 20)) return fail("map_size must be at least 1MiB");
  if (c.max_frame_bytes < 4096) return fail("max_frame_bytes must be at least 4096");
  if (c.max_message_bytes == 0) return fail("max_message_bytes must be positive");
  if (uint64_t{c.max_message_bytes} + 1024 > c.max_frame_bytes) {
    return fail("max_message_bytes must be at least 1KiB below max_frame_bytes");
  }
  if (!c.http_listen.empty() && !wire::parse_host_port(c.http_listen)) {
    return fail("http_listen: expected HOST:PORT or \"\", got '" + c.http_listen + "'");
  }
  if (c.http_max_body_bytes == 0) c.http_max_body_bytes = c.max_message_bytes;
  for (const auto& spec : ingest) {
    auto e = parse_ingest(spec);
    if (!e) return fail("ingest: " + e.error);
    for (const auto& other : c.ingest) {
      if (other.name == e.value.name)
        return fail("ingest: endpoint '" + other.name + "' is defined twice");
    }
    c.ingest.push_back(std::move(e.value));
  }
  out = c;
  return -1;
}

int parse_broker_config(const std::vector<std::string>& args, broker_config& out) {
  std::vector<const char*> argv{"wharfd"};
  for (auto& a : args) argv.push_back(a.c_str());
  return parse_broker_config(static_cast<int>(argv.size()), argv.data(), out);
}

}  // namespace wharf
