// wharf webhooks add|list|describe|pause|resume|remove
#include <charconv>
#include <cstdio>
#include <optional>

#include "cli.h"

namespace wharf_cli {
namespace {

/// "0", "250ms", "5s", "5m", "2h", "1d" -> milliseconds.
std::optional<uint64_t> parse_duration_ms(std::string_view text) {
  uint64_t n = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
  if (ec != std::errc{} || end == text.data()) return std::nullopt;
  std::string_view unit(end, text.data() + text.size() - end);
  uint64_t scale = unit == "ms"               ? 1
                   : unit == "s"              ? 1000
                   : unit == "m"              ? 60000
                   : unit == "h"              ? 3600000
                   : unit == "d"              ? 86400000
                   : (unit.empty() && n == 0) ? 1
                                              : 0;
  if (scale == 0) return std::nullopt;
  return n * scale;
}

std::string duration_text(uint64_t ms) {
  for (auto [unit, scale] :
       {std::pair{"d", 86400000ull}, {"h", 3600000ull}, {"m", 60000ull}, {"s", 1000ull}}) {
    if (ms >= scale && ms % scale == 0) return std::to_string(ms / scale) + unit;
  }
  return ms == 0 ? "0" : std::to_string(ms) + "ms";
}

void webhook_json(json_writer& w, const wharf::webhook_info& h) {
  w.begin_object().field("topic", h.topic).field("name", h.name).field("url", h.url);
  w.key("secrets").begin_array();
  for (auto& s : h.secrets) w.value(s);
  w.end_array();
  w.key("headers").begin_object();
  for (auto& [k, v] : h.headers) w.field(k, v);
  w.end_object();
  w.field("timeout_ms", h.timeout_ms)
      .field("max_in_flight", h.max_in_flight)
      .field("max_deliveries", h.max_deliveries);
  w.key("retry_schedule_ms").begin_array();
  for (auto d : h.retry_schedule_ms) w.value(d);
  w.end_array();
  w.field("disable_after_ms", h.disable_after_ms)
      .field("paused", h.paused)
      .field("disabled_reason", h.disabled_reason)
      .field("failing_since_us", h.failing_since_us)
      .field("attempts", h.attempts)
      .field("succeeded", h.succeeded)
      .field("failed_status", h.failed_status)
      .field("timeouts", h.timeouts)
      .field("connect_errors", h.connect_errors)
      .field("other_errors", h.other_errors)
      .field("in_flight", h.in_flight);
  w.key("group");
  group_json(w, h.group);
  w.key("recent").begin_array();
  for (auto& a : h.recent) {
    w.begin_object()
        .field("time_us", a.time_us)
        .field("offset", a.offset)
        .field("attempt", a.attempt)
        .field("status", a.status)
        .field("latency_us", a.latency_us)
        .field("error", a.error)
        .end_object();
  }
  w.end_array().end_object();
}

const char* state_text(const wharf::webhook_info& h) {
  return h.paused             ? (h.disabled_reason.empty() ? "paused" : "disabled")
         : h.failing_since_us ? "failing"
                              : "active";
}

void print_webhook(const wharf::webhook_info& h) {
  std::printf("topic:            %s\n", h.topic.c_str());
  std::printf("name:             %s\n", h.name.c_str());
  std::printf("url:              %s\n", h.url.c_str());
  std::printf("state:            %s%s%s\n", state_text(h), h.disabled_reason.empty() ? "" : ": ",
              h.disabled_reason.c_str());
  if (h.failing_since_us)
    std::printf("failing_since:    %s\n", iso_time_us(h.failing_since_us).c_str());
  for (auto& s : h.secrets) std::printf("secret:           %s\n", s.c_str());
  for (auto& [k, v] : h.headers) std::printf("header:           %s: %s\n", k.c_str(), v.c_str());
  std::string schedule;
  for (auto d : h.retry_schedule_ms) schedule += (schedule.empty() ? "" : ",") + duration_text(d);
  std::printf(
      "retry_schedule:   %s (%u attempts)\n", schedule.c_str(),
      h.max_deliveries ? h.max_deliveries : static_cast<uint32_t>(h.retry_schedule_ms.size()));
  std::printf("timeout_ms:       %u\n", h.timeout_ms);
  std::printf("max_in_flight:    %u (now %u)\n", h.max_in_flight, h.in_flight);
  std::printf("disable_after:    %s\n",
              h.disable_after_ms ? duration_text(h.disable_after_ms).c_str() : "never");
  std::printf("committed_offset: %lu\n", h.group.committed_offset);
  std::printf("lag:              %lu\n", h.group.lag);
  std::printf("unacked:          %lu\n", h.group.pending);
  std::printf("dead_lettered:    %lu\n", h.group.dead_lettered);
  std::printf(
      "attempts:         %lu (ok %lu, http errors %lu, timeouts %lu, connect errors %lu, other "
      "%lu)\n",
      h.attempts, h.succeeded, h.failed_status, h.timeouts, h.connect_errors, h.other_errors);
  std::printf("recent attempts:  %zu\n", h.recent.size());
  for (auto& a : h.recent) {
    std::printf("  %s  offset %lu  attempt %u  %s  %.1f ms  %s\n", iso_time_us(a.time_us).c_str(),
                a.offset, a.attempt, a.status ? std::to_string(a.status).c_str() : "-",
                a.latency_us / 1000.0, a.error.c_str());
  }
}

}  // namespace

void add_webhook_commands(CLI::App& app, globals& g, int& rc, const with_client_fn& with_client) {
  auto hooks =
      app.add_subcommand("webhooks",
                         "POST a topic's records to a URL (a consumer group run by the broker)")
          ->require_subcommand(1);
  static std::string topic, name, url, from = "latest", schedule_text, disable_after_text;
  static std::vector<std::string> secrets, headers;
  static std::optional<uint32_t> timeout_ms, max_in_flight, max_deliveries;
  static bool update = false;

  auto show = [&g, &rc](const wharf::result<wharf::webhook_info>& r) {
    if (!r) return void(rc = fail(r.err()));
    if (g.json) {
      json_writer w;
      webhook_json(w, *r);
      return print_json(w);
    }
    print_webhook(*r);
  };

  auto add = hooks->add_subcommand("add", "add a webhook (prints its signing secret)");
  add->add_option("TOPIC", topic, "topic name")->required();
  add->add_option("NAME", name, "webhook name (also its consumer group's)")->required();
  add->add_option("--url", url, "http:// or https:// URL to POST each record to")->required();
  add->add_option("--secret", secrets,
                  "whsec_... signing secret; repeat while rotating (default: generated)");
  add->add_option("--header", headers, "K=V header added to every request (repeatable)");
  add->add_option("--timeout-ms", timeout_ms, "per attempt (default 15000)");
  add->add_option("--max-in-flight", max_in_flight, "concurrent requests (default 16)");
  add->add_option("--max-deliveries", max_deliveries,
                  "attempts before dead-lettering (default: the schedule's length)");
  add->add_option("--retry-schedule", schedule_text,
                  "delays before each attempt, e.g. 0,5s,5m,30m,2h,5h,10h,10h (the default)");
  add->add_option("--disable-after", disable_after_text,
                  "pause after failing continuously this long (default 5d; 0 = never)");
  add->add_option("--from", from, "earliest | latest | OFFSET | @TIMESTAMP_MS")
      ->capture_default_str();
  add->add_flag("--update", update, "change an existing webhook, keeping its progress");
  add->callback([&g, &rc, with_client, show] {
    wharf::webhook_options o;
    o.url = url;
    o.secrets = secrets;
    for (auto& h : headers) {
      auto eq = h.find('=');
      if (eq == std::string::npos || eq == 0)
        return void(rc = usage("--header must be NAME=VALUE, got '" + h + "'"));
      o.headers.emplace_back(h.substr(0, eq), h.substr(eq + 1));
    }
    if (timeout_ms) o.timeout = std::chrono::milliseconds(*timeout_ms);
    o.max_in_flight = max_in_flight;
    o.max_deliveries = max_deliveries;
    if (!schedule_text.empty()) {
      std::string_view rest = schedule_text;
      while (!rest.empty()) {
        auto comma = rest.find(',');
        auto d = parse_duration_ms(rest.substr(0, comma));
        if (!d || *d > UINT32_MAX) {
          return void(rc =
                          usage("--retry-schedule takes durations like 0,500ms,5s,5m,2h,1d; got '" +
                                schedule_text + "'"));
        }
        o.retry_schedule.emplace_back(*d);
        rest = comma == std::string_view::npos ? std::string_view{} : rest.substr(comma + 1);
      }
    }
    if (!disable_after_text.empty()) {
      auto d = parse_duration_ms(disable_after_text);
      if (!d) return void(rc = usage("--disable-after takes a duration like 5d, 12h or 0"));
      o.disable_after = std::chrono::milliseconds(*d);
    }
    auto start = wharf::start_position::parse(from);
    if (!start)
      return void(rc = usage("--from must be earliest, latest, an offset or @TIMESTAMP_MS"));
    o.start = *start;
    o.update = update;
    with_client([&](wharf::client& c) { show(c.add_webhook(topic, name, o)); })();
  });

  auto list = hooks->add_subcommand("list", "list webhooks (of one topic, or all)");
  list->add_option("TOPIC", topic, "topic name (default: every topic)");
  list->callback(with_client([&g, &rc](wharf::client& c) {
    auto l = c.list_webhooks(topic);
    if (!l) return void(rc = fail(l.err()));
    if (g.json) {
      json_writer w;
      w.begin_array();
      for (auto& h : *l) webhook_json(w, h);
      w.end_array();
      return print_json(w);
    }
    std::printf("%-24s %-24s %-9s %10s %8s %10s  %s\n", "TOPIC", "NAME", "STATE", "LAG", "UNACKED",
                "DLQ", "URL");
    for (auto& h : *l) {
      std::printf("%-24s %-24s %-9s %10lu %8lu %10lu  %s\n", h.topic.c_str(), h.name.c_str(),
                  state_text(h), h.group.lag, h.group.pending, h.group.dead_lettered,
                  h.url.c_str());
    }
  }));

  for (auto [verb, help] :
       {std::pair{"describe", "show a webhook's settings, progress and last 20 attempts"},
        {"pause", "stop sending (requests in flight finish; lag accumulates)"},
        {"resume", "send again (also after the broker disabled it)"},
        {"remove", "remove a webhook and its progress"}}) {
    auto cmd = hooks->add_subcommand(verb, help);
    cmd->add_option("TOPIC", topic, "topic name")->required();
    cmd->add_option("NAME", name, "webhook name")->required();
    std::string v = verb;
    cmd->callback(with_client([&g, &rc, show, v](wharf::client& c) {
      if (v == "describe") return show(c.describe_webhook(topic, name));
      if (v == "pause" || v == "resume") return show(c.pause_webhook(topic, name, v == "pause"));
      auto r = c.remove_webhook(topic, name);
      if (!r) return void(rc = fail(r.err()));
      if (g.json)
        return print_json(json_writer().begin_object().field("removed", name).end_object());
      std::printf("webhook %s removed\n", name.c_str());
    }));
  }
}

}  // namespace wharf_cli
