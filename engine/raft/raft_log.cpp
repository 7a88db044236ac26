#include "engine/raft/raft_log.h"

#include <algorithm>
#include <stdexcept>
#include <string>

namespace copycat::raft {

RaftLog::RaftLog(const LogStorage& storage) : m_storage(storage) {
  m_unstableOffset = storage.lastIndex() + 1;
  const Index snapshotIndex = storage.snapshotMeta().index;
  m_committed = std::max(storage.hardState().commit, snapshotIndex);
  if (m_committed > storage.lastIndex()) {
    throw std::logic_error("RaftLog: persisted commit index " + std::to_string(m_committed) +
                           " is beyond the last persisted entry " +
                           std::to_string(storage.lastIndex()));
  }
  m_applied = snapshotIndex;
}

Index RaftLog::firstIndex() const {
  if (m_unstableSnapshot) return m_unstableSnapshot->index + 1;
  return m_storage.firstIndex();
}

Index RaftLog::lastIndex() const {
  if (!m_unstable.empty()) return m_unstableOffset + m_unstable.size() - 1;
  if (m_unstableSnapshot) return m_unstableSnapshot->index;
  return m_unstableOffset - 1;
}

std::optional<Term> RaftLog::term(Index index) const {
  if (index == 0) return Term{0};
  if (index >= m_unstableOffset) {
    if (index - m_unstableOffset < m_unstable.size())
      return m_unstable[index - m_unstableOffset].term;
    if (m_unstable.empty() && m_unstableSnapshot && index == m_unstableSnapshot->index) {
      return m_unstableSnapshot->term;
    }
    return std::nullopt;
  }
  if (m_unstableSnapshot) {
    if (index == m_unstableSnapshot->index) return m_unstableSnapshot->term;
    return std::nullopt;
  }
  return m_storage.term(index);
}

bool RaftLog::matchTerm(Index index, Term expected) const {
  const std::optional<Term> actual = term(index);
  return actual && *actual == expected;
}

std::optional<std::vector<Entry>> RaftLog::entriesFrom(Index from, std::size_t maxCount,
                                                       std::size_t maxBytes) const {
  const Index last = lastIndex();
  if (from > last) return std::vector<Entry>{};
  if (from < firstIndex()) return std::nullopt;
  const Index to = std::min<Index>(last + 1, from + std::max<std::size_t>(maxCount, 1));
  std::vector<Entry> out;
  std::size_t bytes = 0;
  if (from < m_unstableOffset) {
    out = m_storage.entries(from, std::min(to, m_unstableOffset), maxBytes);
    for (const Entry& entry : out) bytes += entry.byteSize();
    if (out.back().index + 1 < std::min(to, m_unstableOffset)) return out;
  }
  for (Index i = std::max(from, m_unstableOffset); i < to; ++i) {
    const Entry& entry = m_unstable[i - m_unstableOffset];
    bytes += entry.byteSize();
    if (!out.empty() && bytes > maxBytes) break;
    out.push_back(entry);
  }
  return out;
}

std::optional<std::vector<Entry>> RaftLog::slice(Index from, Index to) const {
  if (from >= to) return std::vector<Entry>{};
  if (from < firstIndex() || to > lastIndex() + 1) return std::nullopt;
  std::vector<Entry> out;
  out.reserve(to - from);
  if (from < m_unstableOffset) {
    out = m_storage.entries(from, std::min(to, m_unstableOffset), SIZE_MAX);
  }
  for (Index i = std::max(from, m_unstableOffset); i < to; ++i) {
    out.push_back(m_unstable[i - m_unstableOffset]);
  }
  return out;
}

bool RaftLog::isUpToDate(Index candidateLast, Term candidateTerm) const {
  const Term ourTerm = lastTerm();
  return candidateTerm > ourTerm || (candidateTerm == ourTerm && candidateLast >= lastIndex());
}

void RaftLog::append(std::vector<Entry> entries) {
  if (entries.empty()) return;
  const Index first = entries.front().index;
  if (first != lastIndex() + 1) {
    throw std::logic_error("RaftLog::append: entry " + std::to_string(first) + " does not follow " +
                           std::to_string(lastIndex()));
  }
  if (m_unstable.empty()) m_unstableOffset = first;
  for (Entry& entry : entries) m_unstable.push_back(std::move(entry));
}

std::optional<Index> RaftLog::maybeAppend(Index prevIndex, Term prevTerm,
                                          const std::vector<Entry>& entries, Index& truncatedFrom) {
  truncatedFrom = 0;
  if (!matchTerm(prevIndex, prevTerm)) return std::nullopt;
  const Index lastNew = prevIndex + entries.size();
  // First entry that is new or conflicts with ours.
  std::size_t firstNew = entries.size();
  for (std::size_t i = 0; i < entries.size(); ++i) {
    if (!matchTerm(entries[i].index, entries[i].term)) {
      firstNew = i;
      break;
    }
  }
  if (firstNew == entries.size()) return lastNew;
  const Index conflict = entries[firstNew].index;
  if (conflict <= m_committed) {
    throw std::logic_error("RaftLog: entry " + std::to_string(conflict) +
                           " conflicts with the committed log (commit " +
                           std::to_string(m_committed) + ")");
  }
  if (conflict <= lastIndex()) truncatedFrom = conflict;
  // Drop our suffix from `conflict` on, then append the rest.
  if (conflict >= m_unstableOffset) {
    m_unstable.resize(conflict - m_unstableOffset);
  } else {
    // The conflict lies in storage: everything from `conflict` is replaced,
    // the runtime overwrites that suffix when it persists the new entries.
    m_unstable.clear();
    m_unstableOffset = conflict;
  }
  if (m_unstable.empty()) m_unstableOffset = conflict;
  m_unstable.insert(m_unstable.end(), entries.begin() + static_cast<std::ptrdiff_t>(firstNew),
                    entries.end());
  return lastNew;
}

Index RaftLog::findConflictByTerm(Index index, Term wanted) const {
  const Index last = lastIndex();
  if (index > last) return index;
  while (true) {
    const std::optional<Term> t = term(index);
    if (!t || *t <= wanted || index == 0) return index;
    --index;
  }
}

void RaftLog::commitTo(Index index) {
  if (index <= m_committed) return;
  if (index > lastIndex()) {
    throw std::logic_error("RaftLog::commitTo " + std::to_string(index) + " beyond last index " +
                           std::to_string(lastIndex()));
  }
  m_committed = index;
}

bool RaftLog::maybeCommit(Index index, Term currentTerm) {
  if (index > m_committed && matchTerm(index, currentTerm)) {
    commitTo(index);
    return true;
  }
  return false;
}

void RaftLog::restore(const SnapshotMeta& meta) {
  m_unstableSnapshot = meta;
  m_unstable.clear();
  m_unstableOffset = meta.index + 1;
  m_committed = meta.index;
}

void RaftLog::stableTo(Index index, Term stableTerm) {
  if (index < m_unstableOffset || m_unstable.empty()) return;
  const Index position = index - m_unstableOffset;
  if (position >= m_unstable.size() || m_unstable[position].term != stableTerm) return;
  m_unstable.erase(m_unstable.begin(),
                   m_unstable.begin() + static_cast<std::ptrdiff_t>(position + 1));
  m_unstableOffset = index + 1;
}

void RaftLog::stableSnapshotTo(Index index) {
  if (m_unstableSnapshot && m_unstableSnapshot->index == index) m_unstableSnapshot.reset();
}

}  // namespace copycat::raft
