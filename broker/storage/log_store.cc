#include "log_store.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "crc32c.h"
#include "lmdb_pages.h"
#include "log.h"
#include "store_generated.h"

namespace wharf::storage {

// ---------------------------------------------------------------------------
// Errors and encodings
// ---------------------------------------------------------------------------

const char* to_string(store_error e) {
  switch (e) {
    case store_error::ok: return "ok";
    case store_error::map_full: return "LMDB map is full (raise map_size or reduce retention)";
    case store_error::disk_full: return "disk is full";
    case store_error::io_error: return "storage I/O error";
    case store_error::corrupted: return "stored data is corrupted";
    case store_error::not_found: return "not found";
    case store_error::exists: return "already exists";
    case store_error::fatal: return "storage failed and is read-only until restart";
    case store_error::closed: return "broker is shutting down";
  }
  return "unknown storage error";
}

store_error from_mdb(int rc) {
  switch (rc) {
    case MDB_SUCCESS: return store_error::ok;
    case MDB_MAP_FULL: return store_error::map_full;
    case ENOSPC:
    case EDQUOT: return store_error::disk_full;
    case MDB_NOTFOUND: return store_error::not_found;
    case MDB_KEYEXIST: return store_error::exists;
    case MDB_CORRUPTED:
    case MDB_PAGE_NOTFOUND:
    case MDB_INVALID: return store_error::corrupted;
    case MDB_PANIC: return store_error::fatal;
    default: return store_error::io_error;
  }
}

namespace {

using BatchHeader = wharf::store::StoredBatchHeader;
static_assert(sizeof(BatchHeader) == 24, "stored batch header layout changed");

void put_be32(uint8_t* p, uint32_t v) {
  for (int i = 3; i >= 0; --i, v >>= 8) p[i] = static_cast<uint8_t>(v);
}
void put_be64(uint8_t* p, uint64_t v) {
  for (int i = 7; i >= 0; --i, v >>= 8) p[i] = static_cast<uint8_t>(v);
}
uint32_t get_be32(const uint8_t* p) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v = (v << 8) | p[i];
  return v;
}
uint64_t get_be64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | p[i];
  return v;
}

/// Key of a batch in `log`: topic id then base offset, big-endian so LMDB's
/// byte order is (topic, offset) order.
struct log_key {
  uint8_t bytes[12];
  log_key(uint32_t topic_id, uint64_t offset) {
    put_be32(bytes, topic_id);
    put_be64(bytes + 4, offset);
  }
  MDB_val val() { return {sizeof bytes, bytes}; }
};

bool decode_log_key(const MDB_val& k, uint32_t& topic_id, uint64_t& offset) {
  if (k.mv_size != 12) return false;
  auto p = static_cast<const uint8_t*>(k.mv_data);
  topic_id = get_be32(p);
  offset = get_be64(p + 4);
  return true;
}

MDB_val as_val(std::string_view s) { return {s.size(), const_cast<char*>(s.data())}; }

/// Free space below which an I/O error while writing counts as a full disk.
constexpr uint64_t kDiskFullMargin = 1ull << 20;

/// from_mdb() for a failed commit. LMDB reports a write that the file system
/// cut short (it ran out of space part-way) as EIO, not ENOSPC; an I/O error
/// while the data dir's file system has (almost) no space left is therefore a
/// full disk, so publishers get storage_full and the writer lets trims and
/// group progress through.
store_error commit_error(int rc, const std::string& data_dir) {
  store_error e = from_mdb(rc);
  struct statvfs fs;
  if (e == store_error::io_error && ::statvfs(data_dir.c_str(), &fs) == 0 &&
      static_cast<uint64_t>(fs.f_bavail) * fs.f_frsize < kDiskFullMargin) {
    return store_error::disk_full;
  }
  return e;
}

