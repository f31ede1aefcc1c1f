// wharfd: the Wharf broker daemon. See broker/broker.h for the design.
#include "broker.h"
#include "config.h"
#include "log.h"

int main(int argc, char** argv) {
  wharf::broker_config config;
  int rc = wharf::parse_broker_config(argc, argv, config);
  if (rc >= 0) return rc;
  wharf::set_log_level(config.level);
  wharf::broker b(config);
  return b.run();
}
