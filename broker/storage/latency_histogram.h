// latency_histogram: fixed buckets of durations, recorded on one thread and
// read on another without locks.
//
// The group-commit writer observes each commit (fsync included) on its
// thread; /metrics reads a snapshot on the loop thread. Each bucket is its own
// relaxed atomic, so a snapshot taken during an observe() may count that one
// commit in the total but not yet in its bucket (or the reverse); Prometheus
// tolerates that, and nothing else depends on exact agreement.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>

namespace wharf::storage {

class latency_histogram {
 public:
  /// Upper bounds of the buckets in microseconds (Prometheus "le"), from
  /// 100 us (an fsync-free commit) to 10 s (a disk in trouble).
  static constexpr std::array<uint64_t, 16> kBoundsUs = {
      100,   250,    500,    1000,   2500,    5000,    10000,   25000,
      50000, 100000, 250000, 500000, 1000000, 2500000, 5000000, 10000000};

  struct snapshot {
    std::array<uint64_t, kBoundsUs.size()> cumulative{};  // observations <= each bound
    uint64_t count = 0;                                   // all observations (the +Inf bucket)
    uint64_t sum_us = 0;
  };

  void observe(uint64_t us) {
    size_t i = 0;
    while (i < kBoundsUs.size() && us > kBoundsUs[i]) ++i;
    buckets_[i].fetch_add(1, std::memory_order_relaxed);
    sum_us_.fetch_add(us, std::memory_order_relaxed);
  }

  snapshot read() const {
    snapshot s;
    uint64_t running = 0;
    for (size_t i = 0; i < kBoundsUs.size(); ++i) {
      running += buckets_[i].load(std::memory_order_relaxed);
      s.cumulative[i] = running;
    }
    s.count = running + buckets_[kBoundsUs.size()].load(std::memory_order_relaxed);
    s.sum_us = sum_us_.load(std::memory_order_relaxed);
    return s;
  }

 private:
  std::array<std::atomic<uint64_t>, kBoundsUs.size() + 1> buckets_{};  // last: above every bound
  std::atomic<uint64_t> sum_us_{0};
};

}  // namespace wharf::storage
