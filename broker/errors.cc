#include "errors.h"

namespace wharf {

wire::ErrorCode to_wire(storage::store_error e) {
  using storage::store_error;
  switch (e) {
    case store_error::ok: return wire::ErrorCode::none;
    case store_error::map_full:
    case store_error::disk_full: return wire::ErrorCode::storage_full;
    case store_error::not_found: return wire::ErrorCode::unknown_topic;
    case store_error::exists: return wire::ErrorCode::topic_exists;
    case store_error::io_error:
    case store_error::corrupted:
    case store_error::fatal: return wire::ErrorCode::storage_error;
    case store_error::closed: return wire::ErrorCode::shutting_down;
  }
  return wire::ErrorCode::internal;
}

}  // namespace wharf
