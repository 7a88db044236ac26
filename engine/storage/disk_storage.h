#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "engine/raft/node.h"
#include "engine/raft/storage.h"
#include "engine/storage/file_system.h"
#include "engine/storage/meta_store.h"
#include "engine/storage/segmented_log.h"
#include "engine/storage/shared_bytes.h"
#include "engine/storage/snapshot_store.h"
#include "engine/storage/storage_error.h"

namespace copycat::storage {

enum class StorageLevel : std::uint8_t {
  Disk,    // fsync before acknowledging; survives crashes
  Memory,  // RAM only, for tests
};

struct StorageOptions {
  StorageLevel level = StorageLevel::Disk;
  /// Disk: the storage directory (created if missing).
  std::string directory;
  /// Disk: the file layer; null uses PosixFileSystem::instance().
  FileSystem* fileSystem = nullptr;
  SegmentedLogOptions log;
  std::size_t keepSnapshots = 2;
  /// Receives recovery warnings of every component; null prints to stderr.
  WarningSink warn;
  /// Disk: removes superseded snapshot files off the calling thread (the
  /// runner and the file system must outlive the storage's jobs).
  BackgroundRunner background;
  /// When set, a directory of another cluster is refused and a fresh one is
  /// stamped with it.
  std::string clusterId;
};

/// What a storage did since it was opened, for benchmarks and the Lab.
struct StorageCounters {
  /// fdatasync of files plus fsync of directories (0 for Memory).
  std::uint64_t syncs = 0;
  /// persist() calls and the log entries they appended.
  std::uint64_t batches = 0;
  std::uint64_t entries = 0;
};

/// A local snapshot written by PersistentStorage::prepareSnapshot() and not
/// yet taken: Disk holds its durable file, Memory its data.
struct PreparedSnapshot {
  raft::SnapshotMeta meta;
  std::optional<SnapshotStore::SnapshotFile> file;
  std::string data;
};

/// raft::LogStorage plus the writes a runtime makes: persist() makes one
/// Ready batch durable (PERSIST BEFORE SEND: call it before sending the
/// batch's messages); takeSnapshot() records a local state machine snapshot
/// and compacts the log. Any exception from persist() means the batch is not
/// durable: the runtime must not send its messages and should stop the node.
class PersistentStorage : public raft::LogStorage {
 public:
  virtual StorageLevel level() const = 0;
  /// In order: stores ready.snapshotChunks (offset 0 restarts a receive) and
  /// installs ready.snapshot once complete, appends ready.entries (replacing a
  /// conflicting suffix), saves ready.hardState.
  virtual void persist(const raft::Ready& ready) = 0;
  /// Like persist(), but may leave the data sync of the appended entries to
  /// the returned job (empty: the batch is already durable). The job may run
  /// on another thread while this storage is read and written; the batch is
  /// durable once it returned, and it throws StorageError when the sync
  /// failed. Until then the saved commit index stays at or below the last
  /// index a sync covered. write() may be called again before the job ran:
  /// the newer job also makes the earlier batches durable, so running only
  /// the newest one is enough. Jobs run one at a time, in the order written,
  /// and every job due must have run before a persist() or write() that
  /// replaces entries.
  virtual std::function<void()> write(const raft::Ready& ready) {
    persist(ready);
    return {};
  }
  /// Records a snapshot at meta.index (in the log, after the latest snapshot)
  /// and drops log entries up to meta.index - keepEntries (whole segments on
  /// disk, so some may stay).
  virtual void takeSnapshot(const raft::SnapshotMeta& meta, std::string_view data,
                            raft::Index keepEntries = 0) = 0;
  /// takeSnapshot() in two halves, so that the slow one can leave the
  /// runtime's thread: prepareSnapshot() writes the data durably and may run
  /// on another thread while this storage is used (one at a time);
  /// adoptSnapshot() records it and compacts the log, on the owner's thread.
  /// adoptSnapshot() returns false, and drops the prepared snapshot, when
  /// the storage meanwhile got a snapshot at or above its index or no longer
  /// holds that index in its log (a snapshot installed from the leader).
  virtual PreparedSnapshot prepareSnapshot(const raft::SnapshotMeta& meta, std::string data) const {
    return {meta, std::nullopt, std::move(data)};
  }
  virtual bool adoptSnapshot(PreparedSnapshot prepared, raft::Index keepEntries = 0);
  /// The latest snapshot's data, for restoring the state machine. Any
  /// thread may read it, and it stays valid while this storage moves on.
  virtual SharedBytes snapshotBytes() const = 0;
  std::string snapshotData() const { return std::string(snapshotBytes().view()); }
  /// Bytes held by the log, for compaction thresholds.
  virtual std::uint64_t logBytes() const = 0;
  virtual StorageCounters counters() const = 0;
};

/// Opens storage of the requested level.
std::unique_ptr<PersistentStorage> openStorage(const StorageOptions& options);

/// The Disk level: SegmentedLog in <dir>/log, MetaStore in <dir>/meta,
/// SnapshotStore in <dir>/snapshots. Opening reconciles them (format.h,
/// RECOVERY) and throws StorageError when the node must not start. After a
/// failed persist() every later persist() throws. Not thread-safe, except
/// for the jobs write() returns and prepareSnapshot(), which may run on other
/// threads as documented there.
class DiskStorage : public PersistentStorage {
 public:
  explicit DiskStorage(const StorageOptions& options);
  ~DiskStorage() override;

