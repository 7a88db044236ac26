#pragma once

#include <functional>
#include <stdexcept>
#include <string>

namespace copycat::storage {

/// Any failure of durable storage: an I/O error (the message names the path,
/// the offset where relevant and strerror), corruption found while opening
/// (file, offset and index), or a write refused after an earlier failure.
/// `errorNumber()` is the errno behind it, 0 when the cause is not a system
/// call (corruption, misuse).
class StorageError : public std::runtime_error {
 public:
  explicit StorageError(const std::string& what, int errorNumber = 0)
      : std::runtime_error(what), m_errno(errorNumber) {}
  int errorNumber() const { return m_errno; }

 private:
  int m_errno;
};

/// Receives recoverable findings (a truncated torn tail, a corrupt meta copy
/// that was skipped, a stale temporary file removed). Never called for errors
/// that stop the node; those are thrown as StorageError.
using WarningSink = std::function<void(const std::string& message)>;

/// Runs file work that nothing waits for (removing superseded files) away
/// from the caller's thread, one job at a time, in the order given. Null:
/// the work runs inline.
using BackgroundRunner = std::function<void(std::function<void()> job)>;

}  // namespace copycat::storage
