// Helpers of the abuse and storage-fault tests (abuse_test.cc,
// storage_faults_test.cc): the broker's memory as the kernel sees it, the
// test process's file descriptor limit, a small tmpfs for disk-full and
// read-only cases, the broker's connection count, and its error lines.
//
// Like integration_support.h, nothing here sleeps to synchronise: the memory
// sampler measures at a fixed interval (there is no event for "memory
// changed"), and every wait has a bound.
#pragma once

#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/types.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <thread>

#include "integration_support.h"

namespace wharf::test {

/// Anonymous resident memory of `pid` in bytes (RssAnon in
/// /proc/<pid>/status): heap and stacks, without LMDB's file-backed map,
/// whose pages count in VmRSS as soon as they are read and say nothing about
/// what the broker buffers. nullopt if the process is gone.
inline std::optional<uint64_t> rss_anon_bytes(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind("RssAnon:", 0) == 0) {
      std::istringstream is(line.substr(8));
      uint64_t kb = 0;
      if (is >> kb) return kb * 1024;
    }
  }
  return std::nullopt;
}

/// Samples a process's anonymous RSS every `interval` on its own thread and
/// keeps the peak, until stopped (or destroyed).
class memory_watch {
 public:
  explicit memory_watch(pid_t pid,
                        std::chrono::milliseconds interval = std::chrono::milliseconds(20))
      : pid_(pid), interval_(interval) {
    sample();
    thread_ = std::thread([this] {
      std::unique_lock lk(mu_);
      while (!stop_) {
        lk.unlock();
        sample();
        lk.lock();
        cv_.wait_for(lk, interval_, [&] { return stop_; });
      }
    });
  }
  ~memory_watch() { stop(); }
  memory_watch(const memory_watch&) = delete;
  memory_watch& operator=(const memory_watch&) = delete;

  void stop() {
    {
      std::lock_guard lk(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
  }
  uint64_t peak() const { return peak_.load(); }
  uint64_t first() const { return first_.load(); }
  size_t samples() const { return samples_.load(); }

 private:
  void sample() {
    if (auto v = rss_anon_bytes(pid_)) {
      if (samples_++ == 0) first_ = *v;
      uint64_t p = peak_.load();
      while (*v > p && !peak_.compare_exchange_weak(p, *v)) {
      }
    }
  }

  pid_t pid_;
  std::chrono::milliseconds interval_;
  std::atomic<uint64_t> peak_{0}, first_{0};
  std::atomic<size_t> samples_{0};
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread thread_;
};

constexpr uint64_t kMiB = 1ull << 20;

/// Whether the broker's memory can be held to a bound: not under
/// AddressSanitizer (tools/run-tests --sanitize), whose quarantine keeps up
/// to 256 MiB of freed memory resident.
#if defined(__SANITIZE_ADDRESS__)
inline constexpr bool kMemoryBoundsApply = false;
#else
inline constexpr bool kMemoryBoundsApply = true;
#endif

/// Raises this process's soft RLIMIT_NOFILE to its hard limit (brokers it
/// starts inherit both); returns the soft limit now in force.
inline uint64_t raise_nofile_limit() {
  rlimit lim{};
  if (getrlimit(RLIMIT_NOFILE, &lim) != 0) return 1024;
  if (lim.rlim_cur < lim.rlim_max) {
    rlimit want = lim;
    want.rlim_cur = lim.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &want) == 0) lim = want;
  }
  return lim.rlim_cur == RLIM_INFINITY ? UINT64_MAX : static_cast<uint64_t>(lim.rlim_cur);
}

/// The hard RLIMIT_NOFILE (what wharfd raises its own soft limit to).
inline uint64_t nofile_hard_limit() {
  rlimit lim{};
  if (getrlimit(RLIMIT_NOFILE, &lim) != 0) return 0;
  return lim.rlim_max == RLIM_INFINITY ? 0 : static_cast<uint64_t>(lim.rlim_max);
}

/// A tmpfs mounted on `dir` (created if needed) with `options` ("size=8m"),
/// unmounted on destruction. Needs CAP_SYS_ADMIN; ok() is false (and
/// error() says why) without it. Declare it before any broker_process that
/// uses it, so the broker is stopped before the unmount.
class tmpfs_mount {
 public:
  tmpfs_mount(std::string dir, const std::string& options) : dir_(std::move(dir)) {
    std::error_code ec;
    std::filesystem::create_directories(dir_, ec);
    if (::mount("tmpfs", dir_.c_str(), "tmpfs", MS_NOSUID | MS_NODEV, options.c_str()) == 0) {
      mounted_ = true;
    } else {
      error_ = "mount -t tmpfs -o " + options + " tmpfs " + dir_ + ": " + std::strerror(errno);
    }
  }
  ~tmpfs_mount() { unmount(); }
  tmpfs_mount(const tmpfs_mount&) = delete;
  tmpfs_mount& operator=(const tmpfs_mount&) = delete;

  bool ok() const { return mounted_; }
  const std::string& error() const { return error_; }
  const std::string& path() const { return dir_; }
  /// Makes the mount read-only, contents kept (even root cannot write then).
  bool remount_read_only() {
    return mounted_ && ::mount("tmpfs", dir_.c_str(), "tmpfs",
                               MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV, nullptr) == 0;
  }
  /// Unmounts (lazily if something still holds it). True when unmounted.
  bool unmount() {
    if (!mounted_) return true;
    if (::umount2(dir_.c_str(), 0) != 0 && ::umount2(dir_.c_str(), MNT_DETACH) != 0) return false;
    mounted_ = false;
    return true;
  }

 private:
  std::string dir_;
  bool mounted_ = false;
  std::string error_;
};

/// Polls the broker's connection count (stats) until it equals `want` or
/// `timeout` passes; there is no event for "the broker finished closing a
/// session". Returns the last count seen.
inline uint32_t wait_connection_count(
    wharf::client& c, uint32_t want, std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  uint32_t last = 0;
  for (int i = 0; i < 1000; ++i) {
    auto s = c.stats();
    if (s) last = s->connections;
    if (last == want || std::chrono::steady_clock::now() >= deadline) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return last;
}

/// Only the lines of a broker log that are not routine INFO/DEBUG lines.
inline std::vector<std::string> error_lines(const std::string& log) {
  std::vector<std::string> out;
  for (auto& l : lines(log)) {
    if (l.find(" INFO ") == std::string::npos && l.find(" DEBUG ") == std::string::npos)
      out.push_back(l);
  }
  return out;
}

}  // namespace wharf::test
