// signature: Standard Webhooks signing and verification
// (https://www.standardwebhooks.com), shared by outbound webhooks and the
// HTTP ingest endpoints.
//
// A secret is "whsec_" + base64(key). A message is signed as
//   webhook-signature: v1,<base64 HMAC-SHA256(key, "<id>.<timestamp>.<body>")>
// and several space-separated signatures may be sent while a secret rotates.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace wharf::webhooks {

std::string base64_encode(std::span<const uint8_t> bytes);
/// Strict standard base64 (padding optional); nullopt on any other character.
std::optional<std::string> base64_decode(std::string_view text);

/// The key bytes of a "whsec_..." secret (the prefix is optional); nullopt
/// when it is not base64 or decodes to fewer than 16 bytes.
std::optional<std::string> decode_secret(std::string_view secret);
/// A random new "whsec_" secret with a 32-byte key.
std::string generate_secret();

/// "v1,<base64 signature>" of one message under one key.
std::string sign(std::string_view key, std::string_view id, int64_t timestamp_s,
                 std::string_view body);

enum class verify_result { ok, missing_headers, bad_timestamp, stale_timestamp, bad_signature };
const char* verify_result_name(verify_result r);

/// Checks the three headers of a received message against one key: the
/// timestamp within `tolerance_s` of `now_s`, and one of the space-separated
/// v1 signatures matching (compared in constant time).
verify_result verify(std::string_view key, std::string_view id, std::string_view timestamp,
                     std::string_view signatures, std::string_view body, int64_t now_s,
                     int64_t tolerance_s);

}  // namespace wharf::webhooks
