#include "http/http_message.h"

namespace wharf::http {

std::optional<std::string_view> http_request::header(std::string_view name) const {
  for (const auto& [n, v] : headers) {
    if (n == name) return std::string_view(v);
  }
  return std::nullopt;
}

std::optional<std::string> http_request::query_param(std::string_view name) const {
  std::string_view rest = query;
  while (!rest.empty()) {
    size_t amp = rest.find('&');
    std::string_view pair = rest.substr(0, amp);
    rest = amp == std::string_view::npos ? std::string_view{} : rest.substr(amp + 1);
    size_t eq = pair.find('=');
    auto key = percent_decode(pair.substr(0, eq), true);
    if (!key || *key != name) continue;
    if (eq == std::string_view::npos) return std::string();
    return percent_decode(pair.substr(eq + 1), true);
  }
  return std::nullopt;
}

std::optional<std::string> percent_decode(std::string_view text, bool plus_is_space) {
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c == '%') {
      if (i + 2 >= text.size()) return std::nullopt;
      int hi = hex(text[i + 1]), lo = hex(text[i + 2]);
      if (hi < 0 || lo < 0) return std::nullopt;
      out.push_back(static_cast<char>(hi * 16 + lo));
      i += 2;
    } else {
      out.push_back(plus_is_space && c == '+' ? ' ' : c);
    }
  }
  return out;
}

std::string json_string(std::string_view text) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(text.size() + 2);
  out.push_back('"');
  for (char ch : text) {
    auto c = static_cast<unsigned char>(ch);
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(ch);
    } else if (c >= 0x20 && c < 0x7f) {
      out.push_back(ch);
    } else {
      out.append("\\u00");
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  out.push_back('"');
  return out;
}

const char* status_reason(int status) {
  switch (status) {
    case 100:
      return "Continue";
    case 200:
      return "OK";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 408:
      return "Request Timeout";
    case 411:
      return "Length Required";
    case 413:
      return "Content Too Large";
    case 414:
      return "URI Too Long";
    case 431:
      return "Request Header Fields Too Large";
    case 500:
      return "Internal Server Error";
    case 503:
      return "Service Unavailable";
    case 505:
      return "HTTP Version Not Supported";
  }
  return "Unknown";
}

int status_for(wire::ErrorCode code) {
  switch (code) {
    case wire::ErrorCode::none:
      return 200;
    case wire::ErrorCode::protocol:
    case wire::ErrorCode::invalid_name:
    case wire::ErrorCode::invalid_argument:
      return 400;
    case wire::ErrorCode::unauthorized:
      return 401;
    case wire::ErrorCode::unknown_topic:
      return 404;
    case wire::ErrorCode::timeout:
      return 408;
    case wire::ErrorCode::too_large:
      return 413;
    case wire::ErrorCode::storage_full:
    case wire::ErrorCode::shutting_down:
    case wire::ErrorCode::too_many_connections:
      return 503;
    default:
      return 500;
  }
}

http_response error_response(int status, wire::ErrorCode code, std::string_view message) {
  http_response r;
  r.status = status;
  r.body = "{\"error\":" + json_string(wire::error_name(code)) +
           ",\"message\":" + json_string(message) + "}\n";
  return r;
}

http_response error_response(wire::ErrorCode code, std::string_view message) {
  return error_response(status_for(code), code, message);
}

std::string serialize(const http_response& r) {
  std::string out;
  out.reserve(160 + r.body.size());
  out.append("HTTP/1.1 ")
      .append(std::to_string(r.status))
      .append(" ")
      .append(status_reason(r.status));
  out.append("\r\nContent-Type: ").append(r.content_type);
  out.append("\r\nContent-Length: ").append(std::to_string(r.body.size()));
  for (const auto& [name, value] : r.headers)
    out.append("\r\n").append(name).append(": ").append(value);
  if (r.close) out.append("\r\nConnection: close");
  out.append("\r\n\r\n").append(r.body);
  return out;
}

}  // namespace wharf::http
