// broker_config: every wharfd setting, from flags or a TOML file (--config).
// Each key `foo_bar` is also the flag `--foo-bar`; conf/wharfd.toml documents
// them all with their defaults. Parsed once at start-up on the main thread.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "log.h"
#include "storage/log_store.h"

namespace wharf {

/// One inbound webhook endpoint, POST /ingest/NAME (from "NAME:TOPIC:SECRET").
struct ingest_config {
  std::string name;   // path segment; a valid topic-style name
  std::string topic;  // where verified messages are published (created if missing)
  std::string key;    // HMAC key bytes decoded from the whsec_ secret
};

struct broker_config {
  std::string listen = "127.0.0.1:7700";  // HOST:PORT; port 0 picks a free port
  std::string data_dir = "./wharf-data";
  uint64_t map_size = 64ull << 30;  // bytes; LMDB map (sparse file)
  storage::fsync_policy fsync = storage::fsync_policy::always;
  uint32_t fsync_interval_ms = 100;       // with fsync = interval
  uint32_t max_message_bytes = 1u << 20;  // key + headers + payload of one record
  uint32_t max_frame_bytes = 8u << 20;    // one protocol frame
  bool auto_create_topics = false;
  uint64_t default_retention_ms = 0;     // 0 = forever
  uint64_t default_retention_bytes = 0;  // 0 = unlimited
  log_level level = log_level::info;
  // Beyond SPEC.md: operational limits with safe defaults.
  uint32_t max_connections = 4096;
  uint32_t handshake_timeout_ms = 10000;      // Hello must arrive within this
  uint32_t frame_timeout_ms = 30000;          // a started frame must be complete within this
  uint32_t write_timeout_ms = 30000;          // a client that takes no data for this long is dropped
  uint64_t cache_bytes = 32ull << 20;         // recent batches kept in memory for delivery
  uint32_t retention_check_ms = 1000;         // how often retention is enforced
  // HTTP (broker/http/): publish, ingest webhooks, /healthz, /metrics.
  std::string http_listen = "127.0.0.1:7780";  // HOST:PORT; "" = no HTTP listener
  uint32_t http_max_body_bytes = 0;            // request body limit; 0 = max_message_bytes
  uint32_t http_timeout_ms = 10000;            // a request must arrive whole within this
  std::vector<ingest_config> ingest;           // inbound webhook endpoints
  uint32_t ingest_tolerance_s = 300;           // webhook-timestamp skew; also the dedup window
  bool webhook_loopback_only = false;           // webhook URLs must name a loopback host
};

/// Parses wharfd's command line (and the --config file it names). Returns
/// -1 when the broker should start, otherwise the exit code (0 after --help
/// or --version; 2 after an error, already printed to stderr).
int parse_broker_config(int argc, const char* const* argv, broker_config& out);

/// Same, for tests: `args` excludes the program name.
int parse_broker_config(const std::vector<std::string>& args, broker_config& out);

const char* to_string(storage::fsync_policy p);

}  // namespace wharf
