// Errors of the Wharf client SDK. Every failure carries a stable code (the
// same numbers and names as the wire protocol's ErrorCode) and a message.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace wharf {

/// Stable error codes; the numbers never change meaning.
enum class errc : uint16_t {
  ok = 0,
  internal = 1,              // broker-side bug or unexpected failure
  protocol = 2,              // malformed or unexpected frame
  unsupported_version = 3,
  unknown_topic = 4,
  invalid_name = 5,          // names are 1-200 characters of [A-Za-z0-9._-]
  topic_exists = 6,
  too_large = 7,             // record above max_message_bytes
  storage_full = 8,
  storage_error = 9,
  unauthorized = 10,
  timeout = 11,              // no answer within the request timeout
  invalid_argument = 12,
  unknown_group = 13,
  group_exists = 14,
  shutting_down = 15,
  too_many_connections = 16,
  unknown_subscription = 17,
  disconnected = 18,         // the connection dropped before the answer came: outcome unknown
  unavailable = 19,          // the broker could not be reached: the request was not sent
};

/// The stable name of a code: "unknown_topic", "storage_full", ...
std::string_view to_string(errc code);

struct error {
  errc code = errc::ok;
  std::string message;

  error() = default;
  error(errc c, std::string m) : code(c), message(std::move(m)) {}
  /// "unknown_topic: unknown topic 'x'"
  std::string to_string() const;
};

/// A value or an error. `ok()` (and operator bool) is true on success.
template <class T>
class result {
 public:
  result(T value) : v_(std::move(value)) {}
  result(error e) : v_(std::move(e)) {}

  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }
  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  /// The error; only valid when !ok().
  const error& err() const { return std::get<1>(v_); }

 private:
  std::variant<T, error> v_;
};

template <>
class result<void> {
 public:
  result() = default;
  result(error e) : e_(std::move(e)) {}
  bool ok() const { return e_.code == errc::ok; }
  explicit operator bool() const { return ok(); }
  const error& err() const { return e_; }

 private:
  error e_;
};

}  // namespace wharf
