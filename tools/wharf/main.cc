// wharf: the admin CLI and debugging producer/consumer. A thin layer of CLI11
// subcommands over the client SDK; every failure prints one line on stderr
// ("wharf: <code>: <message>") and exits non-zero (1 for broker or network
// errors, 2 for usage errors).
#include <wharf/client.h>

#include <CLI/CLI.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <iostream>
#include <iterator>
#include <mutex>
#include <sstream>

#include "cli.h"

namespace wharf_cli {

int fail(const wharf::error& e) {
  std::fprintf(stderr, "wharf: %s\n", e.to_string().c_str());
  return 1;
}

int usage(const std::string& msg) {
  std::fprintf(stderr, "wharf: %s\n", msg.c_str());
  return 2;
}

std::string iso_time_us(uint64_t us) {
  if (us == 0) return "-";
  time_t secs = static_cast<time_t>(us / 1000000);
  tm utc;
  gmtime_r(&secs, &utc);
  char buf[80];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03uZ", utc.tm_year + 1900, utc.tm_mon + 1,
                utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec, static_cast<unsigned>(us / 1000 % 1000));
  return buf;
}

wharf::result<std::unique_ptr<wharf::client>> connect(const globals& g) {
  wharf::client_options o;
  o.broker = g.broker;
  o.client_name = "wharf-cli";
  auto t = std::chrono::milliseconds(static_cast<int64_t>(g.timeout_s * 1000));
  o.connect_timeout = t;
  o.request_timeout = t;
  return wharf::client::connect(o);
}

void print_json(const json_writer& w) { std::printf("%s\n", w.str().c_str()); }

void topic_json(json_writer& w, const wharf::topic_info& t) {
  w.begin_object()
      .field("name", t.name)
      .field("first_offset", t.first_offset)
      .field("next_offset", t.next_offset)
      .field("last_offset", t.records ? t.next_offset - 1 : t.next_offset)
      .field("records", t.records)
      .field("bytes", t.bytes)
      .field("retention_ms", t.retention_ms)
      .field("retention_bytes", t.retention_bytes)
      .field("created_us", t.created_us)
      .field("last_timestamp_us", t.last_timestamp_us);
  w.key("groups").begin_array();
  for (auto& g : t.groups) w.value(g);
  w.end_array().end_object();
}

void group_json(json_writer& w, const wharf::group_info& g) {
  w.begin_object()
      .field("topic", g.topic)
      .field("group", g.group)
      .field("committed_offset", g.committed_offset)
      .field("dispatch_offset", g.dispatch_offset)
      .field("lag", g.lag)
      .field("pending", g.pending)
      .field("redeliveries", g.redeliveries)
      .field("dead_lettered", g.dead_lettered)
      .field("ack_timeout_ms", g.ack_timeout_ms)
      .field("max_deliveries", g.max_deliveries)
      .field("created_us", g.created_us)
      .field("webhook", g.webhook);
  w.key("members").begin_array();
  for (auto& m : g.members) {
    w.begin_object().field("id", m.id).field("peer", m.peer).field("in_flight", m.in_flight).field("delivered", m.delivered).end_object();
  }
  w.end_array().end_object();
}

std::string limit_text(uint64_t v, const char* unit, const char* none) {
  return v == 0 ? std::string("0 (") + none + ")" : std::to_string(v) + unit;
}

void print_topic(const wharf::topic_info& t) {
  std::printf("name:             %s\n", t.name.c_str());
  std::printf("first_offset:     %lu\n", t.first_offset);
  std::printf("last_offset:      %s\n", t.records ? std::to_string(t.next_offset - 1).c_str() : "- (empty)");
  std::printf("next_offset:      %lu\n", t.next_offset);
  std::printf("records:          %lu\n", t.records);
  std::printf("bytes:            %lu\n", t.bytes);
  std::printf("retention_ms:     %s\n", limit_text(t.retention_ms, "", "forever").c_str());
  std::printf("retention_bytes:  %s\n", limit_text(t.retention_bytes, "", "unlimited").c_str());
  std::printf("created:          %s\n", iso_time_us(t.created_us).c_str());
  std::printf("last_append:      %s\n", iso_time_us(t.last_timestamp_us).c_str());
  std::string groups;
  for (auto& g : t.groups) groups += (groups.empty() ? "" : ", ") + g;
  std::printf("groups:           %s\n", groups.empty() ? "-" : groups.c_str());
}