/// After a kill -9 the data file can end before the last page its meta page
/// counts, with only free pages missing (lmdb_pages.h). A file cut short by
/// other means has lost pages in use, which LMDB would read through its map
/// and fault on (SIGBUS). Returns why the store cannot be used, or empty.
std::string check_short_data_file(MDB_env* env) {
  MDB_envinfo info;
  MDB_stat st;
  mdb_filehandle_t fd;
  struct stat file;
  if (mdb_env_info(env, &info) != 0 || mdb_env_stat(env, &st) != 0 ||
      mdb_env_get_fd(env, &fd) != 0 || ::fstat(fd, &file) != 0) {
    return {};  // nothing to compare with; LMDB reports what it can
  }
  const uint64_t size = static_cast<uint64_t>(file.st_size);
  const uint64_t counted = (static_cast<uint64_t>(info.me_last_pgno) + 1) * st.ms_psize;
  if (size >= counted) return {};
  std::string why = lmdb_missing_pages(fd, size, st.ms_psize);
  if (why.empty()) {
    log_info("data.mdb is %lu bytes, its meta page counts %lu: only free pages are missing (a crash "
             "left them unwritten); every page in use is there",
             size, counted);
    return {};
  }
  return "data.mdb is truncated: " + std::to_string(size) + " bytes, its meta page counts " +
         std::to_string(counted) + ", and " + why + " (the store is corrupted)";
}

/// Copies a value out of the map into 8-byte-aligned memory so flatbuffers
/// accessors never read unaligned.
std::vector<uint64_t> aligned_copy(const MDB_val& v) {
  std::vector<uint64_t> out(v.mv_size / 8 + 1);
  if (v.mv_size) std::memcpy(out.data(), v.mv_data, v.mv_size);
  return out;
}

/// RAII cursor.
struct cursor {
  MDB_cursor* c = nullptr;
  int rc;
  cursor(MDB_txn* t, MDB_dbi dbi) { rc = mdb_cursor_open(t, dbi, &c); }
  ~cursor() {
    if (c) mdb_cursor_close(c);
  }
  int get(MDB_val& k, MDB_val& v, MDB_cursor_op op) { return mdb_cursor_get(c, &k, &v, op); }
};

}  // namespace

// ---------------------------------------------------------------------------
// log_store
// ---------------------------------------------------------------------------

std::unique_ptr<log_store> log_store::open(const store_options& options, std::string& error) {
  std::unique_ptr<log_store> s(new log_store());
  s->options_ = options;
  const std::string& dir = options.data_dir;

  std::error_code fs_ec;
  std::filesystem::create_directories(dir, fs_ec);
  if (fs_ec) {
    error = "cannot create data dir " + dir + ": " + fs_ec.message();
    return nullptr;
  }
  std::string lock_path = dir + "/wharfd.lock";
  s->lock_fd_ = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (s->lock_fd_ < 0) {
    error = "data dir " + dir + " is not writable: " + std::strerror(errno);
    return nullptr;
  }
  if (flock(s->lock_fd_, LOCK_EX | LOCK_NB) != 0) {
    error = errno == EWOULDBLOCK ? "data dir " + dir + " is in use by another wharfd"
                                 : "cannot lock data dir " + dir + ": " + std::strerror(errno);
    return nullptr;
  }
  if (::access(dir.c_str(), W_OK) != 0) {
    error = "data dir " + dir + " is not writable: " + std::strerror(errno);
    return nullptr;
  }
  std::string pid = std::to_string(getpid()) + "\n";
  if (ftruncate(s->lock_fd_, 0) == 0) {
    [[maybe_unused]] auto n = pwrite(s->lock_fd_, pid.data(), pid.size(), 0);
  }

  int rc = mdb_env_create(&s->env_);
  if (rc == 0) rc = mdb_env_set_maxdbs(s->env_, 8);
  if (rc == 0) rc = mdb_env_set_mapsize(s->env_, options.map_size);
  if (rc == 0) rc = mdb_env_set_maxreaders(s->env_, 126);
  unsigned flags = MDB_NOTLS;
  // always: the meta page is made durable by the writer (next commit's
  // fdatasync or an explicit sync) before anything is acknowledged.
  flags |= options.fsync == fsync_policy::always ? MDB_NOMETASYNC : MDB_NOSYNC;
  if (rc == 0) rc = mdb_env_open(s->env_, dir.c_str(), flags, 0644);
  if (rc != 0) {
    error = "cannot open LMDB environment in " + dir + ": " + mdb_strerror(rc);
    return nullptr;
  }
  if (auto why = check_short_data_file(s->env_); !why.empty()) {
    error = "cannot open LMDB environment in " + dir + ": " + why;
    return nullptr;
  }

  MDB_txn* t = nullptr;
  rc = mdb_txn_begin(s->env_, nullptr, 0, &t);
  if (rc == 0) rc = mdb_dbi_open(t, "meta", MDB_CREATE, &s->meta_);
  if (rc == 0) rc = mdb_dbi_open(t, "topics", MDB_CREATE, &s->topics_);
  if (rc == 0) rc = mdb_dbi_open(t, "topic_state", MDB_CREATE, &s->topic_state_);
  if (rc == 0) rc = mdb_dbi_open(t, "log", MDB_CREATE, &s->log_);
  if (rc == 0) rc = mdb_dbi_open(t, "groups", MDB_CREATE, &s->groups_);
  if (rc == 0) {
    MDB_val k = as_val("format_version"), v;
    int g = mdb_get(t, s->meta_, &k, &v);
    if (g == MDB_NOTFOUND) {
      uint32_t version = kFormatVersion;
      v = {sizeof version, &version};
      rc = mdb_put(t, s->meta_, &k, &v, 0);
    } else if (g == 0) {
      uint32_t version = 0;
      if (v.mv_size == sizeof version) std::memcpy(&version, v.mv_data, sizeof version);
      if (version != kFormatVersion) {
        mdb_txn_abort(t);
        error = "data dir " + dir + " has storage format " + std::to_string(version) +
                ", this wharfd reads format " + std::to_string(kFormatVersion);
        return nullptr;
      }
    } else {
      rc = g;
    }
  }
  if (rc == 0) {
    rc = mdb_txn_commit(t);
  } else if (t) {
    mdb_txn_abort(t);
  }
  if (rc != 0) {
    error = "cannot initialise LMDB environment in " + dir + ": " + mdb_strerror(rc);
    return nullptr;
  }
  return s;
}

