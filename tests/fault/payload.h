// Payloads of the crash-loop checker: unique, self-describing and
// self-verifying.
//
//   "<pid>.<topic tag>.<producer>.<seq>.<filler>"
//
// pid is the checker's process id, the tag says which topic the record was
// published to, (producer, seq) is unique within the run, and the filler's
// length and letters are a function of (producer, seq). So a record read back
// names exactly one publish, and any changed byte is detected by rebuilding
// the payload from its id and comparing.
#pragma once

#include <charconv>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace wharf::fault {

/// (producer, seq) packed into one number: producer in the top 24 bits.
inline uint64_t record_key(uint32_t producer, uint64_t seq) {
  return (uint64_t{producer} << 40) | seq;
}
inline uint32_t key_producer(uint64_t key) {
  return static_cast<uint32_t>(key >> 40);
}
inline uint64_t key_seq(uint64_t key) {
  return key & ((uint64_t{1} << 40) - 1);
}

inline uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

inline std::string make_payload(uint32_t pid, char tag, uint32_t producer, uint64_t seq) {
  std::string p;
  p.reserve(160);
  p.append(std::to_string(pid)).push_back('.');
  p.push_back(tag);
  p.push_back('.');
  p.append(std::to_string(producer)).push_back('.');
  p.append(std::to_string(seq)).push_back('.');
  uint64_t h = splitmix64(record_key(producer, seq) ^ (uint64_t{pid} << 20));
  size_t filler = 8 + h % 113;  // 8..120 letters
  for (size_t i = 0; i < filler; ++i) {
    if (i % 12 == 0) h = splitmix64(h);
    p.push_back(static_cast<char>('a' + (h >> (5 * (i % 12))) % 26));
  }
  return p;
}

/// The record key a publish carries: every other record has one of
/// kRecordKeys keys, so the groups' per-key gates are always in play; the
/// rest have none. A function of (producer, seq), so the checker knows the
/// key of every record it reads back.
constexpr uint64_t kRecordKeys = 1024;
inline std::optional<uint32_t> key_index(uint32_t producer, uint64_t seq) {
  if (seq % 2 != 0) return std::nullopt;
  return static_cast<uint32_t>(splitmix64(seq * 64 + producer) % kRecordKeys);
}
inline std::string key_name(uint32_t index) {
  return "k" + std::to_string(index);
}

struct payload_id {
  char tag = 0;
  uint32_t producer = 0;
  uint64_t seq = 0;
  uint64_t key() const { return record_key(producer, seq); }
};

/// The id of `p` if it is, byte for byte, a payload this run (`pid`) made.
inline std::optional<payload_id> parse_payload(std::string_view p, uint32_t pid) {
  auto number = [&](std::string_view& s, uint64_t& out) {
    auto r = std::from_chars(s.data(), s.data() + s.size(), out);
    if (r.ec != std::errc() || r.ptr == s.data() + s.size() || *r.ptr != '.') return false;
    s.remove_prefix(static_cast<size_t>(r.ptr - s.data()) + 1);
    return true;
  };
  std::string_view s = p;
  uint64_t got_pid = 0, producer = 0, seq = 0;
  if (!number(s, got_pid) || got_pid != pid) return std::nullopt;
  if (s.size() < 2 || s[1] != '.') return std::nullopt;
  char tag = s[0];
  s.remove_prefix(2);
  if (!number(s, producer) || !number(s, seq)) return std::nullopt;
  if (producer >= (1u << 24) || seq >= (uint64_t{1} << 40)) return std::nullopt;
  payload_id id{tag, static_cast<uint32_t>(producer), seq};
  if (make_payload(pid, tag, id.producer, seq) != p) return std::nullopt;
  return id;
}

}  // namespace wharf::fault
