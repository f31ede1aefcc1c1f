// latency_histogram: log-linear buckets (32 per power of two, so a value is
// known within ~3%), fixed memory, mergeable. Values are unsigned integers
// (microseconds in wharf-bench). Never stores samples.
#pragma once

#include <algorithm>
#include <array>
#include <bit>
#include <cstdint>

namespace wharf::tools {

class latency_histogram {
 public:
  static constexpr int kSubBits = 5;                      // 32 sub-buckets per power of two
  static constexpr int kSub = 1 << kSubBits;
  static constexpr int kLinear = 2 * kSub;                // values below this are exact
  static constexpr int kBuckets = kLinear + (64 - kSubBits - 1) * kSub;

  void add(uint64_t v) {
    ++counts_[index(v)];
    ++count_;
    max_ = std::max(max_, v);
  }
  void merge(const latency_histogram& o) {
    for (int i = 0; i < kBuckets; ++i) counts_[i] += o.counts_[i];
    count_ += o.count_;
    max_ = std::max(max_, o.max_);
  }
  uint64_t count() const { return count_; }
  uint64_t max() const { return max_; }

  /// The value at quantile q (0..1]: the upper edge of the bucket holding it,
  /// capped at the largest value seen.
  uint64_t quantile(double q) const {
    if (count_ == 0) return 0;
    uint64_t rank = static_cast<uint64_t>(q * static_cast<double>(count_));
    if (rank < 1) rank = 1;
    uint64_t seen = 0;
    for (int i = 0; i < kBuckets; ++i) {
      seen += counts_[i];
      if (seen >= rank) return std::min(upper(i), max_);
    }
    return max_;
  }

  static int index(uint64_t v) {
    if (v < static_cast<uint64_t>(kLinear)) return static_cast<int>(v);
    int e = 63 - std::countl_zero(v);  // >= kSubBits + 1
    int m = static_cast<int>((v >> (e - kSubBits)) & (kSub - 1));
    return kLinear + (e - kSubBits - 1) * kSub + m;
  }
  static uint64_t upper(int i) {
    if (i < kLinear) return static_cast<uint64_t>(i);
    int e = (i - kLinear) / kSub + kSubBits + 1;
    uint64_t m = static_cast<uint64_t>((i - kLinear) % kSub);
    uint64_t lower = (uint64_t{kSub} + m) << (e - kSubBits);
    return lower + (uint64_t{1} << (e - kSubBits)) - 1;
  }

 private:
  std::array<uint64_t, kBuckets> counts_{};
  uint64_t count_ = 0;
  uint64_t max_ = 0;
};

}  // namespace wharf::tools
