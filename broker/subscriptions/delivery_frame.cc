#include "delivery_frame.h"

#include "server/session.h"

namespace wharf {
namespace {

constexpr size_t kSubsetMinBytes = 8 * 1024;  // below this, copying the whole batch is cheaper

flatbuffers::Offset<wire::Record> copy_record(flatbuffers::FlatBufferBuilder& fbb,
                                              const wire::Record& r) {
  flatbuffers::Offset<flatbuffers::Vector<uint8_t>> key, payload;
  flatbuffers::Offset<flatbuffers::Vector<flatbuffers::Offset<wire::Header>>> headers;
  if (r.key()) key = fbb.CreateVector(r.key()->data(), r.key()->size());
  if (r.payload()) payload = fbb.CreateVector(r.payload()->data(), r.payload()->size());
  if (r.headers()) {
    std::vector<flatbuffers::Offset<wire::Header>> hs;
    hs.reserve(r.headers()->size());
    for (auto h : *r.headers()) {
      auto name = fbb.CreateString(h->name());
      flatbuffers::Offset<flatbuffers::Vector<uint8_t>> value;
      if (h->value()) value = fbb.CreateVector(h->value()->data(), h->value()->size());
      hs.push_back(wire::CreateHeader(fbb, name, value));
    }
    headers = fbb.CreateVector(hs);
  }
  return wire::CreateRecord(fbb, key, headers, payload);
}

}  // namespace

flatbuffers::DetachedBuffer encode_subset(const wire::RecordBatch& src, const std::vector<bool>& keep) {
  flatbuffers::FlatBufferBuilder fbb(4096);
  auto empty = wire::CreateRecord(fbb);
  std::vector<flatbuffers::Offset<wire::Record>> records(src.records()->size(), empty);
  for (uint32_t i = 0; i < records.size(); ++i) {
    if (keep[i]) records[i] = copy_record(fbb, *src.records()->Get(i));
  }
  fbb.Finish(wire::CreateRecordBatch(fbb, fbb.CreateVector(records)), wire::RecordBatchIdentifier());
  return fbb.Release();
}

flatbuffers::Offset<flatbuffers::Vector<uint8_t>> delivery_frame::data_for(
    const storage::batch& b, uint32_t selected, const std::vector<bool>* keep) {
  auto bytes = b.bytes();
  if (keep && selected * 2 < b.count && bytes.size() > kSubsetMinBytes) {
    auto subset = encode_subset(*b.records(), *keep);
    return wire::create_nested(fbb_, {subset.data(), subset.size()});
  }
  return wire::create_nested(fbb_, bytes);
}

void delivery_frame::add_range(const storage::batch& b, uint32_t first, uint32_t count) {
  std::vector<bool> keep;
  const std::vector<bool>* keep_ptr = nullptr;
  if (count * 2 < b.count && b.bytes().size() > kSubsetMinBytes) {
    keep.assign(b.count, false);
    for (uint32_t i = first; i < first + count; ++i) keep[i] = true;
    keep_ptr = &keep;
  }
  auto data = data_for(b, count, keep_ptr);
  batches_.push_back(wire::CreateDeliveredBatch(fbb_, b.base_offset, b.timestamp_us, data, first, count));
  records_ += count;
}

void delivery_frame::add_selection(const storage::batch& b, std::span<const uint32_t> indexes,
                                   std::span<const uint16_t> attempts) {
  uint32_t n = static_cast<uint32_t>(indexes.size());
  std::vector<bool> keep;
  const std::vector<bool>* keep_ptr = nullptr;
  if (n * 2 < b.count && b.bytes().size() > kSubsetMinBytes) {
    keep.assign(b.count, false);
    for (uint32_t i : indexes) keep[i] = true;
    keep_ptr = &keep;
  }
  auto data = data_for(b, n, keep_ptr);
  auto idx = fbb_.CreateVector(indexes.data(), indexes.size());
  auto att = fbb_.CreateVector(attempts.data(), attempts.size());
  batches_.push_back(
      wire::CreateDeliveredBatch(fbb_, b.base_offset, b.timestamp_us, data, 0, n, idx, att));
  records_ += n;
}

void delivery_frame::send_to(session& s) {
  auto vec = fbb_.CreateVector(batches_);
  wire::finish_frame(fbb_, 0, wire::CreateDeliver(fbb_, subscription_id_, vec));
  s.send(fbb_);
  batches_.clear();
  records_ = 0;
}

}  // namespace wharf
