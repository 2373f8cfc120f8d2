// Writing a file so that nothing half-written is ever left behind: a temporary file in the same
// folder, fsync, then rename(2). Readers see the old content or the new one, never a mix.
// Thread-safe (the temporary name carries the process id; one writer per path at a time).
#ifndef LEAKGATE_BASE_ATOMIC_FILE_H_
#define LEAKGATE_BASE_ATOMIC_FILE_H_

#include <string>
#include <string_view>

#include "base/error.h"

namespace leakgate {

// Writes `content` to `path` through a temporary file in the same folder and rename(2); on failure
// the temporary file is removed and `path` is untouched. kIo names the path and the errno text.
Result<void> WriteFileAtomically(const std::string& path, std::string_view content);

}  // namespace leakgate

#endif  // LEAKGATE_BASE_ATOMIC_FILE_H_
