#include "engine/api/operation.h"
#include "engine/api/result.h"

namespace copycat {

std::string_view toString(ErrorCode code) {
  switch (code) {
    case ErrorCode::UnknownOperation:
      return "UNKNOWN_OPERATION";
    case ErrorCode::MalformedOperation:
      return "MALFORMED_OPERATION";
    case ErrorCode::MalformedResult:
      return "MALFORMED_RESULT";
    case ErrorCode::MalformedSnapshot:
      return "MALFORMED_SNAPSHOT";
    case ErrorCode::ApplicationError:
      return "APPLICATION_ERROR";
    case ErrorCode::IllegalState:
      return "ILLEGAL_STATE";
    case ErrorCode::InternalError:
      return "INTERNAL_ERROR";
    case ErrorCode::Unavailable:
      return "UNAVAILABLE";
    case ErrorCode::SessionExpired:
      return "SESSION_EXPIRED";
    case ErrorCode::Closed:
      return "CLOSED";
  }
  return "UNKNOWN_ERROR";
}

std::string_view toString(Consistency consistency) {
  switch (consistency) {
    case Consistency::Linearizable:
      return "linearizable";
    case Consistency::LinearizableLease:
      return "lease";
    case Consistency::Sequential:
      return "sequential";
  }
  return "unknown";
}

std::string_view toString(OperationKind kind) {
  return kind == OperationKind::Command ? "command" : "query";
}

}  // namespace copycat
