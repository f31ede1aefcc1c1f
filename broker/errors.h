// The one place where internal errors become wire error codes.
#pragma once

#include "protocol_generated.h"
#include "storage/log_store.h"

namespace wharf {

/// Wire code for a failed storage operation. `not_found` and `exists` mean a
/// topic here; callers that mean something else map those themselves.
wire::ErrorCode to_wire(storage::store_error e);

}  // namespace wharf
