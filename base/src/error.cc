#include "base/error.h"

#include <cstring>

namespace leakgate {

std::string_view ErrorCodeName(ErrorCode code) {
  switch (code) {
    case ErrorCode::kInvalidArgument: return "invalid_argument";
    case ErrorCode::kNotFound: return "not_found";
    case ErrorCode::kParse: return "parse_error";
    case ErrorCode::kIo: return "io_error";
    case ErrorCode::kUnavailable: return "unavailable";
    case ErrorCode::kFailedPrecondition: return "failed_precondition";
    case ErrorCode::kTargetFailed: return "target_failed";
    case ErrorCode::kPermissionDenied: return "permission_denied";
    case ErrorCode::kInternal: return "internal";
  }
  return "unknown";
}

std::string Error::ToString() const {
  return std::string(ErrorCodeName(code)) + ": " + message;
}

std::string SystemErrorText(int error) {
  char buffer[256];
  // GNU strerror_r returns the text, in `buffer` or a static string; it is thread-safe where
  // strerror is not.
  return ::strerror_r(error, buffer, sizeof buffer);
}

}  // namespace leakgate