log_store::~log_store() {
  if (env_) mdb_env_close(env_);
  if (lock_fd_ >= 0) ::close(lock_fd_);  // releases the flock
}

txn log_store::begin_read() {
  MDB_txn* t = nullptr;
  if (mdb_txn_begin(env_, nullptr, MDB_RDONLY, &t) != 0) t = nullptr;
  return txn(this, t);
}

txn log_store::begin_write() {
  MDB_txn* t = nullptr;
  if (mdb_txn_begin(env_, nullptr, 0, &t) != 0) t = nullptr;
  return txn(this, t);
}

store_error log_store::sync() { return from_mdb(mdb_env_sync(env_, 1)); }

store_usage log_store::usage() const {
  MDB_envinfo info;
  MDB_stat st;
  store_usage u;
  if (mdb_env_info(env_, &info) == 0 && mdb_env_stat(env_, &st) == 0) {
    u.map_size = info.me_mapsize;
    u.used_bytes = (static_cast<uint64_t>(info.me_last_pgno) + 1) * st.ms_psize;
  }
  return u;
}

// ---------------------------------------------------------------------------
// txn
// ---------------------------------------------------------------------------

store_error txn::commit() {
  if (!txn_) return store_error::io_error;
  int rc = mdb_txn_commit(txn_);  // frees the txn whatever the outcome
  txn_ = nullptr;
  return rc == MDB_SUCCESS ? store_error::ok : commit_error(rc, store_->options_.data_dir);
}

void txn::abort() {
  if (txn_) mdb_txn_abort(txn_);
  txn_ = nullptr;
}

std::vector<std::pair<topic_config, topic_state>> txn::load_topics() {
  std::vector<std::pair<topic_config, topic_state>> out;
  cursor c(txn_, store_->topics_);
  MDB_val k, v;
  for (int rc = c.get(k, v, MDB_FIRST); rc == 0; rc = c.get(k, v, MDB_NEXT)) {
    auto buf = aligned_copy(v);
    auto bytes = reinterpret_cast<const uint8_t*>(buf.data());
    flatbuffers::Verifier verifier(bytes, v.mv_size);
    if (!verifier.VerifyBuffer<wharf::store::TopicMeta>(nullptr)) continue;
    auto meta = flatbuffers::GetRoot<wharf::store::TopicMeta>(bytes);
    topic_config cfg{meta->id(), meta->name()->str(), meta->created_us(), meta->retention_ms(),
                     meta->retention_bytes()};
    topic_state st;
    uint8_t id_key[4];
    put_be32(id_key, cfg.id);
    MDB_val sk{4, id_key}, sv;
    if (mdb_get(txn_, store_->topic_state_, &sk, &sv) == 0 &&
        sv.mv_size == sizeof(wharf::store::TopicState)) {
      wharf::store::TopicState s;
      std::memcpy(&s, sv.mv_data, sizeof s);
      st = {s.first_offset(), s.next_offset(), s.bytes(), s.last_timestamp_us()};
    }
    out.emplace_back(std::move(cfg), st);
  }
  return out;
}

