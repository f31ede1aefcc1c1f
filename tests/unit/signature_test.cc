// Standard Webhooks signing: the specification's published example, base64
// edge cases, and verification failures.
#include <doctest/doctest.h>

#include "webhooks/signature.h"

using namespace wharf::webhooks;

TEST_CASE("signature: matches the Standard Webhooks reference example") {
  auto key = decode_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
  REQUIRE(key);
  CHECK(sign(*key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, R"({"test": 2432232314})") ==
        "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
}

TEST_CASE("signature: base64 round trip with and without padding, rejects junk") {
  for (std::string s : {"", "a", "ab", "abc", "abcd", "\xff\x00\x10 binary"}) {
    std::string enc = base64_encode({reinterpret_cast<const uint8_t*>(s.data()), s.size()});
    CHECK(base64_decode(enc) == s);
    while (!enc.empty() && enc.back() == '=') enc.pop_back();
    CHECK(base64_decode(enc) == s);
  }
  CHECK_FALSE(base64_decode("ab$d"));
  CHECK_FALSE(base64_decode("a"));
  CHECK_FALSE(base64_decode("ab==="));
  CHECK_FALSE(decode_secret("whsec_c2hvcnQ="));  // 5-byte key: too short
  auto fresh = generate_secret();
  CHECK(fresh.starts_with("whsec_"));
  CHECK(decode_secret(fresh)->size() == 32);
}

TEST_CASE("signature: verify accepts any listed signature inside the tolerance only") {
  std::string key = *decode_secret(generate_secret());
  std::string other = *decode_secret(generate_secret());
  std::string good = sign(key, "orders:7", 1000, "body");
  CHECK(verify(key, "orders:7", "1000", good, "body", 1000, 300) == verify_result::ok);
  CHECK(verify(key, "orders:7", "1000", sign(other, "orders:7", 1000, "body") + " " + good, "body",
               1200, 300) == verify_result::ok);
  CHECK(verify(key, "orders:7", "1000", good, "body!", 1000, 300) == verify_result::bad_signature);
  CHECK(verify(key, "orders:8", "1000", good, "body", 1000, 300) == verify_result::bad_signature);
  CHECK(verify(other, "orders:7", "1000", good, "body", 1000, 300) == verify_result::bad_signature);
  CHECK(verify(key, "orders:7", "1000", good, "body", 1301, 300) == verify_result::stale_timestamp);
  CHECK(verify(key, "orders:7", "1000", good, "body", 699, 300) == verify_result::stale_timestamp);
  CHECK(verify(key, "orders:7", "10x0", good, "body", 1000, 300) == verify_result::bad_timestamp);
  CHECK(verify(key, "", "1000", good, "body", 1000, 300) == verify_result::missing_headers);
}
