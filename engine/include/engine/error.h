// Error values returned at the engine's library boundaries.
//
// Every fallible engine function returns `Result<T>` (a `std::expected<T, Error>`). The message is
// meant for a person: what was wrong, where (file and line, URL, field), and what would be right.
// Errors are plain values: copyable, thread-compatible, no ownership beyond their strings.
#ifndef LEAKGATE_ENGINE_ERROR_H_
#define LEAKGATE_ENGINE_ERROR_H_

#include <expected>
#include <string>
#include <string_view>

namespace leakgate::engine {

enum class ErrorCode {
  kInvalidArgument,     // the caller passed something malformed or out of range
  kNotFound,            // a named thing (file, symbol, session) does not exist
  kParse,               // input text could not be parsed
  kIo,                  // reading or writing a file or database failed
  kUnavailable,         // a remote peer failed in a way that may pass (5xx, refused, timeout)
  kFailedPrecondition,  // the object is not in a state that allows the call (e.g. not connected)
  kInternal,            // a bug or an unexpected failure of a library
};

std::string_view ErrorCodeName(ErrorCode code);

struct Error {
  ErrorCode code = ErrorCode::kInternal;
  std::string message;

  // "invalid_argument: <message>"
  std::string ToString() const;
};

template <class T>
using Result = std::expected<T, Error>;

// Shorthand for `return Fail(ErrorCode::kParse, "...")` inside functions returning Result<T>.
inline std::unexpected<Error> Fail(ErrorCode code, std::string message) {
  return std::unexpected<Error>(Error{code, std::move(message)});
}

}  // namespace leakgate::engine

#endif  // LEAKGATE_ENGINE_ERROR_H_
