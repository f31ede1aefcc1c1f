// consumer_group: placeholder until consumer groups land (issue 3).
#pragma once

#include <string>

#include "wire.h"

namespace wharf {

class broker;

class consumer_group {
 public:
  void dispatch(broker&) {}
  void end_all_members(broker&, wire::ErrorCode, const std::string&) {}
  void on_trimmed(broker&) {}
};

}  // namespace wharf
