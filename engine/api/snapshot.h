#pragma once

#include <string>
#include <string_view>

#include "engine/api/codec.h"

namespace copycat {

/// Builds a snapshot as a sequence of objects, each encoded with its cereal
/// serialization into one byte buffer. Given to Snapshottable::snapshot.
class SnapshotWriter {
 public:
  /// `expectedBytes`: room to reserve up front (a hint; it grows as needed).
  explicit SnapshotWriter(std::size_t expectedBytes = 0) : m_archive(m_bytes) {
    m_bytes.reserve(expectedBytes);
  }
  SnapshotWriter(const SnapshotWriter&) = delete;
  SnapshotWriter& operator=(const SnapshotWriter&) = delete;

  template <class T>
  void writeObject(const T& value) {
    m_archive(value);
  }

  /// The bytes written so far.
  std::string bytes() const& { return m_bytes; }
  /// The same, moved out of a writer that is done (no copy of the state).
  std::string bytes() && { return std::move(m_bytes); }

 private:
  std::string m_bytes;
  detail::StringOutputArchive m_archive;
};

/// Reads back, in the same order, the objects a SnapshotWriter wrote.
/// readObject throws DecodeError on truncated or inconsistent bytes; the
/// framework turns that into an error of installSnapshot.
class SnapshotReader {
 public:
  explicit SnapshotReader(std::string_view bytes) : m_archive(bytes) {}
  SnapshotReader(const SnapshotReader&) = delete;
  SnapshotReader& operator=(const SnapshotReader&) = delete;

  template <class T>
  T readObject() {
    T value{};
    readInto(value);
    return value;
  }

  /// Reads into an existing object (for types that are not default-constructible
  /// or are expensive to move).
  template <class T>
  void readInto(T& value) {
    try {
      m_archive(value);
    } catch (const DecodeError&) {
      throw;
    } catch (const std::exception& e) {
      throw DecodeError(e.what());
    }
  }

  bool atEnd() const { return m_archive.remaining() == 0; }

 private:
  detail::BoundedInputArchive m_archive;
};

/// Implemented (in addition to StateMachine) by a state machine whose state
/// can be captured, so the log prefix before it can be compacted and lagging
/// or joining servers can catch up from it. `snapshot` writes the whole state
/// and must not change it; `install` replaces the whole state with what
/// `snapshot` wrote. Both run on the state machine's executor thread, between
/// operations. Pending scheduled callbacks are not part of a snapshot: they
/// are cancelled before install(), which re-schedules them from the state
/// (StateMachine::scheduleAt with deadlines kept in the state).
class Snapshottable {
 public:
  virtual ~Snapshottable() = default;
  virtual void snapshot(SnapshotWriter& writer) const = 0;
  virtual void install(SnapshotReader& reader) = 0;
};

}  // namespace copycat
