#include "engine/raft/storage.h"

#include <algorithm>
#include <stdexcept>

namespace copycat::raft {

MemoryStorage::MemoryStorage() { m_entries.push_back(Entry{}); }

std::optional<Term> MemoryStorage::term(Index index) const {
  const Index offset = m_entries.front().index;
  if (index < offset || index > lastIndex()) return std::nullopt;
  return m_entries[index - offset].term;
}

std::vector<Entry> MemoryStorage::entries(Index from, Index to, std::size_t maxBytes) const {
  const Index offset = m_entries.front().index;
  if (from <= offset || to > lastIndex() + 1 || from > to) {
    throw std::out_of_range("MemoryStorage::entries: range outside the log");
  }
  std::vector<Entry> out;
  std::size_t bytes = 0;
  for (Index i = from; i < to; ++i) {
    const Entry& entry = m_entries[i - offset];
    bytes += entry.byteSize();
    if (!out.empty() && bytes > maxBytes) break;
    out.push_back(entry);
  }
  return out;
}

std::string MemoryStorage::snapshotChunk(std::uint64_t offset, std::size_t maxBytes) const {
  if (offset >= m_snapshotData.size()) return {};
  return m_snapshotData.substr(offset, maxBytes);
}

void MemoryStorage::append(const std::vector<Entry>& entries) {
  if (entries.empty()) return;
  const Index offset = m_entries.front().index;
  const Index first = entries.front().index;
  if (first <= offset || first > lastIndex() + 1) {
    throw std::out_of_range("MemoryStorage::append: entries leave a gap or overwrite the snapshot");
  }
  for (std::size_t i = first - offset; i < m_entries.size(); ++i) {
    m_bytes -= m_entries[i].data.size();
  }
  m_entries.resize(first - offset);
  m_entries.insert(m_entries.end(), entries.begin(), entries.end());
  for (const Entry& entry : entries) m_bytes += entry.data.size();
}

void MemoryStorage::recountBytes() {
  m_bytes = 0;
  for (const Entry& entry : m_entries) m_bytes += entry.data.size();
}

void MemoryStorage::takeSnapshot(const SnapshotMeta& meta, std::string data, Index keepEntries) {
  const Index offset = m_entries.front().index;
  if (meta.index <= m_snapshot.index || meta.index > lastIndex() || meta.index < offset) {
    throw std::out_of_range("MemoryStorage::takeSnapshot: index outside the log");
  }
  m_snapshot = meta;
  m_snapshot.size = data.size();
  m_snapshotData = std::move(data);
  const Index compactTo = meta.index > keepEntries ? meta.index - keepEntries : 0;
  if (compactTo > offset) {
    m_entries.erase(m_entries.begin(),
                    m_entries.begin() + static_cast<std::ptrdiff_t>(compactTo - offset));
    Entry& sentinel = m_entries.front();
    sentinel.data.clear();
    sentinel.type = EntryType::Normal;
    sentinel.change = {};
    recountBytes();
  }
}

void MemoryStorage::installSnapshot(const SnapshotMeta& meta, std::string data) {
  const std::optional<Term> localTerm = term(meta.index);
  if (localTerm && *localTerm == meta.term) {
    const Index offset = m_entries.front().index;
    if (meta.index > offset) {
      m_entries.erase(m_entries.begin(),
                      m_entries.begin() + static_cast<std::ptrdiff_t>(meta.index - offset));
    }
  } else {
    m_entries.clear();
    m_entries.push_back(Entry{});
  }
  Entry& sentinel = m_entries.front();
  sentinel = Entry{};
  sentinel.index = meta.index;
  sentinel.term = meta.term;
  m_snapshot = meta;
  m_snapshot.size = data.size();
  m_snapshotData = std::move(data);
  if (m_hardState.commit < meta.index) m_hardState.commit = meta.index;
  recountBytes();
}

}  // namespace copycat::raft