std::optional<stored_batch> txn::decode_batch(const MDB_val& k, const MDB_val& v) {
  uint32_t topic_id;
  uint64_t base;
  if (!decode_log_key(k, topic_id, base) || v.mv_size < sizeof(BatchHeader)) return {};
  BatchHeader h;
  std::memcpy(&h, v.mv_data, sizeof h);
  if (h.magic() != kBatchMagic || h.data_len() != v.mv_size - sizeof h) return {};
  stored_batch b;
  b.base_offset = base;
  b.count = h.count();
  b.timestamp_us = h.timestamp_us();
  b.crc = h.data_crc();
  b.data = {static_cast<const uint8_t*>(v.mv_data) + sizeof h, h.data_len()};
  b.stored_bytes = v.mv_size;
  return b;
}

std::optional<stored_batch> txn::batch_at(uint32_t topic_id, uint64_t offset) {
  cursor c(txn_, store_->log_);
  log_key key(topic_id, offset);
  MDB_val k = key.val(), v;
  int rc = c.get(k, v, MDB_SET_RANGE);
  uint32_t tid;
  uint64_t base;
  if (rc == 0 && decode_log_key(k, tid, base) && tid == topic_id && base == offset) {
    return decode_batch(k, v);
  }
  // Not an exact hit: the batch before may contain `offset`.
  MDB_val pk, pv;
  int prc = rc == 0 ? c.get(pk, pv, MDB_PREV) : c.get(pk, pv, MDB_LAST);
  if (prc == 0 && decode_log_key(pk, tid, base) && tid == topic_id && base <= offset) {
    auto b = decode_batch(pk, pv);
    if (b && offset < base + b->count) return b;
  }
  // Otherwise the first batch after `offset`, if the topic has one.
  if (rc == 0 && decode_log_key(k, tid, base) && tid == topic_id) return decode_batch(k, v);
  return {};
}

uint64_t txn::offset_for_time(uint32_t topic_id, const topic_state& state, uint64_t timestamp_us) {
  // Timestamps never decrease within a topic, so "batch appended at or after
  // t" is monotone in the offset: binary search over offsets.
  uint64_t lo = state.first_offset, hi = state.next_offset;
  while (lo < hi) {
    uint64_t mid = lo + (hi - lo) / 2;
    auto b = batch_at(topic_id, mid);
    if (!b) {
      hi = mid;
    } else if (b->timestamp_us >= timestamp_us) {
      hi = std::min(mid, b->base_offset);
      if (hi < lo) hi = lo;
    } else {
      lo = b->base_offset + b->count;
    }
  }
  return lo;
}

std::vector<uint32_t> txn::log_topic_ids() {
  std::vector<uint32_t> ids;
  cursor c(txn_, store_->log_);
  uint64_t next_id = 0;
  while (next_id <= UINT32_MAX) {
    log_key key(static_cast<uint32_t>(next_id), 0);
    MDB_val k = key.val(), v;
    uint32_t tid;
    uint64_t base;
    if (c.get(k, v, MDB_SET_RANGE) != 0 || !decode_log_key(k, tid, base)) break;
    ids.push_back(tid);
    next_id = uint64_t{tid} + 1;
  }
  return ids;
}

std::vector<std::pair<std::string, std::vector<uint8_t>>> txn::load_groups(uint32_t topic_id) {
  std::vector<std::pair<std::string, std::vector<uint8_t>>> out;
  cursor c(txn_, store_->groups_);
  uint8_t prefix[4];
  put_be32(prefix, topic_id);
  MDB_val k{4, prefix}, v;
  for (int rc = c.get(k, v, MDB_SET_RANGE); rc == 0; rc = c.get(k, v, MDB_NEXT)) {
    if (k.mv_size < 4 || std::memcmp(k.mv_data, prefix, 4) != 0) break;
    std::string name(static_cast<const char*>(k.mv_data) + 4, k.mv_size - 4);
    auto p = static_cast<const uint8_t*>(v.mv_data);
    out.emplace_back(std::move(name), std::vector<uint8_t>(p, p + v.mv_size));
  }
  return out;
}

uint32_t txn::next_topic_id() {
  MDB_val k = as_val("next_topic_id"), v;
  uint32_t id = 1;
  if (mdb_get(txn_, store_->meta_, &k, &v) == 0 && v.mv_size == sizeof id) {
    std::memcpy(&id, v.mv_data, sizeof id);
  }
  return id;
}

