// buffer_pool: a flatbuffers::Allocator that keeps freed large blocks for
// reuse. Publish batches are built in 64 KiB - 8 MiB buffers many times a
// second; fresh mmap'd blocks page-fault on every use, reused ones do not.
// Blocks are power-of-two sized; at most kMaxPooledBytes are kept. Thread
// safe (producers allocate, the I/O thread frees). Process-wide and never
// destroyed, so DetachedBuffers may outlive any client.
#pragma once

#include <flatbuffers/flatbuffers.h>

#include <bit>
#include <cstdint>
#include <mutex>
#include <vector>

namespace wharf::detail {

class buffer_pool final : public flatbuffers::Allocator {
 public:
  static constexpr size_t kMinPooled = 64 * 1024;
  static constexpr size_t kMaxPooledBytes = 64u << 20;

  static buffer_pool& instance() {
    static auto* pool = new buffer_pool();  // intentionally leaked
    return *pool;
  }

  uint8_t* allocate(size_t size) override {
    if (size < kMinPooled) return new uint8_t[size];
    size_t cls = std::bit_ceil(size);
    {
      std::lock_guard lk(mu_);
      auto& list = free_[std::countr_zero(cls)];
      if (!list.empty()) {
        uint8_t* p = list.back();
        list.pop_back();
        pooled_ -= cls;
        return p;
      }
    }
    return new uint8_t[cls];
  }

  void deallocate(uint8_t* p, size_t size) override {
    if (size < kMinPooled) {
      delete[] p;
      return;
    }
    size_t cls = std::bit_ceil(size);
    {
      std::lock_guard lk(mu_);
      if (pooled_ + cls <= kMaxPooledBytes) {
        free_[std::countr_zero(cls)].push_back(p);
        pooled_ += cls;
        return;
      }
    }
    delete[] p;
  }

 private:
  buffer_pool() = default;
  std::mutex mu_;
  std::vector<uint8_t*> free_[64];
  size_t pooled_ = 0;
};

}  // namespace wharf::detail
