#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "engine/raft/types.h"
#include "engine/storage/file_system.h"
#include "engine/storage/storage_error.h"

namespace copycat::storage {

struct SegmentedLogOptions {
  /// A segment is closed once the next frame would make it larger than this
  /// (a single larger entry still gets a segment of its own).
  std::uint64_t maxSegmentBytes = 32u << 20;
  std::uint64_t maxSegmentEntries = 1u << 20;
  /// Allocates each new segment file to maxSegmentBytes (zeros) up front, so
  /// that an append's fdatasync does not also have to change the file size,
  /// and writes real zeros zeroAheadBytes ahead of the appends, in the same
  /// write as a batch: an fdatasync then rarely has to record newly written
  /// extents as well (on ext4 a preallocated, never written block costs a
  /// journal commit on its first sync).
  bool preallocate = true;
  std::uint64_t zeroAheadBytes = 1u << 20;
  /// The newest entries are also kept in memory, up to this many bytes
  /// (Entry::byteSize), and entries() serves them from there: committed
  /// entries and replication to followers that keep up never read the file
  /// back. 0 keeps none.
  std::size_t tailCacheBytes = 8u << 20;
  /// Receives recovery warnings; null prints them to stderr.
  WarningSink warn;
};

/// The Raft log on disk, in segment files (format.h). Open rebuilds an
/// in-memory index of (offset, term) per entry and repairs a torn tail of the
/// newest segment; any other damage makes the constructor throw StorageError
/// naming file, offset and index. Payloads stay on disk and are read back
/// with pread, except the newest ones appended since opening
/// (options.tailCacheBytes). append() writes a batch with one write and one
/// fdatasync per segment touched and returns the durable last index; entries
/// are visible only once durable (appendUnsynced() hands the last fdatasync
/// to the caller). After any I/O error in a mutating call the log is failed:
/// that call and every later mutating call throw, and nothing that was not
/// synced is ever reported. Not thread-safe.
class SegmentedLog {
 public:
  /// Opens the log in `directory` (created if missing). An empty directory
  /// starts a log whose first entry will be `firstIndexIfEmpty`, with
  /// `prevTermIfEmpty` the term of the entry before it.
  SegmentedLog(FileSystem& fs, std::string directory, SegmentedLogOptions options = {},
               raft::Index firstIndexIfEmpty = 1, raft::Term prevTermIfEmpty = 0);
  ~SegmentedLog();
  SegmentedLog(const SegmentedLog&) = delete;
  SegmentedLog& operator=(const SegmentedLog&) = delete;

  raft::Index firstIndex() const;
  /// firstIndex() - 1 when the log is empty.
  raft::Index lastIndex() const;
  /// Term of `index` for firstIndex() - 1 <= index <= lastIndex().
  std::optional<raft::Term> term(raft::Index index) const;
  /// Entries [from, to), stopping once maxBytes (Entry::byteSize) is exceeded,
  /// at least one. Requires firstIndex() <= from <= to <= lastIndex() + 1.
  std::vector<raft::Entry> entries(raft::Index from, raft::Index to,
                                   std::size_t maxBytes = SIZE_MAX) const;
  raft::Entry entry(raft::Index index) const;

  /// Appends consecutive entries; when the first index is <= lastIndex() the
  /// conflicting suffix is truncated first. Returns the durable last index.
  raft::Index append(const std::vector<raft::Entry>& batch);
  /// Like append() but leaves out the fdatasync of the segment written last
  /// (segments the batch closes are synced here, also with what earlier
  /// unsynced appends left in them). The batch is visible at once and
  /// durable only after the returned file (null: nothing written) was
  /// synced, which may happen on another thread, concurrently with later
  /// calls; that sync also makes every earlier unsynced append durable. The
  /// file stays valid even if its segment is removed.
  std::shared_ptr<File> appendUnsynced(const std::vector<raft::Entry>& batch);
  /// Removes entries >= from (from >= firstIndex()).
  void truncateSuffix(raft::Index from);
  /// Deletes whole segments whose entries are all <= upTo. The newest segment
  /// is always kept.
  void compactPrefix(raft::Index upTo);
  /// Drops every entry; the log restarts at `nextIndex` after `prevTerm`.
  void reset(raft::Index nextIndex, raft::Term prevTerm);

  bool failed() const { return !m_failure.empty(); }
  const std::string& failure() const { return m_failure; }
  std::size_t segmentCount() const { return m_segments.size(); }
  /// Bytes of segment files, headers included.
  std::uint64_t bytes() const;
  const std::string& directory() const { return m_directory; }

 private:
  struct Position {
    std::uint64_t offset;
    raft::Term term;
  };
  struct Segment {
    std::uint64_t id = 0;
    raft::Index firstIndex = 1;
    raft::Term prevTerm = 0;
    std::string path;
    std::shared_ptr<File> file;
    std::vector<Position> positions;
    std::uint64_t end = 0;
    /// Bytes [0, zeroedEnd) hold frames or written zeros (never unwritten
    /// preallocated space).
    std::uint64_t zeroedEnd = 0;

    raft::Index lastIndex() const { return firstIndex + positions.size() - 1; }
    raft::Term lastTerm() const { return positions.empty() ? prevTerm : positions.back().term; }
    std::uint64_t endOf(std::size_t i) const {
      return i + 1 < positions.size() ? positions[i + 1].offset : end;
    }
  };

  void load(raft::Index firstIndexIfEmpty, raft::Term prevTermIfEmpty);
  void loadSegment(Segment& segment, bool newest, const Segment* previous);
  /// Allocates the newest segment to its full size (options.preallocate).
  void preallocate(Segment& segment);
  /// Cuts a segment's unused preallocated space before a newer one starts.
  void trimClosed(Segment& segment);
  void createSegment(std::uint64_t id, raft::Index firstIndex, raft::Term prevTerm);
  void removeSegmentFile(const Segment& segment);
  const Segment& segmentFor(raft::Index index) const;
  void checkWritable() const;
  std::shared_ptr<File> write(const std::vector<raft::Entry>& batch, bool syncLast);
  void warn(const std::string& message) const;
  /// Keeps copies of a batch just written as the newest cached entries.
  void cacheTail(const std::vector<raft::Entry>& batch);
  /// Drops cached entries from `from` on.
  void uncacheFrom(raft::Index from);
  template <typename F>
  auto guarded(F&& body) -> decltype(body());

  FileSystem& m_fs;
  std::string m_directory;
  SegmentedLogOptions m_options;
  std::vector<Segment> m_segments;
  // The newest segment an appendUnsynced() left to sync, if any.
  std::shared_ptr<File> m_unsyncedSegment;
  std::vector<char> m_scratch;  // read window while opening
  // Entries [m_tail.front().index, lastIndex()], consecutive, or none.
  std::deque<raft::Entry> m_tail;
  std::size_t m_tailBytes = 0;
  std::string m_failure;
};

}  // namespace copycat::storage
