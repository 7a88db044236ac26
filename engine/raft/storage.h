#pragma once

#include <optional>
#include <string>
#include <vector>

#include "engine/raft/types.h"

namespace copycat::raft {

/// The core's read-only view of what the runtime has persisted. The runtime
/// owns the implementation and mutates it only between Ready batches (after
/// persisting one, before calling Node::advance). The log held here starts at
/// firstIndex(), at most one past the latest snapshot's index (entries before
/// the snapshot may be kept for slightly lagging followers); the term of entry
/// firstIndex() - 1 is always known.
class LogStorage {
 public:
  virtual ~LogStorage() = default;

  /// The persisted hard state and the membership of the latest snapshot.
  virtual HardState hardState() const = 0;
  virtual SnapshotMeta snapshotMeta() const = 0;
  virtual Index firstIndex() const = 0;
  /// snapshot index when the log is empty.
  virtual Index lastIndex() const = 0;
  /// Term of entry `index`; valid for firstIndex() - 1 .. lastIndex().
  virtual std::optional<Term> term(Index index) const = 0;
  /// Entries [from, to), stopping early once `maxBytes` is exceeded (at least
  /// one entry is returned). Valid for firstIndex() <= from <= to <= last+1.
  virtual std::vector<Entry> entries(Index from, Index to, std::size_t maxBytes) const = 0;
  /// Up to `maxBytes` of the latest snapshot's data from `offset`; the core
  /// streams a snapshot to a lagging follower this way.
  virtual std::string snapshotChunk(std::uint64_t offset, std::size_t maxBytes) const = 0;
};

/// LogStorage kept in memory, with the mutators a runtime needs. Used by the
/// simulator and by Memory-level servers; disk storage mirrors its behaviour.
class MemoryStorage : public LogStorage {
 public:
  MemoryStorage();

  HardState hardState() const override { return m_hardState; }
  SnapshotMeta snapshotMeta() const override { return m_snapshot; }
  Index firstIndex() const override { return m_entries.front().index + 1; }
  Index lastIndex() const override { return m_entries.back().index; }
  std::optional<Term> term(Index index) const override;
  std::vector<Entry> entries(Index from, Index to, std::size_t maxBytes) const override;
  std::string snapshotChunk(std::uint64_t offset, std::size_t maxBytes) const override;

  void setHardState(const HardState& state) { m_hardState = state; }
  /// Appends entries, replacing any existing suffix from entries.front().index.
  void append(const std::vector<Entry>& entries);
  /// Records a snapshot of the local state machine at meta.index (which must
  /// be in the log) and drops log entries up to meta.index - keepEntries.
  void takeSnapshot(const SnapshotMeta& meta, std::string data, Index keepEntries = 0);
  /// Replaces log and snapshot by a snapshot received from the leader. Entries
  /// after the snapshot that agree with it are kept.
  void installSnapshot(const SnapshotMeta& meta, std::string data);
  const std::string& snapshotData() const { return m_snapshotData; }
  /// Bytes of entry payload held, for compaction thresholds and reporting
  /// (a running total: cheap enough to ask after every batch).
  std::size_t logBytes() const { return m_bytes; }

 private:
  void recountBytes();

  HardState m_hardState;
  SnapshotMeta m_snapshot;
  std::string m_snapshotData;
  // m_entries[0] is a sentinel holding index and term of firstIndex() - 1;
  // entry i lives at m_entries[i - m_entries[0].index].
  std::vector<Entry> m_entries;
  std::size_t m_bytes = 0;
};

}  // namespace copycat::raft