store_error txn::set_next_topic_id(uint32_t id) {
  MDB_val k = as_val("next_topic_id"), v{sizeof id, &id};
  return from_mdb(mdb_put(txn_, store_->meta_, &k, &v, 0));
}

store_error txn::put_batch(uint32_t topic_id, uint64_t base_offset, uint32_t count,
                           uint64_t timestamp_us, std::span<const uint8_t> data) {
  if (!room_for_append(sizeof(BatchHeader) + data.size())) return store_error::map_full;
  log_key key(topic_id, base_offset);
  MDB_val k = key.val();
  MDB_val v{sizeof(BatchHeader) + data.size(), nullptr};
  int rc = mdb_put(txn_, store_->log_, &k, &v, MDB_RESERVE | MDB_NOOVERWRITE);
  if (rc != 0) return from_mdb(rc);
  BatchHeader h(kBatchMagic, count, timestamp_us, static_cast<uint32_t>(data.size()),
                crc32c(data.data(), data.size()));
  std::memcpy(v.mv_data, &h, sizeof h);
  std::memcpy(static_cast<uint8_t*>(v.mv_data) + sizeof h, data.data(), data.size());
  return store_error::ok;
}

bool txn::room_for_append(size_t bytes) {
  MDB_envinfo info;
  MDB_stat st;
  if (mdb_env_info(store_->env_, &info) != 0 || mdb_env_stat(store_->env_, &st) != 0) return true;
  const uint64_t page = st.ms_psize;
  const uint64_t map_pages = info.me_mapsize / page;
  const uint64_t reserve =
      std::clamp<uint64_t>(map_pages / 32, (128u << 10) / page, (64u << 20) / page);
  // Pages this transaction needs: a large value takes whole pages of its own
  // (LMDB overflow pages), small ones share leaf pages (counted half full),
  // plus a few copied branch and leaf pages.
  const uint64_t overflow = bytes > page / 2 ? (bytes + page - 1) / page : 0;
  const uint64_t small = overflow ? 0 : bytes + 16;
  const uint64_t pages =
      appended_overflow_pages_ + overflow + 2 * (appended_small_bytes_ + small) / page + 8;
  // Committed pages up to the highest in use, minus those LMDB can reuse.
  uint64_t in_use = static_cast<uint64_t>(info.me_last_pgno) + 1;
  if (in_use + pages + reserve > map_pages) {
    if (!free_pages_) free_pages_ = free_pages();
    in_use -= std::min(in_use, *free_pages_);
    if (in_use + pages + reserve > map_pages) return false;
  }
  appended_overflow_pages_ += overflow;
  appended_small_bytes_ += small;
  return true;
}

// The free list is LMDB's database 0: one record per freeing transaction,
// each an array of page numbers led by their count. LMDB lets only read
// transactions open a cursor on it; one opened now sees the free list as the
// last commit left it, which is what this write transaction started from.
uint64_t txn::free_pages() {
  MDB_txn* r = nullptr;
  if (mdb_txn_begin(store_->env_, nullptr, MDB_RDONLY, &r) != 0) return 0;
  uint64_t n = 0;
  MDB_cursor* c = nullptr;
  if (mdb_cursor_open(r, 0, &c) == 0) {
    MDB_val k, v;
    for (int rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
      size_t count = 0;
      if (v.mv_size >= sizeof count) std::memcpy(&count, v.mv_data, sizeof count);
      n += count;
    }
    mdb_cursor_close(c);
  }
  mdb_txn_abort(r);
  return n;
}

store_error txn::put_topic(const topic_config& config) {
  flatbuffers::FlatBufferBuilder fbb(256);
  auto name = fbb.CreateString(config.name);
  fbb.Finish(wharf::store::CreateTopicMeta(fbb, config.id, name, config.created_us,
                                           config.retention_ms, config.retention_bytes));
  MDB_val k = as_val(config.name), v{fbb.GetSize(), fbb.GetBufferPointer()};
  return from_mdb(mdb_put(txn_, store_->topics_, &k, &v, 0));
}

store_error txn::put_topic_state(uint32_t topic_id, const topic_state& st) {
  uint8_t id_key[4];
  put_be32(id_key, topic_id);
  wharf::store::TopicState s(st.first_offset, st.next_offset, st.bytes, st.last_timestamp_us);
  MDB_val k{4, id_key}, v{sizeof s, &s};
  return from_mdb(mdb_put(txn_, store_->topic_state_, &k, &v, 0));
}

