#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "engine/raft/storage.h"
#include "engine/raft/types.h"

namespace copycat::raft {

/// The core's whole view of the log: what storage holds plus the entries and
/// the snapshot not yet handed to the runtime for persistence ("unstable").
/// Tracks the commit and applied indexes. Internal to the core.
class RaftLog {
 public:
  explicit RaftLog(const LogStorage& storage);

  Index firstIndex() const;
  Index lastIndex() const;
  Term lastTerm() const { return term(lastIndex()).value_or(0); }
  /// Term at `index`, or nullopt when it is compacted away or beyond the end.
  std::optional<Term> term(Index index) const;
  bool matchTerm(Index index, Term term) const;
  /// Entries [from, lastIndex] limited by count and bytes (at least one);
  /// nullopt when `from` is compacted away.
  std::optional<std::vector<Entry>> entriesFrom(Index from, std::size_t maxCount,
                                                std::size_t maxBytes) const;
  /// Entries [from, to) in full; nullopt when part of it is compacted away.
  std::optional<std::vector<Entry>> slice(Index from, Index to) const;

  /// Section 5.4.1: a candidate's log is at least as up to date as ours.
  bool isUpToDate(Index lastIndex, Term lastTerm) const;

  /// Appends new entries after the last one (leader side).
  void append(std::vector<Entry> entries);
  /// Follower side of AppendEntries: returns the last index known to match
  /// the leader, or nullopt when (prevIndex, prevTerm) does not match.
  /// `truncatedFrom` reports the first index replaced, 0 when none.
  std::optional<Index> maybeAppend(Index prevIndex, Term prevTerm,
                                   const std::vector<Entry>& entries, Index& truncatedFrom);
  /// Fast backtracking: the largest index <= `index` whose term is <= `term`.
  Index findConflictByTerm(Index index, Term term) const;

  Index committed() const { return m_committed; }
  Index applied() const { return m_applied; }
  void commitTo(Index index);
  /// Commits `index` if it holds an entry of `term` (the leader's rule).
  bool maybeCommit(Index index, Term term);
  void setApplied(Index index) { m_applied = index; }

  /// Replaces the log by a snapshot received from the leader.
  void restore(const SnapshotMeta& meta);

  // ----- hand-over to the runtime -----
  const std::vector<Entry>& unstableEntries() const { return m_unstable; }
  const std::optional<SnapshotMeta>& unstableSnapshot() const { return m_unstableSnapshot; }
  /// The last index the runtime has persisted (entries after it are
  /// unstable; with an unstable snapshot, that snapshot's index).
  Index stableLastIndex() const { return m_unstableOffset - 1; }
  /// The runtime persisted entries up to (index, term) and the snapshot.
  void stableTo(Index index, Term term);
  void stableSnapshotTo(Index index);

 private:
  const LogStorage& m_storage;
  std::optional<SnapshotMeta> m_unstableSnapshot;
  std::vector<Entry> m_unstable;
  Index m_unstableOffset = 1;  // index of m_unstable[0]
  Index m_committed = 0;
  Index m_applied = 0;
};

}  // namespace copycat::raft