void print_group(const wharf::group_info& g) {
  std::printf("topic:            %s\n", g.topic.c_str());
  std::printf("group:            %s\n", g.group.c_str());
  std::printf("committed_offset: %lu\n", g.committed_offset);
  std::printf("dispatch_offset:  %lu\n", g.dispatch_offset);
  std::printf("lag:              %lu\n", g.lag);
  std::printf("unacked:          %lu\n", g.pending);
  std::printf("redeliveries:     %lu\n", g.redeliveries);
  std::printf("dead_lettered:    %lu\n", g.dead_lettered);
  std::printf("ack_timeout_ms:   %u\n", g.ack_timeout_ms);
  std::printf("max_deliveries:   %s\n", g.max_deliveries ? std::to_string(g.max_deliveries).c_str() : "0 (unlimited)");
  std::printf("created:          %s\n", iso_time_us(g.created_us).c_str());
  std::printf("members:          %zu%s\n", g.members.size(), g.webhook ? " (a webhook: the broker delivers over HTTP)" : "");
  for (auto& m : g.members) {
    std::printf("  member %lu  %s  in_flight=%u delivered=%lu\n", m.id, m.peer.c_str(), m.in_flight, m.delivered);
  }
}

}  // namespace wharf_cli

namespace {

using namespace std::chrono_literals;
using namespace wharf_cli;

// ---- consume -------------------------------------------------------------

std::atomic<bool> g_interrupted{false};
std::mutex g_mu;
std::condition_variable g_cv;

void on_sigint(int) {
  g_interrupted = true;
  g_cv.notify_all();  // not async-signal-safe in theory; the waiter also polls
}

void print_message(const wharf::message& m, bool json) {
  if (!json) {
    auto p = m.payload();
    std::fwrite(p.data(), 1, p.size(), stdout);
    std::fputc('\n', stdout);
  } else {
    json_writer w;
    w.begin_object().field("topic", m.topic()).field("offset", m.offset()).field("timestamp_us", m.timestamp_us());
    w.key("key");
    if (auto k = m.key()) {
      w.value(*k);
    } else {
      w.null();
    }
    w.key("headers").begin_object();
    for (auto& [name, value] : m.headers()) w.field(name, value);
    w.end_object();
    w.field("payload", m.payload()).field("delivery_count", m.delivery_count()).end_object();
    std::printf("%s\n", w.str().c_str());
  }
  std::fflush(stdout);
}

int consume(const globals& g, const std::string& topic, const std::string& group, const std::string& from,
            uint64_t count, bool no_ack) {
  auto start = wharf::start_position::parse(from);
  if (!start) return usage("--from must be earliest, latest, an offset or @TIMESTAMP_MS, got '" + from + "'");
  auto c = connect(g);
  if (!c) return fail(c.err());
  std::signal(SIGINT, on_sigint);
  std::signal(SIGTERM, on_sigint);

  uint64_t printed = 0;
  std::optional<wharf::error> ended;
  wharf::subscribe_options o;
  o.start = *start;
  if (count > 0) o.max_in_flight = static_cast<uint32_t>(std::min<uint64_t>(count, 1000));
  o.on_end = [&](const wharf::error& e) {
    std::lock_guard lk(g_mu);
    ended = e;
    g_cv.notify_all();
  };
  bool json = g.json;
  auto handler = [&](wharf::message m) {
    {
      std::lock_guard lk(g_mu);
      if (count > 0 && printed >= count) {
        m.release();  // not ours to process: back to the group, uncounted
        return;
      }
      print_message(m, json);
      ++printed;
    }
    if (!no_ack) m.ack();
    g_cv.notify_all();
  };
  auto sub = group.empty() ? (*c)->subscribe(topic, handler, o) : (*c)->subscribe(topic, group, handler, o);
  if (!sub) return fail(sub.err());

  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(static_cast<int64_t>(g.timeout_s * 1000));
  std::unique_lock lk(g_mu);
  while (true) {
    if (count > 0 && printed >= count) break;
    if (ended) {
      lk.unlock();
      (*sub)->close();
      return fail(*ended);
    }
    if (g_interrupted) break;
    if (g.timeout_given && std::chrono::steady_clock::now() >= deadline) {
      lk.unlock();
      (*sub)->close();
      return fail(wharf::error(wharf::errc::timeout, "received " + std::to_string(printed) + " of " +
                                                         std::to_string(count) + " records before the timeout"));
    }
    g_cv.wait_for(lk, 100ms);
  }
  lk.unlock();
  (*sub)->close();  // unacked deliveries go back to the group at once
  (*c)->close();
  return 0;
}

// ---- publish -------------------------------------------------------------

int publish(const globals& g, const std::string& topic, const std::optional<std::string>& key,
            const std::vector<std::string>& header_args, const std::string& file) {
  std::vector<std::pair<std::string, std::string>> hdrs;
  for (auto& h : header_args) {
    auto eq = h.find('=');
    if (eq == std::string::npos || eq == 0) return usage("--header must be NAME=VALUE, got '" + h + "'");
    hdrs.emplace_back(h.substr(0, eq), h.substr(eq + 1));
  }
  std::vector<wharf::header> hv;
  for (auto& [n, v] : hdrs) hv.push_back({n, v});

  std::vector<std::string> payloads;
  if (!file.empty()) {
    std::ifstream in(file, std::ios::binary);
    if (!in) return usage("cannot read " + file);
    payloads.emplace_back(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  } else {
    std::string line;
    while (std::getline(std::cin, line)) payloads.push_back(line);
  }
  // Declared before the client: its destructor may still complete (fail)
  // pending publishes, whose callbacks write here.
  std::vector<wharf::result<wharf::publish_ack>> results(payloads.size(), wharf::error());
  auto c = connect(g);
  if (!c) return fail(c.err());

  for (size_t i = 0; i < payloads.size(); ++i) {
    wharf::record r{payloads[i], key ? std::optional<std::string_view>(*key) : std::nullopt, hv};
    (*c)->publish_async(topic, r, [&results, i](const wharf::result<wharf::publish_ack>& res) { results[i] = res; });
  }
  auto f = (*c)->flush(std::chrono::milliseconds(static_cast<int64_t>(g.timeout_s * 1000)));
  if (!f) return fail(f.err());
  int rc = 0;
  for (auto& r : results) {
    if (!r) {
      if (rc == 0) fail(r.err());
      rc = 1;
      continue;
    }
    if (g.json) {
      json_writer w;
      w.begin_object().field("offset", r->offset).field("timestamp_us", r->timestamp_us).end_object();
      print_json(w);
    } else {
      std::printf("%lu\n", r->offset);
    }
  }
  return rc;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"wharf - admin CLI for the Wharf broker", "wharf"};
  app.require_subcommand(1);
  app.fallthrough();
  globals g;
  if (const char* env = std::getenv("WHARF_BROKER")) g.broker = env;
  app.add_option("--broker", g.broker, "broker address HOST:PORT (env WHARF_BROKER)")->capture_default_str();
  app.add_flag("--json", g.json, "machine-readable output");
  auto timeout_opt = app.add_option("--timeout", g.timeout_s, "seconds to wait for the broker")->capture_default_str()
                         ->check(CLI::PositiveNumber);

  int rc = 0;
  // A subcommand body that needs a connection: connects (failures set rc).
  with_client_fn with_client = [&](client_body body) -> std::function<void()> {
    return [&rc, &g, body] {
      auto c = connect(g);
      if (!c) return void(rc = fail(c.err()));
      body(**c);
    };
  };
  auto topics = app.add_subcommand("topics", "manage topics")->require_subcommand(1);
  {
    auto create = topics->add_subcommand("create", "create a topic");
    static std::string name;
    static std::optional<uint64_t> ret_ms, ret_bytes;
    static bool if_not_exists = false;
    create->add_option("NAME", name, "topic name")->required();
    create->add_option("--retention-ms", ret_ms, "delete records older than this (0 = forever)");
    create->add_option("--retention-bytes", ret_bytes, "keep at most this many bytes (0 = unlimited)");
    create->add_flag("--if-not-exists", if_not_exists, "succeed if the topic exists");
    create->callback(with_client([&](wharf::client& client) {
      auto t = client.create_topic(name, {ret_ms, ret_bytes, if_not_exists});
      if (!t) return void(rc = fail(t.err()));
      if (g.json) {
        json_writer w;
        topic_json(w, *t);
        print_json(w);
      } else {
        std::printf("topic %s ready\n", t->name.c_str());
      }
    }));
    topics->add_subcommand("list", "list topics")->callback(with_client([&](wharf::client& client) {
      auto l = client.list_topics();
      if (!l) return void(rc = fail(l.err()));
      if (g.json) {
        json_writer w;
        w.begin_array();
        for (auto& t : *l) topic_json(w, t);
        w.end_array();
        print_json(w);
        return;
      }
      std::printf("%-32s %12s %12s %12s %14s  %s\n", "TOPIC", "RECORDS", "FIRST", "NEXT", "BYTES", "GROUPS");
      for (auto& t : *l) {
        std::printf("%-32s %12lu %12lu %12lu %14lu  %zu\n", t.name.c_str(), t.records, t.first_offset, t.next_offset,
                    t.bytes, t.groups.size());
      }
    }));
    static std::string dname;
    auto describe = topics->add_subcommand("describe", "show a topic's offsets, size, retention and groups");
    describe->add_option("NAME", dname, "topic name")->required();
    describe->callback(with_client([&](wharf::client& client) {
      auto t = client.describe_topic(dname);
      if (!t) return void(rc = fail(t.err()));
      if (g.json) {
        json_writer w;
        topic_json(w, *t);
        print_json(w);
      } else {
        print_topic(*t);
      }
    }));
    static std::string xname;
    auto del = topics->add_subcommand("delete", "delete a topic and all its records");
    del->add_option("NAME", xname, "topic name")->required();
    del->callback(with_client([&](wharf::client& client) {
      auto r = client.delete_topic(xname);
      if (!r) return void(rc = fail(r.err()));
      if (!g.json) std::printf("topic %s deleted\n", xname.c_str());
      else print_json(json_writer().begin_object().field("deleted", xname).end_object());
    }));
  }

  {
    auto pub = app.add_subcommand("publish", "publish records: one per stdin line, or one from --file");
    static std::string topic, file;
    static std::optional<std::string> key;
    static std::vector<std::string> headers;
    pub->add_option("TOPIC", topic, "topic name")->required();
    pub->add_option("--key", key, "record key (records with one key stay in order within a group)");
    pub->add_option("--header", headers, "header NAME=VALUE (repeatable)");
    pub->add_option("--file", file, "publish this file's bytes as one record");
    pub->callback([&] { rc = publish(g, topic, key, headers, file); });
  }

  {
    auto con = app.add_subcommand("consume", "print records, one per line (payload; --json for all fields)");
    static std::string topic, group, from = "latest";
    static uint64_t count = 0;
    static bool no_ack = false;
    con->add_option("TOPIC", topic, "topic name")->required();
    con->add_option("--group", group, "consume as a member of this consumer group (acks each record)");
    con->add_option("--from", from, "earliest | latest | OFFSET | @TIMESTAMP_MS")->capture_default_str();
    con->add_option("--count", count, "exit after this many records");
    con->add_flag("--no-ack", no_ack, "with --group: do not ack (records are redelivered)");
    con->callback([&] {
      g.timeout_given = timeout_opt->count() > 0;
      rc = consume(g, topic, group, from, count, no_ack);
    });
  }

  // Used by callbacks that run during parse(), so it lives as long as main.
  auto show = [&](const wharf::result<wharf::group_info>& r) {
    if (!r) return void(rc = fail(r.err()));
    if (g.json) {
      json_writer w;
      group_json(w, *r);
      print_json(w);
    } else {
      print_group(*r);
    }
  };
  auto groups = app.add_subcommand("groups", "manage consumer groups")->require_subcommand(1);
  {
    static std::string topic, group, from = "latest", to;
    auto glist = groups->add_subcommand("list", "list the groups of a topic");
    glist->add_option("TOPIC", topic, "topic name")->required();
    glist->callback(with_client([&](wharf::client& client) {
      auto l = client.list_groups(topic);
      if (!l) return void(rc = fail(l.err()));
      if (g.json) {
        json_writer w;
        w.begin_array();
        for (auto& gi : *l) group_json(w, gi);
        w.end_array();
        return print_json(w);
      }
      std::printf("%-32s %14s %12s %10s %8s\n", "GROUP", "COMMITTED", "LAG", "UNACKED", "MEMBERS");
      for (auto& gi : *l) {
        std::printf("%-32s %14lu %12lu %10lu %8zu\n", gi.group.c_str(), gi.committed_offset, gi.lag, gi.pending,
                    gi.members.size());
      }
    }));
    auto gdesc = groups->add_subcommand("describe", "show a group's progress and members");
    gdesc->add_option("TOPIC", topic, "topic name")->required();
    gdesc->add_option("GROUP", group, "group name")->required();
    gdesc->callback(with_client([&](wharf::client& client) {
      show(client.describe_group(topic, group));
    }));
    auto gcreate = groups->add_subcommand("create", "create a group");
    static std::optional<uint64_t> ack_timeout_ms;
    static std::optional<uint32_t> max_deliveries;
    static bool if_not_exists = false;
    gcreate->add_option("TOPIC", topic, "topic name")->required();
    gcreate->add_option("GROUP", group, "group name")->required();
    gcreate->add_option("--from", from, "earliest | latest | OFFSET | @TIMESTAMP_MS")->capture_default_str();
    gcreate->add_option("--ack-timeout-ms", ack_timeout_ms, "redeliver records not acked within this (default 30000)");
    gcreate->add_option("--max-deliveries", max_deliveries, "dead-letter after this many deliveries (default 5, 0 = never)");
    gcreate->add_flag("--if-not-exists", if_not_exists, "succeed if the group exists");
    gcreate->callback([&] {
      auto start = wharf::start_position::parse(from);
      if (!start) return void(rc = usage("--from must be earliest, latest, an offset or @TIMESTAMP_MS"));
      wharf::group_options o;
      o.start = *start;
      if (ack_timeout_ms) o.ack_timeout = std::chrono::milliseconds(*ack_timeout_ms);
      o.max_deliveries = max_deliveries;
      o.if_not_exists = if_not_exists;
      with_client([&](wharf::client& client) { show(client.create_group(topic, group, o)); })();
    });
    auto greset = groups->add_subcommand("reset", "move a group's position (its unacked records are dropped)");
    greset->add_option("TOPIC", topic, "topic name")->required();
    greset->add_option("GROUP", group, "group name")->required();
    greset->add_option("--to", to, "earliest | latest | OFFSET | @TIMESTAMP_MS")->required();
    greset->callback([&] {
      auto pos = wharf::start_position::parse(to);
      if (!pos) return void(rc = usage("--to must be earliest, latest, an offset or @TIMESTAMP_MS"));
      with_client([&](wharf::client& client) { show(client.reset_group(topic, group, *pos)); })();
    });
    auto gdel = groups->add_subcommand("delete", "delete a group and its progress");
    gdel->add_option("TOPIC", topic, "topic name")->required();
    gdel->add_option("GROUP", group, "group name")->required();
    gdel->callback(with_client([&](wharf::client& client) {
      auto r = client.delete_group(topic, group);
      if (!r) return void(rc = fail(r.err()));
      if (!g.json) std::printf("group %s deleted\n", group.c_str());
      else print_json(json_writer().begin_object().field("deleted", group).end_object());
    }));
  }

  add_webhook_commands(app, g, rc, with_client);

  app.add_subcommand("stats", "broker-wide counters")->callback(with_client([&](wharf::client& client) {
    auto s = client.stats();
    if (!s) return void(rc = fail(s.err()));
    if (g.json) {
      json_writer w;
      w.begin_object()
          .field("broker_version", s->broker_version)
          .field("uptime_ms", s->uptime_ms)
          .field("connections", s->connections)
          .field("topics", s->topics)
          .field("groups", s->groups)
          .field("publish_records_total", s->publish_records_total)
          .field("publish_bytes_total", s->publish_bytes_total)
          .field("deliver_records_total", s->deliver_records_total)
          .field("publish_records_per_s", s->publish_records_per_s)
          .field("deliver_records_per_s", s->deliver_records_per_s)
          .field("commits_total", s->commits_total)
          .field("syncs_total", s->syncs_total)
          .field("storage_used_bytes", s->storage_used_bytes)
          .field("map_size_bytes", s->map_size_bytes)
          .field("fsync", s->fsync)
          .end_object();
      return print_json(w);
    }
    std::printf("broker_version:        %s\n", s->broker_version.c_str());
    std::printf("uptime_s:              %.1f\n", s->uptime_ms / 1000.0);
    std::printf("connections:           %u\n", s->connections);
    std::printf("topics:                %u\n", s->topics);
    std::printf("groups:                %u\n", s->groups);
    std::printf("published_records:     %lu\n", s->publish_records_total);
    std::printf("published_bytes:       %lu\n", s->publish_bytes_total);
    std::printf("delivered_records:     %lu\n", s->deliver_records_total);
    std::printf("publish_rate:          %.0f records/s\n", s->publish_records_per_s);
    std::printf("deliver_rate:          %.0f records/s\n", s->deliver_records_per_s);
    std::printf("commits:               %lu\n", s->commits_total);
    std::printf("extra fsyncs:          %lu\n", s->syncs_total);
    std::printf("storage_used:          %lu bytes\n", s->storage_used_bytes);
    std::printf("map_size:              %lu bytes\n", s->map_size_bytes);
    std::printf("fsync:                 %s\n", s->fsync.c_str());
  }));

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);
    std::fprintf(stderr, "wharf: %s (see wharf --help)\n", e.what());
    return 2;
  }
  return rc;
}
