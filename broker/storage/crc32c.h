// CRC32C (Castagnoli) of stored batches, so a bit flip on disk is reported
// instead of delivered. Uses the SSE4.2 instruction when the CPU has it.
#pragma once

#include <cstddef>
#include <cstdint>

namespace wharf::storage {

uint32_t crc32c(const void* data, size_t size, uint32_t crc = 0);

}  // namespace wharf::storage
