// lmdb_pages: does an LMDB data file hold every page its newest meta page
// reaches?
//
// After a kill -9 a data file can legitimately end before the last page its
// meta page counts (a transaction does not write pages it allocated and
// freed again; those pages are free). A file cut short by other means (a
// partial copy) has lost pages in use, and LMDB cannot tell: it maps the
// file, so reading a missing page faults with SIGBUS, and it asserts on a
// page that is not what it expects. This check walks the trees itself with
// pread, following only what is in use (branch, leaf and overflow pages of
// the free-page database, the main database and every named database).
//
// Written against LMDB's on-disk format for 64-bit builds (0.9.x; unchanged
// since 2014 and the one Debian's liblmdb0 writes).
#pragma once

#include <cstdint>
#include <string>

namespace wharf::storage {

/// Empty when every page in use lies within the first `file_size` bytes of
/// the file open as `fd`; otherwise what is missing or malformed.
std::string lmdb_missing_pages(int fd, uint64_t file_size, unsigned page_size);

}  // namespace wharf::storage
