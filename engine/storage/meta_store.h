#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "engine/raft/types.h"
#include "engine/storage/file_system.h"
#include "engine/storage/storage_error.h"

namespace copycat::storage {

/// What MetaStore keeps: the Raft hard state and the cluster id.
struct PersistentMeta {
  raft::HardState hardState;
  std::string clusterId;

  friend bool operator==(const PersistentMeta&, const PersistentMeta&) = default;
};

/// Term, vote, commit index and cluster id in one file of two checksummed,
/// sequence-numbered slots (format.h). Opening uses the valid slot with the
/// highest sequence; one corrupt slot is reported through `warn`; both
/// corrupt throws StorageError: it never silently restarts at term 0. A
/// missing file is created (both slots valid) only when `create` is true.
///
/// save() fdatasyncs whenever term, vote or cluster id change. A change of
/// the commit index alone is written without sync: commit is advisory (a
/// restarted node relearns it from the leader, and Raft only needs it to be
/// a lower bound of what is committed, which any older value is), and the
/// unsynced write never touches the slot holding the newest synced copy, so
/// a crash can lose at most commit progress. After an I/O error the store
/// refuses further saves. Not thread-safe.
class MetaStore {
 public:
  MetaStore(FileSystem& fs, std::string path, bool create, WarningSink warn = {});
  ~MetaStore();

  const PersistentMeta& meta() const { return m_meta; }
  const raft::HardState& hardState() const { return m_meta.hardState; }
  /// Writes `meta` if it differs from the stored one (see the class comment
  /// for when it syncs). Returns true when it synced.
  bool save(const PersistentMeta& meta);
  bool save(const raft::HardState& state);
  /// Forces the current state to disk with a sync (used before shutdown).
  void sync();
  bool failed() const { return !m_failure.empty(); }
  const std::string& path() const { return m_path; }

 private:
  void write(bool durable);

  FileSystem& m_fs;
  std::string m_path;
  WarningSink m_warn;
  std::unique_ptr<File> m_file;
  PersistentMeta m_meta;
  std::uint64_t m_sequence = 0;
  int m_syncedSlot = 0;
  std::string m_failure;
};

}  // namespace copycat::storage
