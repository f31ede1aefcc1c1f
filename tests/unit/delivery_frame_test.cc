// encode_subset: the re-encoded RecordBatch keeps the records vector length
// (so indexes, hence offsets, stay the same), carries the selected records
// byte for byte and leaves the others empty; delivery_frame counts records.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "subscriptions/delivery_frame.h"
#include "unit_support.h"

using wharf::encode_subset;
using wharf::unit::as_string;

namespace {

std::vector<wharf::unit::record_spec> ten_records() {
  std::vector<wharf::unit::record_spec> specs;
  for (int i = 0; i < 10; ++i) {
    wharf::unit::record_spec r;
    if (i % 2 == 0) r.key = "key-" + std::to_string(i);
    if (i % 3 == 0) r.headers = {{"origin", "web"}, {"n", std::to_string(i)}};
    r.payload = std::string(2000 + i, static_cast<char>('a' + i));
    specs.push_back(r);
  }
  return specs;
}

const wharf::wire::RecordBatch* verified(const flatbuffers::DetachedBuffer& buf) {
  return wharf::wire::verify_record_batch({buf.data(), buf.size()});
}

}  // namespace

TEST_CASE("encode_subset keeps the records vector length and the selected records") {
  auto specs = ten_records();
  auto bytes = wharf::unit::make_batch(specs);
  auto src = wharf::storage::batch::copy_of(1, 10, bytes);
  std::vector<bool> keep(10, false);
  keep[1] = keep[4] = keep[9] = true;

  auto out = encode_subset(*src->records(), keep);
  auto rb = verified(out);
  REQUIRE(rb);
  REQUIRE(rb->records()->size() == 10);
  for (uint32_t i = 0; i < 10; ++i) {
    CAPTURE(i);
    auto r = rb->records()->Get(i);
    if (keep[i]) {
      CHECK(as_string(r->payload()) == specs[i].payload);
      CHECK((r->key() != nullptr) == specs[i].key.has_value());
      if (specs[i].key) CHECK(as_string(r->key()) == *specs[i].key);
      size_t headers = r->headers() ? r->headers()->size() : 0;
      REQUIRE(headers == specs[i].headers.size());
      for (size_t h = 0; h < headers; ++h) {
        CHECK(r->headers()->Get(h)->name()->str() == specs[i].headers[h].first);
        CHECK(as_string(r->headers()->Get(h)->value()) == specs[i].headers[h].second);
      }
    } else {
      CHECK((r->payload() == nullptr || r->payload()->size() == 0));
      CHECK(r->key() == nullptr);
      CHECK(r->headers() == nullptr);
    }
  }
  CHECK(out.size() < bytes.size() / 2);  // the unselected payloads are not carried
}

TEST_CASE("encode_subset with everything or nothing selected") {
  auto specs = ten_records();
  auto bytes = wharf::unit::make_batch(specs);
  auto src = wharf::storage::batch::copy_of(1, 10, bytes);

  auto all = encode_subset(*src->records(), std::vector<bool>(10, true));
  auto rb = verified(all);
  REQUIRE(rb);
  REQUIRE(rb->records()->size() == 10);
  for (uint32_t i = 0; i < 10; ++i)
    CHECK(as_string(rb->records()->Get(i)->payload()) == specs[i].payload);

  auto none = encode_subset(*src->records(), std::vector<bool>(10, false));
  auto empty = verified(none);
  REQUIRE(empty);
  REQUIRE(empty->records()->size() == 10);
  for (uint32_t i = 0; i < 10; ++i) CHECK(empty->records()->Get(i)->payload() == nullptr);
  CHECK(none.size() < 200);
}

TEST_CASE("delivery_frame counts the records it was given") {
  auto bytes = wharf::unit::make_batch(ten_records());
  auto b = wharf::storage::batch::copy_of(1, 10, bytes);
  b->base_offset = 100;
  wharf::delivery_frame f(7);
  CHECK(f.empty());
  CHECK(f.records() == 0);
  f.add_range(*b, 2, 3);
  std::vector<uint32_t> idx{0, 5};
  std::vector<uint16_t> attempts{1, 3};
  f.add_selection(*b, idx, attempts);
  CHECK_FALSE(f.empty());
  CHECK(f.records() == 5);
  CHECK(f.bytes() > 0);
}
