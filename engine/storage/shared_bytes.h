#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

namespace copycat::storage {

/// Immutable bytes whose memory (a string, a mapped file) lives as long as
/// any copy of this handle. Copies and slices share it; every thread may read
/// it. Snapshots travel this way from storage to the state machine without
/// being copied.
class SharedBytes {
 public:
  SharedBytes() = default;
  /// Owns `data`.
  explicit SharedBytes(std::string data);
  /// `bytes` points into memory that `owner` keeps alive.
  SharedBytes(std::shared_ptr<const void> owner, std::string_view bytes)
      : m_owner(std::move(owner)), m_bytes(bytes) {}

  std::string_view view() const { return m_bytes; }
  bool empty() const { return m_bytes.empty(); }
  /// `length` bytes from `offset` (clamped to the end), sharing the memory.
  SharedBytes slice(std::size_t offset, std::size_t length) const;

 private:
  std::shared_ptr<const void> m_owner;
  std::string_view m_bytes;
};

}  // namespace copycat::storage
