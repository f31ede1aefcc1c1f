// Helpers shared by the unit tests: RecordBatch buffers built the way the SDK
// builds them, and a bounded wait on a libuv loop (an event, never a sleep).
#pragma once

#include <uv.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "record_generated.h"

namespace wharf::unit {

struct record_spec {
  std::optional<std::string> key;                            // absent = no key
  std::vector<std::pair<std::string, std::string>> headers;  // name -> value
  std::string payload;
};

/// A finished RecordBatch buffer (with the "WREC" identifier unless told not to).
inline std::vector<uint8_t> make_batch(const std::vector<record_spec>& records,
                                       bool with_identifier = true) {
  flatbuffers::FlatBufferBuilder fbb(1024);
  std::vector<flatbuffers::Offset<wire::Record>> offs;
  for (const auto& r : records) {
    flatbuffers::Offset<flatbuffers::Vector<uint8_t>> key;
    if (r.key)
      key = fbb.CreateVector(reinterpret_cast<const uint8_t*>(r.key->data()), r.key->size());
    flatbuffers::Offset<flatbuffers::Vector<flatbuffers::Offset<wire::Header>>> headers;
    if (!r.headers.empty()) {
      std::vector<flatbuffers::Offset<wire::Header>> hs;
      for (const auto& [name, value] : r.headers) {
        auto n = fbb.CreateString(name);
        auto v = fbb.CreateVector(reinterpret_cast<const uint8_t*>(value.data()), value.size());
        hs.push_back(wire::CreateHeader(fbb, n, v));
      }
      headers = fbb.CreateVector(hs);
    }
    auto payload =
        fbb.CreateVector(reinterpret_cast<const uint8_t*>(r.payload.data()), r.payload.size());
    offs.push_back(wire::CreateRecord(fbb, key, headers, payload));
  }
  auto batch = wire::CreateRecordBatch(fbb, fbb.CreateVector(offs));
  if (with_identifier) {
    fbb.Finish(batch, wire::RecordBatchIdentifier());
  } else {
    fbb.Finish(batch);
  }
  return {fbb.GetBufferPointer(), fbb.GetBufferPointer() + fbb.GetSize()};
}

/// A batch of records that carry only payloads.
inline std::vector<uint8_t> make_payload_batch(const std::vector<std::string>& payloads) {
  std::vector<record_spec> specs;
  for (const auto& p : payloads) specs.push_back({std::nullopt, {}, p});
  return make_batch(specs);
}

inline std::string as_string(const flatbuffers::Vector<uint8_t>* v) {
  return v ? std::string(reinterpret_cast<const char*>(v->data()), v->size()) : std::string();
}

/// Runs `loop` one iteration at a time until `done()` holds or `timeout_ms`
/// passes (a uv timer bounds the wait). Returns done().
inline bool run_until(uv_loop_t* loop, const std::function<bool()>& done,
                      uint64_t timeout_ms = 30000) {
  if (done()) return true;
  struct bound {
    uv_timer_t timer;
    bool expired = false;
    bool closed = false;
  } b;
  uv_timer_init(loop, &b.timer);
  b.timer.data = &b;
  uv_timer_start(
      &b.timer, [](uv_timer_t* t) { static_cast<bound*>(t->data)->expired = true; }, timeout_ms, 0);
  while (!done() && !b.expired) uv_run(loop, UV_RUN_ONCE);
  uv_close(reinterpret_cast<uv_handle_t*>(&b.timer),
           [](uv_handle_t* h) { static_cast<bound*>(h->data)->closed = true; });
  while (!b.closed) uv_run(loop, UV_RUN_NOWAIT);
  return done();
}

}  // namespace wharf::unit
