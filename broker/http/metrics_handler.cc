// GET /metrics: the broker's state and counters in Prometheus text format.
//
// Adding a family is three lines in one of the write_*() functions below
// (or a new one called from handle_metrics()):
//   out.family("wharf_thing_total", "counter", "What it counts");
//   for (auto& [name, n] : things) out.sample({{"label", name}}, n);
// Counters end in _total, and all names start with wharf_.
#include <sys/stat.h>

#include "broker.h"
#include "http/handlers.h"
#include "http/http_api.h"
#include "http/prometheus_text.h"
#include "webhooks/webhook.h"

#ifndef WHARF_VERSION
#define WHARF_VERSION "0.0.0"
#endif

namespace wharf::http {
namespace {

uint64_t file_size(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 ? static_cast<uint64_t>(st.st_size) : 0;
}

void write_broker(broker& b, const http_api& api, prometheus_text& out) {
  const auto& st = b.stats();
  out.family("wharf_build_info", "gauge", "Always 1; the labels name the version and fsync policy");
  out.sample({{"version", WHARF_VERSION}, {"fsync", to_string(b.config().fsync)}}, uint64_t{1});
  out.family("wharf_uptime_seconds", "gauge", "Seconds since the broker started");
  out.sample({}, static_cast<double>(wire::now_us() - b.started_us()) / 1e6);
  out.family("wharf_connections", "gauge", "Open client connections by protocol");
  out.sample({{"protocol", "wharf"}}, uint64_t{b.connection_count()});
  out.sample({{"protocol", "http"}}, uint64_t{api.server().connection_count()});
  out.family("wharf_connections_accepted_total", "counter", "Connections accepted by protocol");
  out.sample({{"protocol", "wharf"}}, st.connections_total);
  out.sample({{"protocol", "http"}}, api.server().connections_total());
  out.family("wharf_connections_refused_total", "counter",
             "Wharf-protocol connections refused over max_connections");
  out.sample({}, st.connections_refused);
  out.family("wharf_http_responses_total", "counter", "HTTP responses by status code");
  for (const auto& [status, n] : api.server().responses())
    out.sample({{"code", std::to_string(status)}}, n);
}

void write_storage(broker& b, prometheus_text& out) {
  auto usage = b.store().usage();
  const auto& ws = b.writer().stats();
  out.family("wharf_storage_bytes", "gauge",
             "LMDB storage: pages in use (used) and the data file's size (file)");
  out.sample({{"kind", "used"}}, usage.used_bytes);
  out.sample({{"kind", "file"}}, file_size(b.config().data_dir + "/data.mdb"));
  out.family("wharf_storage_map_size_bytes", "gauge",
             "LMDB map size: the most the data file may grow to");
  out.sample({}, usage.map_size);
  out.family("wharf_commits_total", "counter", "Write transactions committed");
  out.sample({}, ws.commits.load());
  out.family("wharf_commit_failures_total", "counter", "Write transactions that failed");
  out.sample({}, ws.failed_commits.load());
  out.family("wharf_writer_queued_bytes", "gauge", "Bytes of appends waiting for a commit");
  out.sample({}, b.writer().queued_bytes());
  out.family("wharf_cache_bytes", "gauge", "Bytes of recent batches held in memory for delivery");
  out.sample({}, uint64_t{b.topics().cached_bytes()});

  auto h = ws.commit_latency.read();
  out.family("wharf_commit_latency_seconds", "histogram",
             "Duration of each write transaction, fsync included");
  for (size_t i = 0; i < h.cumulative.size(); ++i) {
    auto le = prometheus_text::format(storage::latency_histogram::kBoundsUs[i] / 1e6);
    out.sample("_bucket", {{"le", le}}, h.cumulative[i]);
  }
  out.sample("_bucket", {{"le", "+Inf"}}, h.count);
  out.sample("_sum", {}, h.sum_us / 1e6);
  out.sample("_count", {}, h.count);
}

void write_topics(broker& b, prometheus_text& out) {
  const auto& topics = b.topics().all();
  out.family("wharf_topics", "gauge", "Topics");
  out.sample({}, uint64_t{topics.size()});
  out.family("wharf_topic_records", "gauge", "Records stored per topic (after retention)");
  for (const auto& [name, t] : topics)
    out.sample({{"topic", name}}, t->state.next_offset - t->state.first_offset);
  out.family("wharf_topic_bytes", "gauge", "Bytes stored per topic");
  for (const auto& [name, t] : topics) out.sample({{"topic", name}}, t->state.bytes);
  out.family("wharf_publish_records_total", "counter",
             "Records appended per topic since the broker started");
  for (const auto& [name, t] : topics) out.sample({{"topic", name}}, t->counters.publish_records);
  out.family("wharf_publish_bytes_total", "counter",
             "Bytes appended per topic since the broker started");
  for (const auto& [name, t] : topics) out.sample({{"topic", name}}, t->counters.publish_bytes);
  out.family("wharf_deliver_records_total", "counter",
             "Records sent to subscribers per topic (redeliveries too)");
  for (const auto& [name, t] : topics) out.sample({{"topic", name}}, t->counters.deliver_records);
}

void write_groups(broker& b, prometheus_text& out) {
  const auto& topics = b.topics().all();
  // Each family lists every group, so walk the groups once per family.
  auto each_group = [&](auto fn) {
    for (const auto& [tname, t] : topics) {
      for (const auto& [gname, g] : t->groups) fn(tname, gname, *t, *g);
    }
  };
  out.family("wharf_group_lag", "gauge", "Records of the topic after the group's committed offset");
  each_group([&](auto& tn, auto& gn, const topic& t, const consumer_group& g) {
    uint64_t committed = g.state().committed();
    out.sample({{"topic", tn}, {"group", gn}},
               t.state.next_offset > committed ? t.state.next_offset - committed : 0);
  });
  out.family("wharf_group_pending", "gauge", "Records delivered to the group and not yet finished");
  each_group([&](auto& tn, auto& gn, const topic&, const consumer_group& g) {
    out.sample({{"topic", tn}, {"group", gn}}, g.state().pending());
  });
  out.family("wharf_group_members", "gauge", "Connected members of the group");
  each_group([&](auto& tn, auto& gn, const topic&, const consumer_group& g) {
    out.sample({{"topic", tn}, {"group", gn}}, uint64_t{g.members().size()});
  });
  out.family("wharf_group_redeliveries_total", "counter",
             "Records the group delivered again (timeouts, nacks, lost members)");
  each_group([&](auto& tn, auto& gn, const topic&, const consumer_group& g) {
    out.sample({{"topic", tn}, {"group", gn}}, g.state().redeliveries());
  });
  out.family("wharf_group_dead_lettered_total", "counter",
             "Records the group moved to the dead-letter topic");
  each_group([&](auto& tn, auto& gn, const topic&, const consumer_group& g) {
    out.sample({{"topic", tn}, {"group", gn}}, g.state().dead_lettered());
  });
  out.family("wharf_webhook_attempts_total", "counter",
             "Webhook delivery attempts by outcome (since the broker started)");
  each_group([&](auto& tn, auto& gn, const topic&, const consumer_group& g) {
    const webhooks::webhook* w = g.webhook();
    if (!w) return;
    const auto& c = w->totals();
    out.sample({{"topic", tn}, {"webhook", gn}, {"outcome", "success"}}, c.succeeded);
    out.sample({{"topic", tn}, {"webhook", gn}, {"outcome", "http_error"}}, c.failed_status);
    out.sample({{"topic", tn}, {"webhook", gn}, {"outcome", "timeout"}}, c.timeouts);
    out.sample({{"topic", tn}, {"webhook", gn}, {"outcome", "connect_error"}}, c.connect_errors);
    out.sample({{"topic", tn}, {"webhook", gn}, {"outcome", "error"}}, c.other_errors);
  });
  out.family("wharf_webhook_paused", "gauge",
             "1 while the webhook is paused (by an admin or disable_after)");
  each_group([&](auto& tn, auto& gn, const topic&, const consumer_group& g) {
    if (g.webhook())
      out.sample({{"topic", tn}, {"webhook", gn}}, uint64_t{g.webhook()->status().paused});
  });
}

void write_ingest(const http_api& api, prometheus_text& out) {
  out.family("wharf_ingest_requests_total", "counter",
             "Inbound webhook requests per endpoint by outcome");
  for (const auto& [name, ep] : api.ingest()) {
    const auto& c = ep->stats();
    out.sample({{"endpoint", name}, {"outcome", "published"}}, c.published);
    out.sample({{"endpoint", name}, {"outcome", "duplicate"}}, c.duplicates);
    out.sample({{"endpoint", name}, {"outcome", "unauthorized"}}, c.unauthorized);
    out.sample({{"endpoint", name}, {"outcome", "failed"}}, c.failed);
  }
}

}  // namespace

// GET /metrics -> 200 text/plain; version=0.0.4
void handle_metrics(broker& b, const http_api& api, const http_request&, http_reply reply) {
  prometheus_text out;
  write_broker(b, api, out);
  write_storage(b, out);
  write_topics(b, out);
  write_groups(b, out);
  write_ingest(api, out);
  http_response r;
  r.content_type = "text/plain; version=0.0.4; charset=utf-8";
  r.body = out.take();
  reply.send(std::move(r));
}

}  // namespace wharf::http
