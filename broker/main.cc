// wharfd: the Wharf broker daemon. See broker/broker.h for the design.
#include <malloc.h>

#include "broker.h"
#include "config.h"
#include "log.h"

int main(int argc, char** argv) {
  wharf::broker_config config;
  int rc = wharf::parse_broker_config(argc, argv, config);
  if (rc >= 0) return rc;
  wharf::set_log_level(config.level);
  // Batches and LMDB's buffers for large values are 64 KiB - 8 MiB blocks
  // allocated and freed on every commit. Served by mmap (glibc's default
  // above 128 KiB) each one page-faults in again; from the heap they are
  // reused. Measured: ~30% of broker CPU was page faults before this.
  mallopt(M_MMAP_THRESHOLD, 64 << 20);
  mallopt(M_TRIM_THRESHOLD, 128 << 20);
  wharf::broker b(config);
  return b.run();
}
