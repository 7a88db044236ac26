#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "engine/storage/shared_bytes.h"
#include "engine/storage/storage_error.h"

namespace copycat::storage {

/// An open file. Every failure throws StorageError naming the path (and the
/// offset for positional calls). Writes are durable only after sync(); a
/// file's creation or rename is durable only after syncDirectory() of its
/// directory. One thread at a time.
class File {
 public:
  virtual ~File() = default;

  virtual const std::string& path() const = 0;
  /// Current logical size in bytes (including writes not yet synced).
  virtual std::uint64_t size() const = 0;
  /// Reads up to `length` bytes at `offset`; returns fewer only at end of file.
  virtual std::size_t pread(void* buffer, std::size_t length, std::uint64_t offset) const = 0;
  /// The `length` bytes at `offset`, which must lie inside the file, as
  /// bytes that stay valid after this file is closed, renamed or removed; the
  /// file must not be written or truncated in that range meanwhile. A file
  /// on disk maps the range (read in before it returns, so that a read error
  /// throws here) and copies nothing; the default reads it into memory.
  virtual SharedBytes view(std::uint64_t offset, std::size_t length) const;
  /// Writes all of `length` bytes at `offset` (extending the file if needed).
  virtual void pwrite(const void* buffer, std::size_t length, std::uint64_t offset) = 0;
  /// Writes at the end of the file.
  void append(const void* buffer, std::size_t length) { pwrite(buffer, length, size()); }
  virtual void truncate(std::uint64_t size) = 0;
  /// fdatasync: the file's data and size are durable when it returns.
  virtual void sync() = 0;
  /// Best effort: makes the file at least `size` bytes long, the new bytes
  /// zero, with their blocks allocated, so that later writes inside it (and
  /// their syncs) change no file size. Returns whether it did; the default
  /// does nothing.
  virtual bool reserve(std::uint64_t /*size*/) { return false; }
  /// Best effort: starts writing `length` bytes at `offset` to the disk
  /// without waiting, so that a later sync() has less left to do. Durability
  /// still needs sync(). The default does nothing.
  virtual void startWriteback(std::uint64_t /*offset*/, std::uint64_t /*length*/) {}
};

enum class OpenMode : std::uint8_t {
  Existing,        // the file must exist
  CreateOrOpen,    // created empty when missing
  CreateTruncate,  // created, or emptied when it exists
};

/// The file operations storage needs, so that tests and the simulator can put
/// a crash-simulating layer under the same code. Paths are plain strings.
class FileSystem {
 public:
  virtual ~FileSystem() = default;

  virtual std::unique_ptr<File> open(const std::string& path, OpenMode mode) = 0;
  virtual bool exists(const std::string& path) = 0;
  /// Atomically replaces `to` by `from` (POSIX rename).
  virtual void rename(const std::string& from, const std::string& to) = 0;
  virtual void remove(const std::string& path) = 0;
  /// Names (not paths) of the entries of `directory`, sorted, without . and ..
  virtual std::vector<std::string> list(const std::string& directory) = 0;
  /// fsync of the directory: creations, renames and removals in it are durable.
  virtual void syncDirectory(const std::string& directory) = 0;
  /// mkdir -p; each directory it creates is durable when it returns.
  virtual void createDirectories(const std::string& directory) = 0;
};

/// Real files through POSIX calls with real fdatasync/fsync. Every error
/// becomes a StorageError naming the path, the offset and strerror(errno).
class PosixFileSystem : public FileSystem {
 public:
  std::unique_ptr<File> open(const std::string& path, OpenMode mode) override;
  bool exists(const std::string& path) override;
  void rename(const std::string& from, const std::string& to) override;
  void remove(const std::string& path) override;
  std::vector<std::string> list(const std::string& directory) override;
  void syncDirectory(const std::string& directory) override;
  void createDirectories(const std::string& directory) override;

  /// A process-wide instance, for callers that do not inject a file system.
  static PosixFileSystem& instance();
};

/// Counts the syncs (file fdatasync and directory fsync) and file reads made
/// through it and forwards everything to another file system. The counters
/// may be read from any thread.
class CountingFileSystem : public FileSystem {
 public:
  explicit CountingFileSystem(FileSystem& inner) : m_inner(inner) {}

  std::unique_ptr<File> open(const std::string& path, OpenMode mode) override;
  bool exists(const std::string& path) override { return m_inner.exists(path); }
  void rename(const std::string& from, const std::string& to) override { m_inner.rename(from, to); }
  void remove(const std::string& path) override { m_inner.remove(path); }
  std::vector<std::string> list(const std::string& directory) override {
    return m_inner.list(directory);
  }
  void syncDirectory(const std::string& directory) override;
  void createDirectories(const std::string& directory) override {
    m_inner.createDirectories(directory);
  }

  /// fdatasync calls on files opened through this file system.
  std::uint64_t fileSyncs() const { return m_fileSyncs.load(std::memory_order_relaxed); }
  /// fsync calls on directories.
  std::uint64_t directorySyncs() const { return m_directorySyncs.load(std::memory_order_relaxed); }
  /// Reads (pread and view calls) on files opened through this file system.
  std::uint64_t fileReads() const { return m_fileReads.load(std::memory_order_relaxed); }
  /// Bytes passed to pwrite on files opened through this file system.
  std::uint64_t bytesWritten() const { return m_bytesWritten.load(std::memory_order_relaxed); }

 private:
  class CountingFile;

  FileSystem& m_inner;
  std::atomic<std::uint64_t> m_fileSyncs{0};
  std::atomic<std::uint64_t> m_directorySyncs{0};
  std::atomic<std::uint64_t> m_fileReads{0};
  std::atomic<std::uint64_t> m_bytesWritten{0};
};

/// "directory/name" (no doubled slash).
std::string joinPath(const std::string& directory, const std::string& name);
/// The directory part of `path` ("." when there is none).
std::string parentDirectory(const std::string& path);
/// StorageError for a failed system call: "<operation> <path>[ at offset N]: strerror".
[[noreturn]] void throwSystemError(const std::string& operation, const std::string& path,
                                   int errorNumber, std::int64_t offset = -1);

}  // namespace copycat::storage
