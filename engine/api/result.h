#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace copycat {

/// Why an operation could not be decoded, dispatched or answered. The server
/// maps these onto its wire error codes; the client surfaces them unchanged.
enum class ErrorCode : std::uint8_t {
  UnknownOperation,    // type id not registered, or no handler for the type
  MalformedOperation,  // operation bytes that the type's codec rejects
  MalformedResult,     // result bytes that the type's result codec rejects
  MalformedSnapshot,   // snapshot bytes that the framework or install() rejects
  ApplicationError,    // the state machine's handler threw; message is what()
  IllegalState,        // misuse by the caller (out-of-order index, no snapshot support)
  InternalError,       // a result or snapshot could not be encoded
  Unavailable,         // no server answered in time, or the cluster has no leader now
  SessionExpired,      // the client's session expired or was closed
  Closed,              // the client or server was closed before the outcome was known
};

std::string_view toString(ErrorCode code);

/// An error value: a code and a human-readable message naming the type or id
/// involved. Returned, never thrown, on every path that handles bytes.
struct Error {
  ErrorCode code = ErrorCode::InternalError;
  std::string message;

  friend bool operator==(const Error&, const Error&) = default;
};

/// Thrown by Expected::value() when it holds an error.
class BadExpectedAccess : public std::logic_error {
 public:
  explicit BadExpectedAccess(const Error& error)
      : std::logic_error(std::string(toString(error.code)) + ": " + error.message) {}
};

/// Either a T or an Error (std::expected is C++23). Construct from either;
/// test with ok() / operator bool before value(), which throws
/// BadExpectedAccess on an error.
template <class T>
class Expected {
 public:
  Expected(T value) : m_state(std::in_place_index<0>, std::move(value)) {}
  Expected(Error error) : m_state(std::in_place_index<1>, std::move(error)) {}

  bool ok() const { return m_state.index() == 0; }
  explicit operator bool() const { return ok(); }

  T& value() & {
    check();
    return std::get<0>(m_state);
  }
  const T& value() const& {
    check();
    return std::get<0>(m_state);
  }
  T&& value() && {
    check();
    return std::get<0>(std::move(m_state));
  }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  /// The error; only valid when !ok().
  const Error& error() const { return std::get<1>(m_state); }

 private:
  void check() const {
    if (!ok()) throw BadExpectedAccess(error());
  }
  std::variant<T, Error> m_state;
};

/// Success without a value, or an Error.
template <>
class Expected<void> {
 public:
  Expected() = default;
  Expected(Error error) : m_error(std::move(error)), m_ok(false) {}

  bool ok() const { return m_ok; }
  explicit operator bool() const { return ok(); }
  void value() const {
    if (!m_ok) throw BadExpectedAccess(m_error);
  }
  const Error& error() const { return m_error; }

 private:
  Error m_error;
  bool m_ok = true;
};

using Status = Expected<void>;

}  // namespace copycat
