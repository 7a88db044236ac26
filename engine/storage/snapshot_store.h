#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "engine/raft/types.h"
#include "engine/storage/file_system.h"
#include "engine/storage/storage_error.h"

namespace copycat::storage {

/// State machine snapshots in one directory (format.h). A snapshot is written
/// to a temporary file, fdatasync'ed, renamed and the directory fsync'ed, so a
/// crash leaves either the old or the new snapshot. Opening removes stale
/// temporary files and verifies every snapshot (header checksum, size, data
/// checksum); a damaged one is renamed *.corrupt with a warning and never
/// used. The newest `keep` snapshots (by index) are kept. A snapshot arriving
/// in chunks is assembled in a temporary file and installed only once its
/// size, and its checksum when the sender supplied one, match; its chunks
/// are not synced one by one (a crash restarts the transfer). Not
/// thread-safe.
class SnapshotStore {
 public:
  /// Superseded snapshot files are removed through `background` (their
  /// removal can take milliseconds of file system work).
  SnapshotStore(FileSystem& fs, std::string directory, std::size_t keep = 2, WarningSink warn = {},
                BackgroundRunner background = {});
  ~SnapshotStore();
  SnapshotStore(const SnapshotStore&) = delete;
  SnapshotStore& operator=(const SnapshotStore&) = delete;

  bool empty() const { return m_snapshots.empty(); }
  /// The newest snapshot's meta (meta.size is its data size); empty if none.
  raft::SnapshotMeta latest() const;
  /// XXH3 of the newest snapshot's data (0 if none).
  std::uint64_t latestChecksum() const;
  /// Metas of the kept snapshots, oldest first.
  std::vector<raft::SnapshotMeta> snapshots() const;

  /// One snapshot file on disk: a kept one, or one prepare() wrote and
  /// adopt() has not taken yet.
  struct SnapshotFile {
    raft::SnapshotMeta meta;  // meta.size is the data size
    std::uint64_t checksum = 0;
    std::uint64_t headerSize = 0;
    std::string path;
  };

  /// Writes a complete snapshot durably; it becomes the latest. meta.size is
  /// set from data. Same as adopt(prepare(meta, data)).
  void write(const raft::SnapshotMeta& meta, std::string_view data);
  /// The slow half of write(): writes the snapshot file, syncs it, renames it
  /// into place and syncs the directory, without changing what this store
  /// serves. It touches nothing else of the store, so it may run on another
  /// thread while the owner goes on using the store (one prepare() at a
  /// time, and not for the index and term of a snapshot being received). A
  /// crash after it leaves a complete snapshot that opening finds.
  SnapshotFile prepare(const raft::SnapshotMeta& meta, std::string_view data) const;
  /// Makes a prepared snapshot one of the kept ones (the latest unless a
  /// newer one is kept) and prunes the oldest. Owner thread.
  void adopt(const SnapshotFile& prepared);
  /// Removes a prepared snapshot that will not be adopted.
  void discard(const SnapshotFile& prepared);
  /// Up to maxBytes of the latest snapshot's data from `offset`.
  std::string readChunk(std::uint64_t offset, std::size_t maxBytes) const;
  /// The latest snapshot's data, valid after this store moves on to a newer
  /// snapshot or removes the file (File::view: mapped, not copied).
  SharedBytes latestBytes() const;
  std::string readAll() const;

  /// Starts (or restarts) receiving `meta.size` bytes for `meta`.
  void beginReceive(const raft::SnapshotMeta& meta,
                    std::optional<std::uint64_t> expectedChecksum = std::nullopt);
  /// Stores data at `offset`, which must be the number of bytes received so
  /// far (an exact repeat of an earlier chunk is ignored).
  void receiveChunk(std::uint64_t offset, std::string_view data);
  bool receiving() const { return m_receive != nullptr; }
  std::uint64_t received() const;
  /// Verifies the received data and installs it as the latest snapshot.
  raft::SnapshotMeta finishReceive();
  void abortReceive();

  /// Test hook: called with "temp-written", "temp-synced", "renamed" and
  /// "directory-synced" as a snapshot file is written or installed; it may
  /// throw to stop the write at that step (crash tests).
  void setStepObserver(std::function<void(const char* step)> observer) {
    m_stepObserver = std::move(observer);
  }

 private:
  struct Receive;

  std::optional<SnapshotFile> verify(const std::string& path) const;
  /// Renames a synced temporary file to stored.path and syncs the directory.
  void publish(const std::string& temporary, const SnapshotFile& stored) const;
  void prune();
  void warn(const std::string& message) const;

  FileSystem& m_fs;
  std::string m_directory;
  std::size_t m_keep;
  WarningSink m_warn;
  BackgroundRunner m_background;
  std::vector<SnapshotFile> m_snapshots;  // sorted by (index, term)
  std::unique_ptr<File> m_latestFile;
  std::unique_ptr<Receive> m_receive;
  std::function<void(const char*)> m_stepObserver;
};

}  // namespace copycat::storage
