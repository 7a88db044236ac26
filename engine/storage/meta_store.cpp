#include "engine/storage/meta_store.h"

#include <iostream>

#include "engine/storage/format.h"

namespace copycat::storage {

MetaStore::MetaStore(FileSystem& fs, std::string path, bool create, WarningSink warnSink)
    : m_fs(fs), m_path(std::move(path)), m_warn(std::move(warnSink)) {
  const std::string directory = parentDirectory(m_path);
  const std::string temporary = m_path + ".tmp";
  if (m_fs.exists(temporary)) m_fs.remove(temporary);
  if (!m_fs.exists(m_path)) {
    if (!create) throw StorageError("meta file " + m_path + " is missing");
    {
      std::unique_ptr<File> file = m_fs.open(temporary, OpenMode::CreateTruncate);
      char slots[2 * format::kMetaSlotSize];
      format::encodeMetaSlot({1, 0, raft::kNoNode, 0, {}}, slots);
      format::encodeMetaSlot({2, 0, raft::kNoNode, 0, {}}, slots + format::kMetaSlotSize);
      file->pwrite(slots, sizeof slots, 0);
      file->sync();
    }
    m_fs.rename(temporary, m_path);
    m_fs.syncDirectory(directory);
  }
  m_file = m_fs.open(m_path, OpenMode::Existing);
  char slots[2 * format::kMetaSlotSize] = {};
  const std::size_t got = m_file->pread(slots, sizeof slots, 0);
  std::optional<format::MetaSlot> copies[2];
  for (int i = 0; i < 2; ++i) {
    const std::size_t start = i * format::kMetaSlotSize;
    if (got > start)
      copies[i] =
          format::decodeMetaSlot(slots + start, std::min(got - start, format::kMetaSlotSize));
  }
  if (!copies[0] && !copies[1]) {
    throw StorageError(
        "meta file " + m_path + ": both copies (offsets 0 and " +
        std::to_string(format::kMetaSlotSize) + ", " + std::to_string(got) +
        " bytes read) are corrupt; refusing to start rather than forget term and vote");
  }
  int chosen = !copies[1] ? 0 : !copies[0] ? 1 : copies[1]->sequence > copies[0]->sequence ? 1 : 0;
  if (!copies[1 - chosen]) {
    const std::string message = "meta file " + m_path + ": copy at offset " +
                                std::to_string((1 - chosen) * format::kMetaSlotSize) +
                                " is corrupt; using the copy at offset " +
                                std::to_string(chosen * format::kMetaSlotSize) + " (sequence " +
                                std::to_string(copies[chosen]->sequence) + ")";
    if (m_warn) {
      m_warn(message);
    } else {
      std::cerr << "copycat storage warning: " << message << '\n';
    }
  }
  const format::MetaSlot& slot = *copies[chosen];
  m_meta.hardState = {slot.term, slot.vote, slot.commit};
  m_meta.clusterId = slot.clusterId;
  m_sequence = slot.sequence;
  // The chosen copy may be an unsynced commit-only write of the previous run
  // still in the page cache: sync it, so it really is the synced copy the
  // next write must not overwrite.
  m_file->sync();
  m_syncedSlot = chosen;
}

MetaStore::~MetaStore() = default;

bool MetaStore::save(const raft::HardState& state) {
  PersistentMeta meta = m_meta;
  meta.hardState = state;
  return save(meta);
}

bool MetaStore::save(const PersistentMeta& meta) {
  if (meta == m_meta) return false;
  if (meta.clusterId.size() > format::kMaxClusterId) {
    throw StorageError("meta file " + m_path + ": cluster id longer than " +
                       std::to_string(format::kMaxClusterId) + " bytes");
  }
  const bool durable = meta.hardState.term != m_meta.hardState.term ||
                       meta.hardState.vote != m_meta.hardState.vote ||
                       meta.clusterId != m_meta.clusterId;
  const PersistentMeta previous = m_meta;
  m_meta = meta;
  try {
    write(durable);
  } catch (...) {
    m_meta = previous;
    throw;
  }
  return durable;
}

void MetaStore::sync() { write(true); }

void MetaStore::write(bool durable) {
  if (failed())
    throw StorageError("meta file " + m_path +
                       " refuses writes after an earlier failure: " + m_failure);
  const int slot = 1 - m_syncedSlot;
  char bytes[format::kMetaSlotSize];
  format::encodeMetaSlot({m_sequence + 1, m_meta.hardState.term, m_meta.hardState.vote,
                          m_meta.hardState.commit, m_meta.clusterId},
                         bytes);
  try {
    m_file->pwrite(bytes, sizeof bytes, static_cast<std::uint64_t>(slot) * format::kMetaSlotSize);
    if (durable) m_file->sync();
  } catch (const StorageError& error) {
    m_failure = error.what();
    throw;
  }
  ++m_sequence;
  if (durable) m_syncedSlot = slot;
}

}  // namespace copycat::storage
