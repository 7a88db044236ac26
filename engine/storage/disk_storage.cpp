#include "engine/storage/disk_storage.h"

#include <algorithm>
#include <iostream>
#include <stdexcept>

namespace copycat::storage {

using raft::Index;
using raft::SnapshotMeta;
using raft::Term;

namespace {

/// Whether a snapshot at meta.index can be taken now: after the latest one
/// and inside the log (entries up to it may already be compacted).
bool canTakeSnapshot(const raft::LogStorage& storage, const SnapshotMeta& meta) {
  return meta.index > storage.snapshotMeta().index && meta.index <= storage.lastIndex() &&
         meta.index + 1 >= storage.firstIndex();
}

}  // namespace

std::unique_ptr<PersistentStorage> openStorage(const StorageOptions& options) {
  if (options.level == StorageLevel::Memory) return std::make_unique<MemoryLevelStorage>();
  return std::make_unique<DiskStorage>(options);
}

DiskStorage::DiskStorage(const StorageOptions& options)
    : m_options(options),
      m_counting(std::make_unique<CountingFileSystem>(
          options.fileSystem != nullptr ? *options.fileSystem : PosixFileSystem::instance())),
      m_fs(m_counting.get()) {
  if (m_options.directory.empty()) throw StorageError("DiskStorage: no directory given");
  if (!m_options.log.warn) m_options.log.warn = m_options.warn;
  m_fs->createDirectories(m_options.directory);
  const std::string metaPath = joinPath(m_options.directory, "meta");
  const bool metaExists = m_fs->exists(metaPath);

  m_snapshots = std::make_unique<SnapshotStore>(*m_fs, joinPath(m_options.directory, "snapshots"),
                                                m_options.keepSnapshots, m_options.warn,
                                                m_options.background);
  const SnapshotMeta snapshot = m_snapshots->latest();
  m_log = std::make_unique<SegmentedLog>(*m_fs, joinPath(m_options.directory, "log"), m_options.log,
                                         snapshot.index + 1, snapshot.term);
  if (!metaExists && (!m_snapshots->empty() || m_log->lastIndex() >= m_log->firstIndex() ||
                      m_log->firstIndex() != 1)) {
    throw StorageError("storage " + m_options.directory + ": meta file " + metaPath +
                       " is missing but the log or snapshots are not empty; refusing to start "
                       "without the persisted term and vote");
  }
  m_meta = std::make_unique<MetaStore>(*m_fs, metaPath, !metaExists, m_options.warn);

  if (!m_options.clusterId.empty()) {
    if (m_meta->meta().clusterId.empty()) {
      PersistentMeta meta = m_meta->meta();
      meta.clusterId = m_options.clusterId;
      m_meta->save(meta);
    } else if (m_meta->meta().clusterId != m_options.clusterId) {
      throw StorageError("storage " + m_options.directory + " belongs to cluster '" +
                         m_meta->meta().clusterId + "', not '" + m_options.clusterId + "'");
    }
  }

  if (!snapshot.isEmpty()) {
    if (m_log->firstIndex() > snapshot.index + 1) {
      throw StorageError("storage " + m_options.directory + ": the log starts at index " +
                         std::to_string(m_log->firstIndex()) +
                         " but the latest usable snapshot ends at " +
                         std::to_string(snapshot.index) + "; entries in between are lost");
    }
    const std::optional<Term> logTerm = m_log->term(snapshot.index);
    if (!logTerm || *logTerm != snapshot.term) {
      warn("storage " + m_options.directory + ": the log does not contain snapshot " +
           std::to_string(snapshot.index) + " (term " + std::to_string(snapshot.term) +
           "); restarting the log after it");
      m_log->reset(snapshot.index + 1, snapshot.term);
    }
  }
  m_syncedThrough.store(m_log->lastIndex());
  const Index commit = hardState().commit;
  if (commit > m_log->lastIndex()) {
    throw StorageError("storage " + m_options.directory + ": commit index " +
                       std::to_string(commit) + " is beyond the last log index " +
                       std::to_string(m_log->lastIndex()));
  }
}

DiskStorage::~DiskStorage() = default;

void DiskStorage::warn(const std::string& message) const {
  if (m_options.warn) {
    m_options.warn(message);
  } else {
    std::cerr << "copycat storage warning: " << message << '\n';
  }
}

raft::HardState DiskStorage::hardState() const {
  raft::HardState state = m_meta->hardState();
  state.commit = std::max(state.commit, m_snapshots->latest().index);
  return state;
}

std::optional<Term> DiskStorage::term(Index index) const {
  const SnapshotMeta snapshot = m_snapshots->latest();
  if (!snapshot.isEmpty() && index == snapshot.index) return snapshot.term;
  return m_log->term(index);
}

std::vector<raft::Entry> DiskStorage::entries(Index from, Index to, std::size_t maxBytes) const {
  return m_log->entries(from, to, maxBytes);
}

std::string DiskStorage::snapshotChunk(std::uint64_t offset, std::size_t maxBytes) const {
  return m_snapshots->readChunk(offset, maxBytes);
}

void DiskStorage::installReceived(const SnapshotMeta& meta) {
  if (!m_snapshots->receiving()) {
    throw StorageError("storage " + m_options.directory + ": asked to install snapshot " +
                       std::to_string(meta.index) + " that was not received");
  }
  m_snapshots->finishReceive();
  const std::optional<Term> logTerm = m_log->term(meta.index);
  if (logTerm && *logTerm == meta.term) {
    m_log->compactPrefix(meta.index);
  } else {
    m_log->reset(meta.index + 1, meta.term);
    m_syncedThrough.store(meta.index);
  }
}

raft::SnapshotMeta DiskStorage::snapshotMeta() const {
  raft::SnapshotMeta meta = m_snapshots->latest();
  meta.checksum = m_snapshots->latestChecksum();
  return meta;
}

void DiskStorage::persist(const raft::Ready& ready) { store(ready, true); }

std::function<void()> DiskStorage::write(const raft::Ready& ready) {
  std::shared_ptr<File> unsynced = store(ready, false);
  if (!unsynced) return {};
  return [this, unsynced = std::move(unsynced), last = m_log->lastIndex()] {
    unsynced->sync();
    m_syncedThrough.store(last);
  };
}

std::shared_ptr<File> DiskStorage::store(const raft::Ready& ready, bool syncEntries) {
  if (failed()) {
    throw StorageError("storage " + m_options.directory +
                       " refuses writes after an earlier failure: " + m_failure);
  }
  try {
    for (const raft::SnapshotChunk& chunk : ready.snapshotChunks) {
      if (chunk.offset == 0) {
        m_snapshots->beginReceive(
            chunk.meta, chunk.meta.checksum != 0 ? std::optional<std::uint64_t>(chunk.meta.checksum)
                                                 : std::nullopt);
      }
      m_snapshots->receiveChunk(chunk.offset, chunk.data);
    }
    if (ready.snapshot) installReceived(*ready.snapshot);
    std::shared_ptr<File> unsynced;
    // The commit index saved while entries are unsynced must not point past
    // what a crash keeps: the entries before this batch that a sync covered.
    raft::Index durableLast = std::min(m_syncedThrough.load(), m_log->lastIndex());
    if (!ready.entries.empty()) {
      durableLast = std::min(durableLast, ready.entries.front().index - 1);
      if (syncEntries) {
        m_log->append(ready.entries);
        m_syncedThrough.store(m_log->lastIndex());
        durableLast = m_log->lastIndex();
      } else {
        unsynced = m_log->appendUnsynced(ready.entries);
      }
    }
    ++m_batches;
    m_entries += ready.entries.size();
    if (ready.hardState || ready.snapshot) {
      raft::HardState state = ready.hardState ? *ready.hardState : m_meta->hardState();
      if (ready.snapshot) state.commit = std::max(state.commit, ready.snapshot->index);
      state.commit = std::max(std::min(state.commit, durableLast), m_meta->hardState().commit);
      m_meta->save(state);
    }
    return unsynced;
  } catch (const StorageError& error) {
    m_failure = error.what();
    throw;
  }
}

StorageCounters DiskStorage::counters() const {
  return {m_counting->fileSyncs() + m_counting->directorySyncs(), m_batches, m_entries};
}

void DiskStorage::takeSnapshot(const SnapshotMeta& meta, std::string_view data, Index keepEntries) {
  if (!canTakeSnapshot(*this, meta)) {
    const SnapshotMeta current = m_snapshots->latest();
    throw std::out_of_range("DiskStorage::takeSnapshot: index " + std::to_string(meta.index) +
                            " outside the log or not after snapshot " +
                            std::to_string(current.index));
  }
  adoptFile(m_snapshots->prepare(meta, data), keepEntries);
}

void DiskStorage::adoptFile(const SnapshotStore::SnapshotFile& file, Index keepEntries) {
  m_snapshots->adopt(file);
  m_log->compactPrefix(file.meta.index > keepEntries ? file.meta.index - keepEntries : 0);
}

bool PersistentStorage::adoptSnapshot(PreparedSnapshot prepared, Index keepEntries) {
  if (!canTakeSnapshot(*this, prepared.meta)) return false;
  takeSnapshot(prepared.meta, prepared.data, keepEntries);
  return true;
}

PreparedSnapshot DiskStorage::prepareSnapshot(const SnapshotMeta& meta, std::string data) const {
  PreparedSnapshot prepared;
  prepared.file = m_snapshots->prepare(meta, data);
  prepared.meta = prepared.file->meta;
  return prepared;
}

bool DiskStorage::adoptSnapshot(PreparedSnapshot prepared, Index keepEntries) {
  if (!prepared.file) throw std::invalid_argument("DiskStorage::adoptSnapshot: not prepared here");
  if (!canTakeSnapshot(*this, prepared.meta)) {
    m_snapshots->discard(*prepared.file);
    return false;
  }
  adoptFile(*prepared.file, keepEntries);
  return true;
}

void MemoryLevelStorage::persist(const raft::Ready& ready) {
  ++m_batches;
  m_entries += ready.entries.size();
  for (const raft::SnapshotChunk& chunk : ready.snapshotChunks) {
    if (chunk.offset == 0) m_incoming.clear();
    if (chunk.offset != m_incoming.size()) {
      throw StorageError("memory storage: snapshot chunk at offset " +
                         std::to_string(chunk.offset) + " but " +
                         std::to_string(m_incoming.size()) + " bytes received");
    }
    m_incoming += chunk.data;
  }
  if (ready.snapshot) {
    if (m_incoming.size() != ready.snapshot->size) {
      throw StorageError("memory storage: snapshot " + std::to_string(ready.snapshot->index) +
                         " has " + std::to_string(m_incoming.size()) + " of " +
                         std::to_string(ready.snapshot->size) + " bytes");
    }
    m_memory.installSnapshot(*ready.snapshot, std::move(m_incoming));
    m_incoming.clear();
  }
  if (!ready.entries.empty()) m_memory.append(ready.entries);
  if (ready.hardState) {
    raft::HardState state = *ready.hardState;
    state.commit = std::max(state.commit, m_memory.snapshotMeta().index);
    m_memory.setHardState(state);
  }
}

}  // namespace copycat::storage