store_error txn::delete_topic(const topic_config& config) {
  MDB_val k = as_val(config.name);
  int rc = mdb_del(txn_, store_->topics_, &k, nullptr);
  if (rc != 0 && rc != MDB_NOTFOUND) return from_mdb(rc);
  uint8_t id_key[4];
  put_be32(id_key, config.id);
  MDB_val sk{4, id_key};
  rc = mdb_del(txn_, store_->topic_state_, &sk, nullptr);
  if (rc != 0 && rc != MDB_NOTFOUND) return from_mdb(rc);
  // The topic's groups go with it.
  cursor c(txn_, store_->groups_);
  MDB_val gk{4, id_key}, gv;
  for (rc = c.get(gk, gv, MDB_SET_RANGE); rc == 0; rc = c.get(gk, gv, MDB_SET_RANGE)) {
    if (gk.mv_size < 4 || std::memcmp(gk.mv_data, id_key, 4) != 0) break;
    if ((rc = mdb_cursor_del(c.c, 0)) != 0) return from_mdb(rc);
    gk = {4, id_key};
  }
  return store_error::ok;
}

store_error txn::trim(uint32_t topic_id, topic_state& state, uint64_t keep_after_us,
                      uint64_t max_bytes, size_t max_batches, size_t& removed, bool& more) {
  removed = 0;
  more = false;
  cursor c(txn_, store_->log_);
  while (true) {
    log_key key(topic_id, 0);
    MDB_val k = key.val(), v;
    int rc = c.get(k, v, MDB_SET_RANGE);
    if (rc == MDB_NOTFOUND) break;
    if (rc != 0) return from_mdb(rc);
    auto b = decode_batch(k, v);
    uint32_t tid;
    uint64_t base;
    if (!decode_log_key(k, tid, base) || tid != topic_id) break;
    if (!b) return store_error::corrupted;
    bool newest = b->base_offset + b->count >= state.next_offset;
    bool too_old = keep_after_us != 0 && b->timestamp_us < keep_after_us;
    bool too_big = max_bytes != 0 && state.bytes > max_bytes && !newest;
    if (!too_old && !too_big) break;
    if (removed == max_batches) {
      more = true;
      break;
    }
    size_t stored = b->stored_bytes;
    uint64_t end = b->base_offset + b->count;
    if ((rc = mdb_cursor_del(c.c, 0)) != 0) return from_mdb(rc);
    state.bytes -= std::min<uint64_t>(state.bytes, stored);
    state.first_offset = end;
    ++removed;
  }
  return store_error::ok;
}

store_error txn::purge_log(uint32_t topic_id, size_t max_batches, bool& done) {
  done = false;
  cursor c(txn_, store_->log_);
  for (size_t n = 0; n < max_batches; ++n) {
    log_key key(topic_id, 0);
    MDB_val k = key.val(), v;
    int rc = c.get(k, v, MDB_SET_RANGE);
    uint32_t tid;
    uint64_t base;
    if (rc == MDB_NOTFOUND || (rc == 0 && (!decode_log_key(k, tid, base) || tid != topic_id))) {
      done = true;
      return store_error::ok;
    }
    if (rc != 0) return from_mdb(rc);
    if ((rc = mdb_cursor_del(c.c, 0)) != 0) return from_mdb(rc);
  }
  return store_error::ok;
}

store_error txn::put_group(uint32_t topic_id, std::string_view group,
                           std::span<const uint8_t> value) {
  std::string key(4, '\0');
  put_be32(reinterpret_cast<uint8_t*>(key.data()), topic_id);
  key.append(group);
  MDB_val k = as_val(key), v{value.size(), const_cast<uint8_t*>(value.data())};
  return from_mdb(mdb_put(txn_, store_->groups_, &k, &v, 0));
}

store_error txn::delete_group(uint32_t topic_id, std::string_view group) {
  std::string key(4, '\0');
  put_be32(reinterpret_cast<uint8_t*>(key.data()), topic_id);
  key.append(group);
  MDB_val k = as_val(key);
  int rc = mdb_del(txn_, store_->groups_, &k, nullptr);
  return rc == MDB_NOTFOUND ? store_error::ok : from_mdb(rc);
}

}  // namespace wharf::storage
