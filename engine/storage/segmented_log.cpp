#include "engine/storage/segmented_log.h"

#include <algorithm>
#include <iostream>
#include <stdexcept>
#include <tuple>

#include "engine/storage/format.h"

namespace copycat::storage {

using raft::Entry;
using raft::Index;
using raft::Term;

namespace {

std::string describeBadFrame(const char* in, std::size_t length, Index expected, Term lastTerm) {
  using namespace format;
  if (length < kFrameHeaderSize + kEntryFixedBody) return "truncated frame header";
  const std::uint32_t body = get32(in);
  if (body < kEntryFixedBody || body > kEntryFixedBody + kMaxPayload) {
    return "frame length " + std::to_string(body) + " out of bounds";
  }
  if (length - kFrameHeaderSize < body) return "frame cut short";
  const std::optional<FrameView> frame = checkFrame(in, length);
  if (!frame) return "checksum mismatch or invalid entry type";
  if (frame->index != expected) return "unexpected index " + std::to_string(frame->index);
  if (frame->term < lastTerm) return "term " + std::to_string(frame->term) + " goes backwards";
  return "invalid frame";
}

}  // namespace

SegmentedLog::SegmentedLog(FileSystem& fs, std::string directory, SegmentedLogOptions options,
                           Index firstIndexIfEmpty, Term prevTermIfEmpty)
    : m_fs(fs), m_directory(std::move(directory)), m_options(std::move(options)) {
  while (m_directory.size() > 1 && m_directory.back() == '/') m_directory.pop_back();
  if (m_options.maxSegmentEntries == 0) m_options.maxSegmentEntries = 1;
  load(firstIndexIfEmpty, prevTermIfEmpty);
}

SegmentedLog::~SegmentedLog() = default;

void SegmentedLog::warn(const std::string& message) const {
  if (m_options.warn) {
    m_options.warn(message);
  } else {
    std::cerr << "copycat storage warning: " << message << '\n';
  }
}

void SegmentedLog::load(Index firstIndexIfEmpty, Term prevTermIfEmpty) {
  m_fs.createDirectories(m_directory);
  std::vector<std::pair<std::uint64_t, std::string>> files;
  for (const std::string& name : m_fs.list(m_directory)) {
    const std::string path = joinPath(m_directory, name);
    if (name.ends_with(".tmp")) {
      warn("removing stale temporary file " + path);
      m_fs.remove(path);
      continue;
    }
    if (const auto id = format::parseSegmentFileName(name)) files.emplace_back(*id, path);
  }
  std::sort(files.begin(), files.end());
  for (std::size_t i = 0; i < files.size(); ++i) {
    Segment segment;
    segment.id = files[i].first;
    segment.path = files[i].second;
    loadSegment(segment, i + 1 == files.size(), m_segments.empty() ? nullptr : &m_segments.back());
    m_segments.push_back(std::move(segment));
  }
  m_scratch.clear();
  m_scratch.shrink_to_fit();
  if (m_segments.empty()) {
    createSegment(1, firstIndexIfEmpty, prevTermIfEmpty);
  } else {
    preallocate(m_segments.back());
  }
}

void SegmentedLog::preallocate(Segment& segment) {
  if (!m_options.preallocate || !segment.file) return;
  if (segment.file->size() >= m_options.maxSegmentBytes) return;
  if (segment.file->reserve(m_options.maxSegmentBytes)) segment.file->sync();
}

void SegmentedLog::trimClosed(Segment& segment) {
  if (segment.file && segment.file->size() > segment.end) {
    segment.file->truncate(segment.end);
    segment.file->sync();
  }
}

void SegmentedLog::loadSegment(Segment& segment, bool newest, const Segment* previous) {
  segment.file = m_fs.open(segment.path, OpenMode::Existing);
  const std::uint64_t size = segment.file->size();
  // The file is scanned through a reused window of at least kWindow bytes:
  // no per-segment allocation, so opening is bound by checksumming.
  constexpr std::size_t kWindow = 4u << 20;
  std::uint64_t windowStart = 0;
  std::uint64_t windowEnd = 0;
  auto view = [&](std::uint64_t position,
                  std::uint64_t need) -> std::pair<const char*, std::size_t> {
    need = std::min(need, size - position);
    if (position < windowStart || position + need > windowEnd) {
      const std::size_t want = static_cast<std::size_t>(
          std::min<std::uint64_t>(std::max<std::uint64_t>(need, kWindow), size - position));
      if (m_scratch.size() < want) m_scratch.resize(want);
      const std::size_t got = segment.file->pread(m_scratch.data(), want, position);
      windowStart = position;
      windowEnd = position + got;
    }
    return {m_scratch.data() + (position - windowStart),
            static_cast<std::size_t>(windowEnd - position)};
  };

  const auto [headerBytes, headerLength] = view(0, format::kSegmentHeaderSize);
  const auto header = format::decodeSegmentHeader(headerBytes, headerLength);
  if (!header || header->id != segment.id) {
    throw StorageError("segment " + segment.path + ": invalid segment header at offset 0" +
                       (previous
                            ? " (index " + std::to_string(previous->lastIndex() + 1) + " expected)"
                            : std::string()));
  }
  segment.firstIndex = header->firstIndex;
  segment.prevTerm = header->prevTerm;
  if (previous != nullptr && (segment.firstIndex != previous->lastIndex() + 1 ||
                              segment.prevTerm != previous->lastTerm())) {
    throw StorageError("segment " + segment.path + ": starts at index " +
                       std::to_string(segment.firstIndex) + " after term " +
                       std::to_string(segment.prevTerm) + " at offset 0 but the previous segment " +
                       previous->path + " ends at index " + std::to_string(previous->lastIndex()) +
                       " term " + std::to_string(previous->lastTerm()));
  }

  constexpr std::uint64_t minFrame = format::kFrameHeaderSize + format::kEntryFixedBody;
  std::uint64_t position = format::kSegmentHeaderSize;
  Index expected = segment.firstIndex;
  Term lastTerm = segment.prevTerm;
  while (position < size) {
    auto [bytes, available] = view(position, minFrame);
    if (available >= 4) {
      const std::uint64_t body = format::get32(bytes);
      if (body <= format::kEntryFixedBody + format::kMaxPayload &&
          format::kFrameHeaderSize + body > available) {
        std::tie(bytes, available) = view(position, format::kFrameHeaderSize + body);
      }
    }
    const auto frame = format::checkFrame(bytes, available);
    if (!frame || frame->index != expected || frame->term < lastTerm) break;
    segment.positions.push_back({position, frame->term});
    lastTerm = frame->term;
    ++expected;
    position += frame->size;
  }
  segment.end = position;
  if (position == size) return;

  const auto [rest, restLength] = view(position, size - position);
  if (std::all_of(rest, rest + restLength, [](char byte) { return byte == 0; }) &&
      restLength == size - position) {
    // Preallocated space never written: the newest segment keeps it; an
    // older one was not trimmed before a crash, and is now.
    if (!newest) {
      segment.file->truncate(position);
      segment.file->sync();
    }
    return;
  }
  const std::string problem = describeBadFrame(rest, restLength, expected, lastTerm);
  const std::string where = "segment " + segment.path + ": bad entry at offset " +
                            std::to_string(position) + " (index " + std::to_string(expected) +
                            "): " + problem;
  if (!newest) throw StorageError(where + "; the segment is closed, refusing to open the log");
  // A tail is torn only when no valid frame of a later entry follows it.
  for (std::size_t scan = 1; scan + minFrame <= restLength; ++scan) {
    const std::uint32_t body = format::get32(rest + scan);
    if (body < format::kEntryFixedBody || scan + format::kFrameHeaderSize + body > restLength)
      continue;
    const Index index = format::get64(rest + scan + 20);
    if (index < expected || index > expected + restLength / minFrame) continue;
    if (const auto later = format::checkFrame(rest + scan, restLength - scan)) {
      throw StorageError(where + "; a valid entry (index " + std::to_string(later->index) +
                         ") follows at offset " + std::to_string(position + scan) +
                         ", so this is corruption, not a torn tail");
    }
  }
  warn("segment " + segment.path + ": torn tail at offset " + std::to_string(position) +
       " (index " + std::to_string(expected) + ", " + problem + "); truncated " +
       std::to_string(size - position) + " bytes");
  segment.file->truncate(position);
  segment.file->sync();
}

void SegmentedLog::createSegment(std::uint64_t id, Index firstIndex, Term prevTerm) {
  Segment segment;
  segment.id = id;
  segment.firstIndex = firstIndex;
  segment.prevTerm = prevTerm;
  segment.path = joinPath(m_directory, format::segmentFileName(id));
  const std::string temporary = segment.path + ".tmp";
  {
    std::unique_ptr<File> file = m_fs.open(temporary, OpenMode::CreateTruncate);
    char header[format::kSegmentHeaderSize];
    format::encodeSegmentHeader({id, firstIndex, prevTerm}, header);
    file->pwrite(header, sizeof header, 0);
    file->sync();
  }
  m_fs.rename(temporary, segment.path);
  m_fs.syncDirectory(m_directory);
  segment.file = m_fs.open(segment.path, OpenMode::Existing);
  segment.end = format::kSegmentHeaderSize;
  segment.zeroedEnd = segment.end;
  preallocate(segment);
  m_segments.push_back(std::move(segment));
}

void SegmentedLog::removeSegmentFile(const Segment& segment) {
  m_fs.remove(segment.path);
  m_fs.syncDirectory(m_directory);
}

Index SegmentedLog::firstIndex() const { return m_segments.front().firstIndex; }

Index SegmentedLog::lastIndex() const { return m_segments.back().lastIndex(); }

const SegmentedLog::Segment& SegmentedLog::segmentFor(Index index) const {
  auto it = std::upper_bound(m_segments.begin(), m_segments.end(), index,
                             [](Index i, const Segment& s) { return i < s.firstIndex; });
  return *(it - 1);
}

std::optional<Term> SegmentedLog::term(Index index) const {
  if (index + 1 == firstIndex()) return m_segments.front().prevTerm;
  if (index < firstIndex() || index > lastIndex()) return std::nullopt;
  const Segment& segment = segmentFor(index);
  return segment.positions[index - segment.firstIndex].term;
}

Entry SegmentedLog::entry(Index index) const { return entries(index, index + 1).front(); }

std::vector<Entry> SegmentedLog::entries(Index from, Index to, std::size_t maxBytes) const {
  if (from < firstIndex() || to > lastIndex() + 1 || from > to) {
    throw std::out_of_range("SegmentedLog::entries: [" + std::to_string(from) + ", " +
                            std::to_string(to) + ") outside the log [" +
                            std::to_string(firstIndex()) + ", " + std::to_string(lastIndex() + 1) +
                            ")");
  }
  std::vector<Entry> out;
  std::size_t bytes = 0;
  Index index = from;
  std::string buffer;
  constexpr std::size_t overhead = format::kFrameHeaderSize + format::kEntryFixedBody;
  while (index < to) {
    const Segment& segment = segmentFor(index);
    const std::size_t first = index - segment.firstIndex;
    std::size_t last = first;  // exclusive
    const std::size_t limit =
        std::min<std::size_t>(segment.positions.size(), to - segment.firstIndex);
    bool full = false;
    while (last < limit) {
      const std::uint64_t frame = segment.endOf(last) - segment.positions[last].offset;
      bytes += frame - overhead + 24;
      if ((!out.empty() || last > first) && bytes > maxBytes) {
        full = true;
        break;
      }
      ++last;
    }
    if (last > first && !m_tail.empty() && segment.firstIndex + first >= m_tail.front().index) {
      const auto cached = m_tail.begin() + static_cast<std::ptrdiff_t>(segment.firstIndex + first -
                                                                       m_tail.front().index);
      out.insert(out.end(), cached, cached + static_cast<std::ptrdiff_t>(last - first));
      index = segment.firstIndex + last;
    } else if (last > first) {
      const std::uint64_t start = segment.positions[first].offset;
      const std::uint64_t span = segment.endOf(last - 1) - start;
      buffer.resize(span);
      if (segment.file->pread(buffer.data(), span, start) != span) {
        throw StorageError("segment " + segment.path + ": short read at offset " +
                           std::to_string(start));
      }
      for (std::size_t i = first; i < last; ++i) {
        const std::uint64_t offset = segment.positions[i].offset - start;
        const auto frame = format::checkFrame(buffer.data() + offset, span - offset);
        if (!frame || frame->index != segment.firstIndex + i) {
          throw StorageError("segment " + segment.path + ": entry at offset " +
                             std::to_string(segment.positions[i].offset) + " (index " +
                             std::to_string(segment.firstIndex + i) + ") is corrupt on read");
        }
        out.push_back(format::decodeEntry(buffer.data() + offset));
      }
      index = segment.firstIndex + last;
    }
    if (full) break;
  }
  return out;
}

void SegmentedLog::checkWritable() const {
  if (failed())
    throw StorageError("log " + m_directory +
                       " refuses writes after an earlier failure: " + m_failure);
}

template <typename F>
auto SegmentedLog::guarded(F&& body) -> decltype(body()) {
  checkWritable();
  try {
    return body();
  } catch (const StorageError& error) {
    m_failure = error.what();
    m_tail.clear();
    m_tailBytes = 0;
    throw;
  }
}

void SegmentedLog::cacheTail(const std::vector<Entry>& batch) {
  if (m_options.tailCacheBytes == 0 || batch.empty()) return;
  if (!m_tail.empty() && m_tail.back().index + 1 != batch.front().index) {
    m_tail.clear();
    m_tailBytes = 0;
  }
  for (const Entry& entry : batch) {
    m_tail.push_back(entry);
    m_tailBytes += entry.byteSize();
  }
  while (!m_tail.empty() && m_tailBytes > m_options.tailCacheBytes) {
    m_tailBytes -= m_tail.front().byteSize();
    m_tail.pop_front();
  }
}

void SegmentedLog::uncacheFrom(Index from) {
  while (!m_tail.empty() && m_tail.back().index >= from) {
    m_tailBytes -= m_tail.back().byteSize();
    m_tail.pop_back();
  }
}

Index SegmentedLog::append(const std::vector<Entry>& batch) {
  write(batch, true);
  return lastIndex();
}

std::shared_ptr<File> SegmentedLog::appendUnsynced(const std::vector<Entry>& batch) {
  return write(batch, false);
}

std::shared_ptr<File> SegmentedLog::write(const std::vector<Entry>& batch, bool syncLast) {
  if (batch.empty()) return nullptr;
  checkWritable();
  const Index first = batch.front().index;
  if (first < firstIndex() || first > lastIndex() + 1) {
    throw std::invalid_argument("SegmentedLog::append: first index " + std::to_string(first) +
                                " outside [" + std::to_string(firstIndex()) + ", " +
                                std::to_string(lastIndex() + 1) + "]");
  }
  for (std::size_t i = 1; i < batch.size(); ++i) {
    if (batch[i].index != first + i || batch[i].term < batch[i - 1].term) {
      throw std::invalid_argument(
          "SegmentedLog::append: entries not consecutive or terms decrease at index " +
          std::to_string(batch[i].index));
    }
    if (batch[i].data.size() > format::kMaxPayload)
      throw std::invalid_argument("SegmentedLog::append: entry too large");
  }
  if (batch.front().data.size() > format::kMaxPayload)
    throw std::invalid_argument("SegmentedLog::append: entry too large");
  if (first <= lastIndex()) truncateSuffix(first);
  if (batch.front().term < m_segments.back().lastTerm()) {
    throw std::invalid_argument("SegmentedLog::append: term of index " + std::to_string(first) +
                                " is lower than the term before it");
  }
  return guarded([&] {
    std::string buffer;
    std::vector<Position> positions;
    std::size_t i = 0;
    while (i < batch.size()) {
      Segment* segment = &m_segments.back();
      const std::uint64_t frame = format::frameSize(batch[i]);
      if (!segment->positions.empty() &&
          (segment->end + frame > m_options.maxSegmentBytes ||
           segment->positions.size() >= m_options.maxSegmentEntries)) {
        // A segment is closed durable, also when an earlier batch left it
        // unsynced.
        if (m_unsyncedSegment) m_unsyncedSegment->sync();
        m_unsyncedSegment.reset();
        trimClosed(*segment);
        createSegment(segment->id + 1, segment->lastIndex() + 1, segment->lastTerm());
        segment = &m_segments.back();
      }
      buffer.clear();
      positions.clear();
      std::uint64_t end = segment->end;
      std::size_t count = segment->positions.size();
      while (i < batch.size()) {
        const std::uint64_t size = format::frameSize(batch[i]);
        if (count > 0 &&
            (end + size > m_options.maxSegmentBytes || count >= m_options.maxSegmentEntries))
          break;
        positions.push_back({end, batch[i].term});
        format::encodeEntry(batch[i], buffer);
        end += size;
        ++count;
        ++i;
      }
      if (m_options.preallocate && m_options.zeroAheadBytes > 0 &&
          segment->zeroedEnd < m_options.maxSegmentBytes &&
          end + m_options.zeroAheadBytes / 2 > segment->zeroedEnd) {
        const std::uint64_t zeroedEnd =
            std::min(m_options.maxSegmentBytes, end + m_options.zeroAheadBytes);
        if (zeroedEnd > end) buffer.resize(buffer.size() + (zeroedEnd - end), '\0');
        segment->zeroedEnd = std::max(zeroedEnd, end);
      }
      segment->file->pwrite(buffer.data(), buffer.size(), segment->end);
      if (syncLast) {
        segment->file->sync();
        m_unsyncedSegment.reset();
      } else {
        m_unsyncedSegment = segment->file;
      }
      segment->positions.insert(segment->positions.end(), positions.begin(), positions.end());
      segment->end = end;
    }
    cacheTail(batch);
    return m_unsyncedSegment;
  });
}

void SegmentedLog::truncateSuffix(Index from) {
  if (from > lastIndex()) return;
  if (from < firstIndex()) {
    throw std::invalid_argument("SegmentedLog::truncateSuffix: index " + std::to_string(from) +
                                " is before the first index " + std::to_string(firstIndex()));
  }
  uncacheFrom(from);
  guarded([&] {
    while (m_segments.size() > 1 && m_segments.back().firstIndex >= from) {
      removeSegmentFile(m_segments.back());
      m_segments.pop_back();
    }
    Segment& segment = m_segments.back();
    const std::size_t keep = from - segment.firstIndex;
    if (keep < segment.positions.size()) {
      const std::uint64_t offset = segment.positions[keep].offset;
      segment.file->truncate(offset);
      segment.file->sync();
      segment.positions.resize(keep);
      segment.end = offset;
      segment.zeroedEnd = offset;
      preallocate(segment);
    }
  });
}

void SegmentedLog::compactPrefix(Index upTo) {
  guarded([&] {
    std::size_t remove = 0;
    while (remove + 1 < m_segments.size() && m_segments[remove].lastIndex() <= upTo) {
      removeSegmentFile(m_segments[remove]);
      ++remove;
    }
    m_segments.erase(m_segments.begin(), m_segments.begin() + static_cast<std::ptrdiff_t>(remove));
  });
}

void SegmentedLog::reset(Index nextIndex, Term prevTerm) {
  const std::uint64_t id = m_segments.back().id + 1;
  m_tail.clear();
  m_tailBytes = 0;
  try {
    guarded([&] {
      while (!m_segments.empty()) {
        removeSegmentFile(m_segments.back());
        m_segments.pop_back();
      }
      createSegment(id, nextIndex, prevTerm);
    });
  } catch (const StorageError&) {
    if (m_segments.empty()) {
      // Keep the (failed) log answerable: an empty segment with no file.
      Segment stub;
      stub.id = id;
      stub.firstIndex = nextIndex;
      stub.prevTerm = prevTerm;
      m_segments.push_back(std::move(stub));
    }
    throw;
  }
}

std::uint64_t SegmentedLog::bytes() const {
  std::uint64_t total = 0;
  for (const Segment& segment : m_segments) total += segment.end;
  return total;
}

}  // namespace copycat::storage
