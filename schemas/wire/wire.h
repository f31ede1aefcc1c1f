// wharf_wire: the C++ side of the wire contract in schemas/*.fbs, shared by
// wharfd and the client SDK. Framing (size-prefixed flatbuffers), frame
// verification, stable error-code names, and the small validation rules both
// sides must agree on (names, addresses). Holds no sockets and no threads.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "protocol_generated.h"
#include "record_generated.h"

namespace wharf::wire {

inline constexpr uint32_t kProtocolVersion = 1;
inline constexpr uint32_t kDefaultMaxFrameBytes = 8u << 20;    // 8 MiB
inline constexpr uint32_t kDefaultMaxMessageBytes = 1u << 20;  // 1 MiB
inline constexpr size_t kMaxNameLength = 200;
inline constexpr uint32_t kDefaultMaxInFlight = 1000;

/// Topic and group names: 1-200 characters of [A-Za-z0-9._-].
bool valid_name(std::string_view name);

/// The dead-letter topic of `topic`: "<topic>.dlq".
std::string dead_letter_topic(std::string_view topic);

/// Topic names: a valid name, or the dead-letter topic of one (which may be
/// up to 204 characters), so that every dead-letter topic the broker makes
/// can also be created ahead of time, with its own retention.
bool valid_topic_name(std::string_view name);

/// The stable lower-case name of an error code ("unknown_topic"), or
/// "error_<n>" for a code this build does not know.
std::string error_name(ErrorCode code);

/// Parses "HOST:PORT" (IPv4 or a name, port 0-65535). Returns nullopt when malformed.
struct host_port {
  std::string host;
  uint16_t port = 0;
};
std::optional<host_port> parse_host_port(std::string_view text);

/// Microseconds since the Unix epoch (wall clock).
uint64_t now_us();

/// Milliseconds as microseconds, saturating at UINT64_MAX instead of
/// wrapping (user-supplied durations such as retention_ms may be huge).
constexpr uint64_t ms_to_us(uint64_t ms) { return ms > UINT64_MAX / 1000 ? UINT64_MAX : ms * 1000; }

/// Verifies a complete size-prefixed frame (prefix included) and returns its
/// root, or nullptr when the bytes are not a valid Frame. Nested record
/// batches are verified too. Never reads outside `bytes`.
const Frame* verify_frame(std::span<const uint8_t> bytes);

/// Verifies a stand-alone RecordBatch buffer (no size prefix).
const RecordBatch* verify_record_batch(std::span<const uint8_t> bytes);

/// Stores a complete flatbuffer (a RecordBatch) as a nested [ubyte] vector,
/// 8-byte aligned so the reader can use it in place.
inline flatbuffers::Offset<flatbuffers::Vector<uint8_t>> create_nested(
    flatbuffers::FlatBufferBuilder& fbb, std::span<const uint8_t> bytes) {
  fbb.ForceVectorAlignment(bytes.size(), 1, 8);
  return fbb.CreateVector(bytes.data(), bytes.size());
}

/// Finishes `fbb` as a size-prefixed Frame carrying `body`. The builder then
/// holds the complete frame (GetBufferPointer/GetSize, or Release()).
template <class Body>
void finish_frame(flatbuffers::FlatBufferBuilder& fbb, uint64_t request_id,
                  flatbuffers::Offset<Body> body) {
  auto frame = CreateFrame(fbb, request_id, BodyTraits<Body>::enum_value, body.Union());
  fbb.FinishSizePrefixed(frame, FrameIdentifier());
}

/// Accumulates bytes read from a stream and cuts them into frames.
///
/// Usage per read: `prepare()` gives writable space, `commit(n)` records what
/// the socket wrote there, then call `next()` until it stops returning
/// `ready`, calling `consume()` after handling each frame. A returned frame
/// (size prefix included) stays valid until `consume()` or `prepare()`, and
/// always starts 8-byte aligned so flatbuffers accessors read aligned data.
/// Memory: grows to hold one frame at most (bounded by max_frame_bytes).
class frame_reader {
 public:
  enum class status { need_more, ready, too_large };

  explicit frame_reader(uint32_t max_frame_bytes) : max_frame_bytes_(max_frame_bytes) {}

  std::span<uint8_t> prepare(size_t min_space = 64 * 1024);
  void commit(size_t n) { end_ += n; }

  /// Looks for the next complete frame. `too_large` means the announced
  /// length exceeds max_frame_bytes (the stream cannot be resynchronised).
  status next(std::span<const uint8_t>& frame);
  void consume();

  size_t buffered() const { return end_ - begin_; }
  /// Changes the limit (e.g. once the peer announces its own).
  void set_max_frame_bytes(uint32_t n) { max_frame_bytes_ = n; }
  uint32_t announced_length() const;  // length of the frame being assembled (0 if unknown)

 private:
  void compact();

  uint32_t max_frame_bytes_;
  std::vector<uint64_t> storage_;  // uint64_t elements keep the start 8-byte aligned
  size_t begin_ = 0;               // first unconsumed byte
  size_t end_ = 0;                 // one past the last received byte
  size_t pending_ = 0;             // size of the frame returned by next(), 0 if none

  uint8_t* data() { return reinterpret_cast<uint8_t*>(storage_.data()); }
  size_t capacity() const { return storage_.size() * sizeof(uint64_t); }
};

}  // namespace wharf::wire
