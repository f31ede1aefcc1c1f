// GetStats: broker-wide counters for `wharf stats`.
#include "dispatch.h"
#include "replies.h"

#ifndef WHARF_VERSION
#define WHARF_VERSION "0.0.0"
#endif

namespace wharf {

// GetStats{} -> Stats
void handle_get_stats(broker& b, session& s, uint64_t rid, const wire::GetStats&) {
  const auto& st = b.stats();
  auto usage = b.store().usage();
  size_t groups = 0;
  for (auto& [name, t] : b.topics().all()) groups += t->groups.size();
  flatbuffers::FlatBufferBuilder fbb(512);
  auto version = fbb.CreateString(WHARF_VERSION);
  auto fsync = fbb.CreateString(to_string(b.config().fsync));
  wire::StatsBuilder sb(fbb);
  sb.add_broker_version(version);
  sb.add_uptime_ms((wire::now_us() - b.started_us()) / 1000);
  sb.add_connections(static_cast<uint32_t>(b.connection_count()));
  sb.add_topics(static_cast<uint32_t>(b.topics().all().size()));
  sb.add_groups(static_cast<uint32_t>(groups));
  sb.add_publish_records_total(st.publish_records);
  sb.add_publish_bytes_total(st.publish_bytes);
  sb.add_deliver_records_total(st.deliver_records);
  sb.add_publish_records_per_s(st.publish_rate);
  sb.add_deliver_records_per_s(st.deliver_rate);
  sb.add_commits_total(b.writer().stats().commits.load());
  sb.add_storage_used_bytes(usage.used_bytes);
  sb.add_map_size_bytes(usage.map_size);
  sb.add_fsync(fsync);
  sb.add_syncs_total(b.writer().stats().syncs.load());
  wire::finish_frame(fbb, rid, sb.Finish());
  s.send(fbb);
}

}  // namespace wharf