  raft::HardState hardState() const override;
  raft::SnapshotMeta snapshotMeta() const override;
  raft::Index firstIndex() const override { return m_log->firstIndex(); }
  raft::Index lastIndex() const override { return m_log->lastIndex(); }
  std::optional<raft::Term> term(raft::Index index) const override;
  std::vector<raft::Entry> entries(raft::Index from, raft::Index to,
                                   std::size_t maxBytes) const override;
  std::string snapshotChunk(std::uint64_t offset, std::size_t maxBytes) const override;

  StorageLevel level() const override { return StorageLevel::Disk; }
  void persist(const raft::Ready& ready) override;
  std::function<void()> write(const raft::Ready& ready) override;
  void takeSnapshot(const raft::SnapshotMeta& meta, std::string_view data,
                    raft::Index keepEntries = 0) override;
  PreparedSnapshot prepareSnapshot(const raft::SnapshotMeta& meta, std::string data) const override;
  bool adoptSnapshot(PreparedSnapshot prepared, raft::Index keepEntries = 0) override;
  SharedBytes snapshotBytes() const override { return m_snapshots->latestBytes(); }
  std::uint64_t logBytes() const override { return m_log->bytes(); }
  StorageCounters counters() const override;

  const std::string& clusterId() const { return m_meta->meta().clusterId; }
  const SegmentedLog& log() const { return *m_log; }
  const SnapshotStore& snapshots() const { return *m_snapshots; }
  bool failed() const { return !m_failure.empty(); }

 private:
  void installReceived(const raft::SnapshotMeta& meta);
  /// Makes a written snapshot file the latest and compacts the log below it.
  void adoptFile(const SnapshotStore::SnapshotFile& file, raft::Index keepEntries);
  /// persist() and write(): returns the newest segment still to sync.
  std::shared_ptr<File> store(const raft::Ready& ready, bool syncEntries);
  void warn(const std::string& message) const;

  StorageOptions m_options;
  std::unique_ptr<CountingFileSystem> m_counting;
  FileSystem* m_fs;
  std::uint64_t m_batches = 0;
  std::uint64_t m_entries = 0;
  std::unique_ptr<SnapshotStore> m_snapshots;
  std::unique_ptr<SegmentedLog> m_log;
  std::unique_ptr<MetaStore> m_meta;
  // The last log index a sync covered (write()'s jobs set it on their thread).
  std::atomic<raft::Index> m_syncedThrough{0};
  std::string m_failure;
};

/// The Memory level: raft::MemoryStorage behind the same interface.
class MemoryLevelStorage : public PersistentStorage {
 public:
  raft::HardState hardState() const override { return m_memory.hardState(); }
  raft::SnapshotMeta snapshotMeta() const override { return m_memory.snapshotMeta(); }
  raft::Index firstIndex() const override { return m_memory.firstIndex(); }
  raft::Index lastIndex() const override { return m_memory.lastIndex(); }
  std::optional<raft::Term> term(raft::Index index) const override { return m_memory.term(index); }
  std::vector<raft::Entry> entries(raft::Index from, raft::Index to,
                                   std::size_t maxBytes) const override {
    return m_memory.entries(from, to, maxBytes);
  }
  std::string snapshotChunk(std::uint64_t offset, std::size_t maxBytes) const override {
    return m_memory.snapshotChunk(offset, maxBytes);
  }

  StorageLevel level() const override { return StorageLevel::Memory; }
  void persist(const raft::Ready& ready) override;
  void takeSnapshot(const raft::SnapshotMeta& meta, std::string_view data,
                    raft::Index keepEntries = 0) override {
    m_memory.takeSnapshot(meta, std::string(data), keepEntries);
  }
  SharedBytes snapshotBytes() const override { return SharedBytes(m_memory.snapshotData()); }
  std::uint64_t logBytes() const override { return m_memory.logBytes(); }
  StorageCounters counters() const override { return {0, m_batches, m_entries}; }

 private:
  raft::MemoryStorage m_memory;
  std::uint64_t m_batches = 0;
  std::uint64_t m_entries = 0;
  std::string m_incoming;
};

}  // namespace copycat::storage
