// Error values returned at the library boundaries of the harness, the reports and base.
//
// Every fallible harness function returns `Result<T>` (a `std::expected<T, Error>`). The message is
// for a person: what was wrong, where (file and JSON path, URL, /proc path), and what would be right.
// Plain copyable values; thread-compatible (SystemErrorText is thread-safe). The harness never
// includes engine headers, so it has its own error type.
#ifndef LEAKGATE_BASE_ERROR_H_
#define LEAKGATE_BASE_ERROR_H_

#include <expected>
#include <string>
#include <string_view>

namespace leakgate {

enum class ErrorCode {
  kInvalidArgument,     // bad input: scenario, flag, override
  kNotFound,            // a file, process or path does not exist
  kParse,               // text could not be parsed
  kIo,                  // reading or writing failed
  kUnavailable,         // a peer or the target did not answer (refused, timeout)
  kFailedPrecondition,  // not in a state that allows the call
  kTargetFailed,        // the target did not start, crashed, or hung past its timeout
  kPermissionDenied,    // the OS refused (e.g. /proc of another user's process)
  kInternal,
};

std::string_view ErrorCodeName(ErrorCode code);

struct Error {
  ErrorCode code = ErrorCode::kInternal;
  std::string message;

  std::string ToString() const;  // "<code name>: <message>"
};

template <class T>
using Result = std::expected<T, Error>;

inline std::unexpected<Error> Fail(ErrorCode code, std::string message) {
  return std::unexpected<Error>(Error{code, std::move(message)});
}

// The text of an errno value ("No such file or directory"), for a message that says why.
std::string SystemErrorText(int error);

}  // namespace leakgate

#endif  // LEAKGATE_BASE_ERROR_H_
