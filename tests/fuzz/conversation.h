// conversation: how protocol_fuzzer turns one input into one TCP connection
// to a broker. Shared by the fuzzer (an in-process broker) and the ctest
// replay of seeds and regressions (a real wharfd), so a finding reproduces
// the same way in both.
//
// An input is a flags byte followed by the bytes to send:
//   bit 0  kHello: send a valid Hello{protocol_version 1} first, so the rest
//          reaches dispatch (without it the input's first frame is the
//          handshake)
//   bit 1  kInteractive: send the input frame by frame and wait for the answer
//          to each request that has one and a request_id, before sending the
//          next, so work the broker finishes later (writer commits, group
//          joins, deliveries) happens while the connection is open. In Ack,
//          Nack, Credit and Unsubscribe frames a subscription_id k (1..n)
//          becomes the id of the k-th subscription opened on this
//          connection, and in Ack, Nack and Unsubscribe.held an offset k
//          below the number of records delivered so far becomes the offset
//          of the k-th record delivered (ids and offsets are broker-wide, so
//          an input could not name them otherwise)
//   bit 2  kDribble: bytes go out in pieces of 1 + (flags >> 4) bytes
//   bit 3  kReset: end with a TCP reset (close with SO_LINGER 0) right after
//          the last byte, while the broker may still be writing or
//          committing for the connection
// Otherwise the write side is shut down and everything the broker sends is
// read until it closes the connection.
//
// Findings (the broker is wrong, not the input): a frame from the broker that
// fails the Verifier; a broker that neither answers nor closes the connection
// within the close timeout (a hang: a request left unanswered, or a
// connection never closed after the client's EOF); in interactive mode, an
// answer to a request_id asked fewer times (a request answered twice, or an
// answer to a frame kind that gets none).
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "wire.h"

namespace wharf::fuzz {

inline constexpr uint8_t kHello = 1;
inline constexpr uint8_t kInteractive = 2;
inline constexpr uint8_t kDribble = 4;
inline constexpr uint8_t kReset = 8;

/// wharfd flags (besides --listen, --data-dir and --log-level) of the broker
/// inputs are played against. Small limits so that inputs of a few KiB reach
/// the too_large paths, a small tail cache so deliveries also read LMDB, short
/// timeouts so stalls end quickly.
std::vector<std::string> broker_flags();
inline constexpr uint32_t kMaxMessageBytes = 1024;  // --max-message-bytes above

/// Regression inputs are kept in tests/fuzz/regressions/ as hex text: pairs
/// of hex digits, whitespace ignored, '#' starts a comment to the end of the
/// line. Returns nullopt when `text` is not that.
std::optional<std::vector<uint8_t>> parse_hex(std::string_view text);

/// One frame the broker sent, decoded.
struct received {
  wire::Body kind = wire::Body::NONE;
  uint64_t request_id = 0;
  wire::ErrorCode error = wire::ErrorCode::none;  // Error and SubscriptionEnded frames
};

struct outcome {
  bool connected = false;        // false: nothing listens on the port
  std::string finding;           // empty unless the broker misbehaved
  std::vector<received> frames;  // everything the broker sent, in order
  size_t delivered_records = 0;  // records in Deliver frames
};

/// Plays `input` (flags byte + bytes) on a new connection to 127.0.0.1:port.
/// Returns once the broker has closed the connection, or with a finding once
/// `close_timeout` has passed since the connection was opened.
outcome play(uint16_t port, std::span<const uint8_t> input,
             std::chrono::milliseconds close_timeout);

}  // namespace wharf::fuzz
