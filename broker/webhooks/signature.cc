#include "webhooks/signature.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <charconv>
#include <memory>
#include <vector>

namespace wharf::webhooks {

std::string base64_encode(std::span<const uint8_t> bytes) {
  std::string out(4 * ((bytes.size() + 2) / 3), '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), bytes.data(),
                          static_cast<int>(bytes.size()));
  out.resize(static_cast<size_t>(n));
  return out;
}

std::optional<std::string> base64_decode(std::string_view text) {
  auto is_b64 = [](char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
           c == '/';
  };
  std::string padded(text);
  size_t data_chars = padded.size();
  while (data_chars > 0 && padded[data_chars - 1] == '=') --data_chars;
  if (padded.size() - data_chars > 2) return std::nullopt;
  for (size_t i = 0; i < data_chars; ++i) {
    if (!is_b64(padded[i])) return std::nullopt;
  }
  padded.resize(data_chars);
  if (padded.size() % 4 == 1) return std::nullopt;
  while (padded.size() % 4 != 0) padded.push_back('=');
  std::string out(padded.size() / 4 * 3, '\0');
  int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(padded.data()),
                          static_cast<int>(padded.size()));
  if (n < 0) return std::nullopt;
  // EVP_DecodeBlock counts the bytes the padding stands for; drop them.
  out.resize(static_cast<size_t>(n) - (padded.size() - data_chars));
  return out;
}

std::optional<std::string> decode_secret(std::string_view secret) {
  constexpr std::string_view prefix = "whsec_";
  if (secret.starts_with(prefix)) secret.remove_prefix(prefix.size());
  auto key = base64_decode(secret);
  if (!key || key->size() < 16) return std::nullopt;
  return key;
}

std::string generate_secret() {
  uint8_t key[32];
  if (RAND_bytes(key, sizeof key) != 1) std::abort();  // no entropy: nothing sensible to do
  return "whsec_" + base64_encode(key);
}

std::string sign(std::string_view key, std::string_view id, int64_t timestamp_s,
                 std::string_view body) {
  std::unique_ptr<EVP_MAC, decltype(&EVP_MAC_free)> mac(EVP_MAC_fetch(nullptr, "HMAC", nullptr),
                                                        EVP_MAC_free);
  std::unique_ptr<EVP_MAC_CTX, decltype(&EVP_MAC_CTX_free)> ctx(
      mac ? EVP_MAC_CTX_new(mac.get()) : nullptr, EVP_MAC_CTX_free);
  if (!ctx) std::abort();  // OpenSSL without HMAC: a broken installation
  char digest_name[] = "SHA256";
  OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest_name, 0),
                         OSSL_PARAM_construct_end()};
  std::string ts = std::to_string(timestamp_s);
  auto update = [&](std::string_view s) {
    EVP_MAC_update(ctx.get(), reinterpret_cast<const unsigned char*>(s.data()), s.size());
  };
  EVP_MAC_init(ctx.get(), reinterpret_cast<const unsigned char*>(key.data()), key.size(), params);
  update(id);
  update(".");
  update(ts);
  update(".");
  update(body);
  uint8_t out[EVP_MAX_MD_SIZE];
  size_t out_len = 0;
  EVP_MAC_final(ctx.get(), out, &out_len, sizeof out);
  return "v1," + base64_encode(std::span<const uint8_t>(out, out_len));
}

const char* verify_result_name(verify_result r) {
  switch (r) {
    case verify_result::ok:
      return "ok";
    case verify_result::missing_headers:
      return "missing webhook-id, webhook-timestamp or webhook-signature header";
    case verify_result::bad_timestamp:
      return "webhook-timestamp is not a number of seconds";
    case verify_result::stale_timestamp:
      return "webhook-timestamp is outside the tolerance";
    case verify_result::bad_signature:
      return "no webhook-signature matches";
  }
  return "?";
}

verify_result verify(std::string_view key, std::string_view id, std::string_view timestamp,
                     std::string_view signatures, std::string_view body, int64_t now_s,
                     int64_t tolerance_s) {
  if (id.empty() || timestamp.empty() || signatures.empty()) return verify_result::missing_headers;
  int64_t ts = 0;
  auto [end, ec] = std::from_chars(timestamp.data(), timestamp.data() + timestamp.size(), ts);
  if (ec != std::errc{} || end != timestamp.data() + timestamp.size())
    return verify_result::bad_timestamp;
  if (ts < now_s - tolerance_s || ts > now_s + tolerance_s) return verify_result::stale_timestamp;
  std::string expected = sign(key, id, ts, body);
  while (!signatures.empty()) {
    size_t sp = signatures.find(' ');
    std::string_view one = signatures.substr(0, sp);
    signatures = sp == std::string_view::npos ? std::string_view{} : signatures.substr(sp + 1);
    if (one.size() == expected.size() &&
        CRYPTO_memcmp(one.data(), expected.data(), one.size()) == 0) {
      return verify_result::ok;
    }
  }
  return verify_result::bad_signature;
}

}  // namespace wharf::webhooks
