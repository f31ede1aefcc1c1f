#include "http/prometheus_text.h"

#include <charconv>
#include <cmath>

namespace wharf::http {

void prometheus_text::family(std::string_view name, std::string_view type, std::string_view help) {
  family_ = name;
  out_.append("# HELP ").append(name).append(" ");
  for (char c : help) {
    if (c == '\\') {
      out_.append("\\\\");
    } else if (c == '\n') {
      out_.append("\\n");
    } else {
      out_.push_back(c);
    }
  }
  out_.append("\n# TYPE ").append(name).append(" ").append(type).append("\n");
}

void prometheus_text::begin_sample(std::string_view suffix, labels l) {
  out_.append(family_).append(suffix);
  if (l.size() == 0) {
    out_.push_back(' ');
    return;
  }
  out_.push_back('{');
  bool first = true;
  for (const auto& [name, value] : l) {
    if (!first) out_.push_back(',');
    first = false;
    out_.append(name).append("=\"");
    for (char c : value) {
      if (c == '\\') {
        out_.append("\\\\");
      } else if (c == '"') {
        out_.append("\\\"");
      } else if (c == '\n') {
        out_.append("\\n");
      } else {
        out_.push_back(c);
      }
    }
    out_.push_back('"');
  }
  out_.append("} ");
}

void prometheus_text::sample(std::string_view suffix, labels l, uint64_t value) {
  begin_sample(suffix, l);
  out_.append(std::to_string(value)).push_back('\n');
}

void prometheus_text::sample(std::string_view suffix, labels l, double value) {
  begin_sample(suffix, l);
  out_.append(format(value)).push_back('\n');
}

std::string prometheus_text::format(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  // Shortest round-trip digits; plain decimals ("0.0001", not "1e-04") where
  // they stay short, as bucket bounds read better that way.
  char buf[64];
  double magnitude = std::fabs(value);
  auto fmt = magnitude == 0 || (magnitude >= 1e-9 && magnitude < 1e15) ? std::chars_format::fixed
                                                                       : std::chars_format::general;
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, value, fmt);
  return std::string(buf, end);
}

}  // namespace wharf::http
