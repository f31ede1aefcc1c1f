#include "wire.h"

#include <algorithm>
#include <chrono>
#include <cstring>

namespace wharf::wire {

bool valid_name(std::string_view name) {
  if (name.empty() || name.size() > kMaxNameLength) return false;
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

std::string dead_letter_topic(std::string_view topic) { return std::string(topic) + ".dlq"; }

bool valid_topic_name(std::string_view name) {
  if (valid_name(name)) return true;
  constexpr std::string_view suffix = ".dlq";
  return name.ends_with(suffix) && valid_name(name.substr(0, name.size() - suffix.size()));
}

std::string error_name(ErrorCode code) {
  if (code >= ErrorCode::MIN && code <= ErrorCode::MAX) return EnumNameErrorCode(code);
  return "error_" + std::to_string(static_cast<unsigned>(code));
}

std::optional<host_port> parse_host_port(std::string_view text) {
  auto colon = text.rfind(':');
  if (colon == std::string_view::npos || colon == 0 || colon + 1 == text.size()) return {};
  auto port_text = text.substr(colon + 1);
  if (port_text.size() > 5) return {};
  unsigned port = 0;
  for (char c : port_text) {
    if (c < '0' || c > '9') return {};
    port = port * 10 + static_cast<unsigned>(c - '0');
  }
  if (port > 65535) return {};
  return host_port{std::string(text.substr(0, colon)), static_cast<uint16_t>(port)};
}

uint64_t now_us() {
  using namespace std::chrono;
  return static_cast<uint64_t>(
      duration_cast<microseconds>(system_clock::now().time_since_epoch()).count());
}

namespace {
flatbuffers::Verifier::Options verifier_options(size_t size) {
  flatbuffers::Verifier::Options o;
  o.max_depth = 32;
  // A table costs at least 4 bytes on the wire, so this never rejects a real
  // frame but bounds the verifier's work on hostile ones.
  o.max_tables = size / 4 + 16;
  o.check_alignment = true;
  return o;
}
}  // namespace

namespace {
/// The generated verifier checks nested batches without their identifier;
/// stored batches are re-verified with it, so require it here too.
bool nested_batch_ok(const flatbuffers::Vector<uint8_t>* v) {
  return v && v->size() >= sizeof(flatbuffers::uoffset_t) + flatbuffers::kFileIdentifierLength &&
         flatbuffers::BufferHasIdentifier(v->data(), RecordBatchIdentifier());
}
}  // namespace

const Frame* verify_frame(std::span<const uint8_t> bytes) {
  if (bytes.size() < 2 * sizeof(flatbuffers::uoffset_t) + flatbuffers::kFileIdentifierLength) {
    return nullptr;
  }
  flatbuffers::Verifier verifier(bytes.data(), bytes.size(), verifier_options(bytes.size()));
  if (!VerifySizePrefixedFrameBuffer(verifier)) return nullptr;
  const Frame* f = GetSizePrefixedFrame(bytes.data());
  if (auto p = f->body_as_Publish(); p && !nested_batch_ok(p->batch())) return nullptr;
  if (auto d = f->body_as_Deliver()) {
    for (auto b : *d->batches()) {
      if (!nested_batch_ok(b->data())) return nullptr;
    }
  }
  return f;
}

const RecordBatch* verify_record_batch(std::span<const uint8_t> bytes) {
  if (bytes.size() < sizeof(flatbuffers::uoffset_t) + flatbuffers::kFileIdentifierLength) {
    return nullptr;
  }
  flatbuffers::Verifier verifier(bytes.data(), bytes.size(), verifier_options(bytes.size()));
  if (!VerifyRecordBatchBuffer(verifier)) return nullptr;
  return GetRecordBatch(bytes.data());
}

std::span<uint8_t> frame_reader::prepare(size_t min_space) {
  pending_ = 0;
  if (begin_ == end_) begin_ = end_ = 0;
  // Make room for the rest of the frame being assembled, if it is announced.
  size_t have = end_ - begin_;
  size_t total = announced_length();
  size_t want = std::max(min_space, total > have ? total - have : 0);
  if (capacity() - end_ < want) {
    compact();
    if (capacity() - end_ < want) {
      size_t needed = end_ + want;
      storage_.resize((needed + sizeof(uint64_t) - 1) / sizeof(uint64_t));
    }
  }
  return {data() + end_, capacity() - end_};
}

uint32_t frame_reader::announced_length() const {
  if (end_ - begin_ < sizeof(uint32_t)) return 0;
  uint32_t len;
  std::memcpy(&len, reinterpret_cast<const uint8_t*>(storage_.data()) + begin_, sizeof len);
  return len <= max_frame_bytes_ ? len + sizeof(uint32_t) : 0;
}

frame_reader::status frame_reader::next(std::span<const uint8_t>& frame) {
  pending_ = 0;
  if (end_ - begin_ < sizeof(uint32_t)) return status::need_more;
  uint32_t len;
  std::memcpy(&len, data() + begin_, sizeof len);
  if (len > max_frame_bytes_) return status::too_large;
  size_t total = size_t{len} + sizeof(uint32_t);
  if (end_ - begin_ < total) return status::need_more;
  if (begin_ % alignof(uint64_t) != 0) compact();  // only a hostile peer misaligns frames
  frame = {data() + begin_, total};
  pending_ = total;
  return status::ready;
}

void frame_reader::consume() {
  begin_ += pending_;
  pending_ = 0;
  if (begin_ == end_) {
    begin_ = end_ = 0;
    // Give back the memory of an unusually large frame once it is handled.
    if (capacity() > (1u << 20)) storage_ = {};
  }
}

void frame_reader::compact() {
  if (begin_ == 0) return;
  std::memmove(data(), data() + begin_, end_ - begin_);
  end_ -= begin_;
  begin_ = 0;
}

}  // namespace wharf::wire
