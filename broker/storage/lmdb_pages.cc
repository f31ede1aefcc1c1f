#include "lmdb_pages.h"

#include <unistd.h>

#include <cstring>
#include <optional>
#include <vector>

namespace wharf::storage {

namespace {

// LMDB's on-disk layout (mdb.c): a 16-byte page header {pgno u64, pad u16,
// flags u16, lower u16, upper u16 | overflow page count u32}, then the node
// offsets (u16 each) of branch and leaf pages.
constexpr size_t kHeaderBytes = 16;
constexpr uint16_t kBranch = 0x01, kLeaf = 0x02, kOverflow = 0x04, kLeaf2 = 0x20;
// A node: {lo u16, hi u16, flags u16, key size u16}, key, data. Branch
// nodes keep the child's page number in lo | hi << 16 | flags << 32.
constexpr size_t kNodeBytes = 8;
constexpr uint16_t kBigData = 0x01, kSubData = 0x02;
// The meta page: {magic u32, version u32, address, map size, free db, main
// db, last page, txn id}, each db {pad u32, flags u16, depth u16, four
// counters, root}.
constexpr uint32_t kMagic = 0xBEEFC0DE;
constexpr size_t kDbBytes = 48, kDbRootAt = 40;
constexpr size_t kMetaFreeDbAt = 24, kMetaMainDbAt = 72, kMetaTxnAt = 128;
constexpr uint64_t kNoRoot = ~0ull;
constexpr int kMaxDepth = 64;

template <typename T>
T load(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

class walker {
 public:
  walker(int fd, uint64_t file_size, unsigned page_size)
      : fd_(fd), pages_(file_size / page_size), psize_(page_size), page_(page_size) {}

  std::string run() {
    // The newer of the two meta pages (higher txn id) is the one LMDB uses.
    std::optional<uint64_t> best_txn;
    uint64_t roots[2] = {kNoRoot, kNoRoot};
    for (uint64_t m = 0; m < 2; ++m) {
      if (!read(m)) return why_;
      const uint8_t* body = page_.data() + kHeaderBytes;
      if (load<uint32_t>(body) != kMagic) continue;
      uint64_t txn = load<uint64_t>(body + kMetaTxnAt);
      if (best_txn && txn <= *best_txn) continue;
      best_txn = txn;
      roots[0] = load<uint64_t>(body + kMetaFreeDbAt + kDbRootAt);
      roots[1] = load<uint64_t>(body + kMetaMainDbAt + kDbRootAt);
    }
    if (!best_txn) return "no valid meta page";
    for (uint64_t root : roots) {
      if (root != kNoRoot && !tree(root, 0)) return why_;
    }
    return {};
  }

 private:
  bool fail(std::string why) {
    why_ = std::move(why);
    return false;
  }

  /// Reads page `pgno` into page_ and checks that its header names it.
  bool read(uint64_t pgno) {
    if (pgno >= pages_) {
      return fail("page " + std::to_string(pgno) + " is in use but the file ends at page " +
                  std::to_string(pages_));
    }
    if (++reads_ > 2 * pages_ + 2)
      return fail("the trees reach more pages than the file has (a loop)");
    auto n = ::pread(fd_, page_.data(), psize_, static_cast<off_t>(pgno * psize_));
    if (n != static_cast<ssize_t>(psize_)) return fail("cannot read page " + std::to_string(pgno));
    if (load<uint64_t>(page_.data()) != pgno) {
      return fail("page " + std::to_string(pgno) + " holds the header of page " +
                  std::to_string(load<uint64_t>(page_.data())));
    }
    return true;
  }

  /// Walks the branch or leaf page `pgno` and everything below it.
  bool tree(uint64_t pgno, int depth) {
    if (depth > kMaxDepth) return fail("a tree is deeper than " + std::to_string(kMaxDepth));
    if (!read(pgno)) return false;
    std::vector<uint8_t> page = page_;  // page_ is reused below
    uint16_t flags = load<uint16_t>(page.data() + 10);
    uint16_t lower = load<uint16_t>(page.data() + 12);
    if (!(flags & (kBranch | kLeaf)))
      return fail("page " + std::to_string(pgno) + " is neither branch nor leaf");
    if (flags & kLeaf2) return true;  // fixed-size keys only, no data
    if (lower < kHeaderBytes || lower > psize_)
      return fail("page " + std::to_string(pgno) + " has a bad header");
    for (size_t i = 0; i < (lower - kHeaderBytes) / 2u; ++i) {
      size_t at = load<uint16_t>(page.data() + kHeaderBytes + 2 * i);
      if (at + kNodeBytes > psize_)
        return fail("page " + std::to_string(pgno) + " has a node past its end");
      const uint8_t* node = page.data() + at;
      uint64_t lo = load<uint16_t>(node), hi = load<uint16_t>(node + 2),
               nflags = load<uint16_t>(node + 4);
      size_t data_at = at + kNodeBytes + load<uint16_t>(node + 6);
      if (flags & kBranch) {
        if (!tree(lo | hi << 16 | nflags << 32, depth + 1)) return false;
      } else if (nflags & kBigData) {
        if (data_at + 8 > psize_ || !overflow(load<uint64_t>(page.data() + data_at))) return false;
      } else if (nflags & kSubData) {  // a named database (or a sorted-duplicates tree)
        if (data_at + kDbBytes > psize_)
          return fail("page " + std::to_string(pgno) + " has a node past its end");
        uint64_t root = load<uint64_t>(page.data() + data_at + kDbRootAt);
        if (root != kNoRoot && !tree(root, depth + 1)) return false;
      }
    }
    return true;
  }

  /// Checks a value's run of overflow pages.
  bool overflow(uint64_t pgno) {
    if (!read(pgno)) return false;
    uint32_t count = load<uint32_t>(page_.data() + 12);
    if (!(load<uint16_t>(page_.data() + 10) & kOverflow) || count == 0) {
      return fail("page " + std::to_string(pgno) + " is not an overflow page");
    }
    if (pgno + count > pages_) {
      return fail("pages " + std::to_string(pgno) + "-" + std::to_string(pgno + count - 1) +
                  " are in use but the file ends at page " + std::to_string(pages_));
    }
    return true;
  }

  int fd_;
  uint64_t pages_;
  size_t psize_;
  std::vector<uint8_t> page_;
  uint64_t reads_ = 0;
  std::string why_;
};

}  // namespace

std::string lmdb_missing_pages(int fd, uint64_t file_size, unsigned page_size) {
  if (page_size < 512) return "bad page size";
  return walker(fd, file_size, page_size).run();
}

}  // namespace wharf::storage
