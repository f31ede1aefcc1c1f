// delivery_frame: builds one Deliver frame for one subscription.
//
// Each stored batch goes in as its original RecordBatch bytes (one memcpy
// from the shared in-memory batch) plus the selection of records this
// subscriber gets. When a subscriber gets only a small part of a large batch,
// the batch is re-encoded with just those records (the others become one
// shared empty Record) so the frame does not carry bytes nobody asked for.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "storage/batch.h"
#include "wire.h"

namespace wharf {

class session;

class delivery_frame {
 public:
  static constexpr size_t kTargetBytes = 1u << 20;  // start a new frame above this

  explicit delivery_frame(uint64_t subscription_id) : subscription_id_(subscription_id) {}

  /// Records [first, first + count) of `b`.
  void add_range(const storage::batch& b, uint32_t first, uint32_t count);
  /// The records of `b` at `indexes` (ascending), with their delivery attempts.
  void add_selection(const storage::batch& b, std::span<const uint32_t> indexes,
                     std::span<const uint16_t> attempts);

  bool empty() const { return batches_.empty(); }
  size_t bytes() const { return fbb_.GetSize(); }
  uint32_t records() const { return records_; }

  /// Finishes the frame, queues it on `s` and resets this builder.
  void send_to(session& s);

 private:
  /// The bytes to ship for `b` given that `selected` of its records are wanted.
  flatbuffers::Offset<flatbuffers::Vector<uint8_t>> data_for(
      const storage::batch& b, uint32_t selected, const std::vector<bool>* keep);

  uint64_t subscription_id_;
  flatbuffers::FlatBufferBuilder fbb_{64 * 1024};
  std::vector<flatbuffers::Offset<wire::DeliveredBatch>> batches_;
  uint32_t records_ = 0;
};

/// Copies a RecordBatch keeping only records with keep[i]; the others become
/// a shared empty Record so indexes (and hence offsets) stay the same.
/// Returns the finished RecordBatch buffer.
flatbuffers::DetachedBuffer encode_subset(const wire::RecordBatch& src, const std::vector<bool>& keep);

}  // namespace wharf
