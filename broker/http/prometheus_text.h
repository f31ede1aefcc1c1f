// prometheus_text: writes the Prometheus text exposition format (0.0.4).
//
//   out.family("wharf_publish_records_total", "counter", "Records appended");
//   out.sample({{"topic", name}}, n);                   // wharf_publish_records_total{topic="..."}
//   n out.sample("_bucket", {{"le", "0.001"}}, n);         // histogram parts take a suffix
//
// Label values and help text are escaped; values are integers or shortest
// round-trip doubles (+Inf, -Inf, NaN spelled as Prometheus wants).
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>

namespace wharf::http {

class prometheus_text {
 public:
  using labels = std::initializer_list<std::pair<std::string_view, std::string_view>>;

  /// Starts a family: its # HELP and # TYPE lines ("counter", "gauge", "histogram").
  void family(std::string_view name, std::string_view type, std::string_view help);
  /// One sample named after the current family.
  void sample(labels l, uint64_t value) { sample("", l, value); }
  void sample(labels l, double value) { sample("", l, value); }
  /// One sample named family + suffix ("_bucket", "_sum", "_count").
  void sample(std::string_view suffix, labels l, uint64_t value);
  void sample(std::string_view suffix, labels l, double value);

  /// Formats a double the way Prometheus reads it.
  static std::string format(double value);

  const std::string& text() const { return out_; }
  std::string take() { return std::move(out_); }

 private:
  void begin_sample(std::string_view suffix, labels l);

  std::string out_;
  std::string family_;
};

}  // namespace wharf::http
