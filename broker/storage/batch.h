// batch: one RecordBatch held in memory, the unit the broker moves around.
//
// A publish handler copies the producer's RecordBatch bytes into a batch
// (8-byte-aligned storage), the group-commit writer appends it and fills in
// base_offset and timestamp_us, and from then on it is immutable and shared
// (std::shared_ptr<const batch>) by the topic's tail cache, every subscription
// and every group that delivers it: one copy of the bytes serves all readers.
// Batches read back from LMDB for catch-up are built the same way.
#pragma once

#include <cstdint>
#include <cstring>
#include <memory>
#include <span>
#include <vector>

#include "record_generated.h"

namespace wharf::storage {

struct batch {
  uint32_t topic_id = 0;
  uint64_t base_offset = 0;   // first record's offset; set by the writer
  uint64_t timestamp_us = 0;  // append time of every record; set by the writer
  uint32_t count = 0;         // records in the batch
  uint32_t stored_bytes = 0;  // size in the log (header + data); set by the writer

  std::span<const uint8_t> bytes() const {
    return {reinterpret_cast<const uint8_t*>(storage_.get()), size_};
  }
  /// The records. The bytes were verified before the batch was made.
  const wire::RecordBatch* records() const {
    return flatbuffers::GetRoot<wire::RecordBatch>(bytes().data());
  }
  uint64_t end_offset() const { return base_offset + count; }
  size_t memory_bytes() const { return (size_ + 7) / 8 * 8 + sizeof(batch); }

  /// Copies `data` (a verified RecordBatch) into a new batch.
  static std::shared_ptr<batch> copy_of(uint32_t topic_id, uint32_t count,
                                        std::span<const uint8_t> data) {
    auto b = std::make_shared<batch>();
    b->topic_id = topic_id;
    b->count = count;
    b->size_ = static_cast<uint32_t>(data.size());
    b->storage_.reset(new uint64_t[(data.size() + 7) / 8]);  // no zero-fill: overwritten at once
    if (!data.empty()) std::memcpy(b->storage_.get(), data.data(), data.size());
    return b;
  }

 private:
  std::unique_ptr<uint64_t[]> storage_;  // uint64_t keeps the flatbuffer 8-byte aligned
  uint32_t size_ = 0;
};

using batch_ptr = std::shared_ptr<const batch>;

}  // namespace wharf::storage
