// The HTTP helpers: query parameters and percent-decoding, JSON strings that
// stay valid for any bytes, error bodies with the stable code names and their
// statuses, response serialization, and the Prometheus text writer.
#include <doctest/doctest.h>

#include <limits>

#include "http/http_message.h"
#include "http/prometheus_text.h"

using namespace wharf::http;
using wharf::wire::ErrorCode;

TEST_CASE("http_message: query parameters and percent-decoding") {
  http_request r;
  r.query = "a=1&key=user%2F7+x&empty=&flag&key=second";
  CHECK(r.query_param("key") == "user/7 x");  // the first one
  CHECK(r.query_param("a") == "1");
  CHECK(r.query_param("empty") == "");
  CHECK(r.query_param("flag") == "");
  CHECK_FALSE(r.query_param("missing"));
  CHECK(percent_decode("a%20b+c", false) == "a b+c");
  CHECK(percent_decode("%41%62", true) == "Ab");
  CHECK_FALSE(percent_decode("bad%2", false));
  CHECK_FALSE(percent_decode("bad%zz", false));
  CHECK_FALSE(percent_decode("%", false));
  r.headers = {{"wharf-key", "k"}, {"x", "1"}, {"x", "2"}};
  CHECK(r.header("x") == "1");
  CHECK_FALSE(r.header("Wharf-Key"));  // names are stored lower-case; look them up so
}

TEST_CASE("http_message: JSON strings escape quotes, controls and non-ASCII bytes") {
  CHECK(json_string("plain") == "\"plain\"");
  CHECK(json_string("a\"b\\c") == "\"a\\\"b\\\\c\"");
  CHECK(json_string(std::string("\n\x01\x7f\xff", 4)) == "\"\\u000a\\u0001\\u007f\\u00ff\"");
}

TEST_CASE("http_message: error responses carry the stable code and the matching status") {
  auto r = error_response(ErrorCode::unknown_topic, "unknown topic \"x\"");
  CHECK(r.status == 404);
  CHECK(r.body == "{\"error\":\"unknown_topic\",\"message\":\"unknown topic \\\"x\\\"\"}\n");
  CHECK(status_for(ErrorCode::invalid_name) == 400);
  CHECK(status_for(ErrorCode::unauthorized) == 401);
  CHECK(status_for(ErrorCode::too_large) == 413);
  CHECK(status_for(ErrorCode::storage_full) == 503);
  CHECK(status_for(ErrorCode::shutting_down) == 503);
  CHECK(status_for(ErrorCode::storage_error) == 500);
  r.headers.emplace_back("Allow", "POST");
  r.close = true;
  CHECK(serialize(r) ==
        "HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: " +
            std::to_string(r.body.size()) + "\r\nAllow: POST\r\nConnection: close\r\n\r\n" +
            r.body);
}

TEST_CASE("prometheus_text: families, escaped labels and help, number formats") {
  prometheus_text out;
  out.family("wharf_things_total", "counter", "Things\\counted\nhere");
  out.sample({{"topic", "a\"b\\c\nd"}, {"group", "g"}}, uint64_t{18446744073709551615ull});
  out.sample({}, uint64_t{0});
  out.family("wharf_latency_seconds", "histogram", "Latency");
  out.sample("_bucket", {{"le", prometheus_text::format(0.0001)}}, uint64_t{2});
  out.sample("_sum", {}, 0.25);
  CHECK(out.text() ==
        "# HELP wharf_things_total Things\\\\counted\\nhere\n"
        "# TYPE wharf_things_total counter\n"
        "wharf_things_total{topic=\"a\\\"b\\\\c\\nd\",group=\"g\"} 18446744073709551615\n"
        "wharf_things_total 0\n"
        "# HELP wharf_latency_seconds Latency\n"
        "# TYPE wharf_latency_seconds histogram\n"
        "wharf_latency_seconds_bucket{le=\"0.0001\"} 2\n"
        "wharf_latency_seconds_sum 0.25\n");
  CHECK(prometheus_text::format(std::numeric_limits<double>::infinity()) == "+Inf");
  CHECK(prometheus_text::format(2.5e-7) == "0.00000025");
  CHECK(prometheus_text::format(1e300) == "1e+300");
  CHECK(prometheus_text::format(3.0) == "3");
}
