#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "engine/storage/file_system.h"

namespace copycat::storage {

/// What crash() keeps of the writes that were not made durable.
struct CrashOptions {
  /// Undo file creations, renames and removals that no syncDirectory() of
  /// their directory followed (as a power cut may). When false they survive.
  bool undoUnsyncedNamespaceChanges = true;
  /// Unset: every unsynced write is lost. Set: each file keeps a random prefix
  /// (from this seed) of its unsynced writes in order, the last kept write
  /// possibly cut short, which leaves torn tails like a real power cut.
  std::optional<std::uint64_t> tornWritesSeed;
};

/// A FileSystem over real files that simulates power loss, for tests and the
/// simulator's disk-backed mode. Data written to a file stays in memory (and
/// is visible to reads through any handle) until File::sync() writes it to
/// the real file; crash() discards it, and undoes unsynced namespace changes
/// per CrashOptions. Directories themselves are created durably. Faults can be
/// injected: ENOSPC once a byte budget of writes is used up, EIO on the Nth
/// File::sync() (whose buffered writes are then lost, like dropped dirty
/// pages). After crash() every handle opened before it is dead (its calls
/// throw EIO) and all faults are cleared. Thread-safe.
class CrashableFileSystem : public FileSystem {
 public:
  CrashableFileSystem();
  ~CrashableFileSystem() override;

  std::unique_ptr<File> open(const std::string& path, OpenMode mode) override;
  bool exists(const std::string& path) override;
  void rename(const std::string& from, const std::string& to) override;
  void remove(const std::string& path) override;
  std::vector<std::string> list(const std::string& directory) override;
  void syncDirectory(const std::string& directory) override;
  void createDirectories(const std::string& directory) override;

  /// Simulates a power cut (see CrashOptions).
  void crash(const CrashOptions& options = {});
  /// Writes fail with ENOSPC once `bytes` more bytes have been written; the
  /// write crossing the limit is applied partially.
  void failWritesAfterBytes(std::uint64_t bytes) {
    std::lock_guard lock(m_mutex);
    m_writeBudget = bytes;
  }
  /// The `n`th File::sync() from now (1 = the next) fails with EIO.
  void failSyncNumber(std::uint64_t n) {
    std::lock_guard lock(m_mutex);
    m_failSyncAt = m_syncs + n;
  }
  void clearFaults();
  /// File::sync() calls so far (successful or not).
  std::uint64_t syncCount() const { return m_syncs; }
  /// Also fdatasync/fsync the real files on sync (off: crashes are simulated,
  /// so real durability is not needed and tests run faster).
  void setRealSync(bool enabled) {
    std::lock_guard lock(m_mutex);
    m_realSync = enabled;
  }

  struct FileState;

 private:
  friend class CrashableFile;
  struct NamespaceChange {
    enum class Kind : std::uint8_t { Create, Rename, Remove };
    Kind kind = Kind::Create;
    std::string path;    // the created, renamed-to or removed path
    std::string from;    // Rename: the old name
    std::string backup;  // the replaced (Rename) or removed (Remove) file, kept until synced
  };

  void write(FileState& state, const std::string& path, const void* buffer, std::size_t length,
             std::uint64_t offset);
  void sync(FileState& state, const std::string& path);
  std::string backupName(const std::string& directory);
  void moveState(const std::string& from, const std::string& to);
  void recordChange(const std::string& directory, NamespaceChange change);

  PosixFileSystem m_base;
  std::map<std::string, std::shared_ptr<FileState>> m_files;
  std::map<std::string, std::vector<NamespaceChange>> m_unsynced;
  std::optional<std::uint64_t> m_writeBudget;
  std::optional<std::uint64_t> m_failSyncAt;
  std::uint64_t m_syncs = 0;
  std::uint64_t m_backups = 0;
  bool m_realSync = false;
  /// Every call holds it: a runtime syncs on its own thread.
  mutable std::recursive_mutex m_mutex;
};

}  // namespace copycat::storage
