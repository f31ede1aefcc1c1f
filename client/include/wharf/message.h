// Records: what you publish (wharf::record) and what you receive
// (wharf::message).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace wharf {

/// A record header: a name and opaque bytes.
struct header {
  std::string_view name;
  std::string_view value;
};

/// A record to publish. The views only need to live until publish returns
/// (the SDK copies the bytes into its batch).
struct record {
  std::string_view payload;
  std::optional<std::string_view> key = std::nullopt;  // same key => same order within a group
  std::span<const header> headers = {};
};

namespace detail {
struct delivery;   // the frame a message came in (keeps its bytes alive)
struct sub_state;  // the subscription it belongs to (for ack/nack)
}  // namespace detail

/// A record received from a subscription. Cheap to copy and move; its views
/// stay valid as long as any copy of the message exists. May be acked from
/// any thread.
class message {
 public:
  message() = default;

  const std::string& topic() const;
  uint64_t offset() const { return offset_; }
  uint64_t timestamp_us() const { return timestamp_us_; }  // broker append time
  /// 1 on first delivery; higher when a group redelivers it.
  uint32_t delivery_count() const { return attempt_; }
  std::optional<std::string_view> key() const;
  std::string_view payload() const;
  std::optional<std::string_view> header(std::string_view name) const;
  std::vector<std::pair<std::string_view, std::string_view>> headers() const;

  /// Group subscriptions: the record is finished; it will not be delivered
  /// again. No effect for ephemeral subscriptions or after the first call.
  void ack() const;
  /// Group subscriptions: deliver the record again after `delay`. Counts as
  /// a failed delivery (dead-lettered at max_deliveries).
  void nack(std::chrono::milliseconds delay = std::chrono::milliseconds(0)) const;
  /// Group subscriptions: give the record back unprocessed. It is delivered
  /// again at once (to any member) and this delivery does not count.
  void release() const;

 private:
  friend struct detail::sub_state;
  friend class client;
  std::shared_ptr<const detail::delivery> frame_;
  std::shared_ptr<detail::sub_state> sub_;
  const void* record_ = nullptr;  // wire::Record inside frame_
  uint64_t offset_ = 0;
  uint64_t timestamp_us_ = 0;
  uint32_t attempt_ = 1;
};

}  // namespace wharf
