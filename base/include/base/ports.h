// Free TCP ports on the loopback interface, for targets started with ${PORT} and for tests that
// start servers of their own. Thread-safe.
#ifndef LEAKGATE_BASE_PORTS_H_
#define LEAKGATE_BASE_PORTS_H_

#include "base/error.h"

namespace leakgate {

// A TCP port that was free on 127.0.0.1 a moment ago (bound to port 0, read back, closed). Another
// process may take it before the caller binds it; a target that fails to bind should be retried
// with a new port. kIo naming the failed call when no socket could be bound.
Result<int> FreePort();

}  // namespace leakgate

#endif  // LEAKGATE_BASE_PORTS_H_
