// http_message: one HTTP request as the connection assembled it, one
// response as a handler builds it, and the small text helpers both need
// (percent-decoding, JSON strings, the error body). No sockets, no broker.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "wire.h"

namespace wharf::http {

struct http_request {
  std::string method;  // "GET", "POST", ...
  std::string path;    // the target before '?', still percent-encoded
  std::string query;   // after '?', without it
  std::vector<std::pair<std::string, std::string>> headers;  // names lower-cased, in arrival order
  std::string body;

  /// The first header named `name` (lower case), or nullopt.
  std::optional<std::string_view> header(std::string_view name) const;
  /// The first query parameter `name`, decoded ('+' is a space); nullopt if absent.
  std::optional<std::string> query_param(std::string_view name) const;
};

struct http_response {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;  // extra headers
  bool close = false;  // close the connection after this response
};

/// Decodes %XX escapes (and '+' as a space when `plus_is_space`); nullopt on
/// a malformed escape.
std::optional<std::string> percent_decode(std::string_view text, bool plus_is_space);

/// `text` as a JSON string literal, quotes included. Bytes outside printable
/// ASCII are escaped as \u00XX, so the result is valid JSON for any input.
std::string json_string(std::string_view text);

/// The reason phrase of a status code ("Not Found").
const char* status_reason(int status);

/// {"error":"<wire::error_name(code)>","message":"..."} with `status`.
http_response error_response(int status, wire::ErrorCode code, std::string_view message);
/// The HTTP status a broker error code answers with (the one mapping).
int status_for(wire::ErrorCode code);
/// error_response(status_for(code), code, message).
http_response error_response(wire::ErrorCode code, std::string_view message);

/// The response's status line, headers and body, ready to write.
std::string serialize(const http_response& r);

}  // namespace wharf::http
