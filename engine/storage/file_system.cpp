#include "engine/storage/file_system.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace copycat::storage {

std::string joinPath(const std::string& directory, const std::string& name) {
  if (directory.empty()) return name;
  if (directory.back() == '/') return directory + name;
  return directory + "/" + name;
}

std::string parentDirectory(const std::string& path) {
  const std::size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

void throwSystemError(const std::string& operation, const std::string& path, int errorNumber,
                      std::int64_t offset) {
  std::string message = operation + " " + path;
  if (offset >= 0) message += " at offset " + std::to_string(offset);
  message += ": ";
  message += std::strerror(errorNumber);
  throw StorageError(message, errorNumber);
}

SharedBytes File::view(std::uint64_t offset, std::size_t length) const {
  std::string bytes(length, '\0');
  if (pread(bytes.data(), length, offset) != length) {
    throw StorageError("read " + path() + " at offset " + std::to_string(offset) + ": " +
                       std::to_string(length) + " bytes asked past the end of the file");
  }
  return SharedBytes(std::move(bytes));
}

namespace {

/// A read-only mapping of part of a file, unmapped when the last view of it
/// goes.
struct FileMapping {
  void* address = nullptr;
  std::size_t length = 0;
  FileMapping(void* mappedAddress, std::size_t mappedLength)
      : address(mappedAddress), length(mappedLength) {}
  FileMapping(const FileMapping&) = delete;
  FileMapping& operator=(const FileMapping&) = delete;
  ~FileMapping() { ::munmap(address, length); }
};

class PosixFile : public File {
 public:
  PosixFile(std::string path, int fd, std::uint64_t size)
      : m_path(std::move(path)), m_fd(fd), m_size(size) {}
  ~PosixFile() override { ::close(m_fd); }

  const std::string& path() const override { return m_path; }
  std::uint64_t size() const override { return m_size; }

  std::size_t pread(void* buffer, std::size_t length, std::uint64_t offset) const override {
    auto* out = static_cast<char*>(buffer);
    std::size_t done = 0;
    while (done < length) {
      const ssize_t n = ::pread(m_fd, out + done, length - done, static_cast<off_t>(offset + done));
      if (n < 0) {
        if (errno == EINTR) continue;
        throwSystemError("read", m_path, errno, static_cast<std::int64_t>(offset + done));
      }
      if (n == 0) break;
      done += static_cast<std::size_t>(n);
    }
    return done;
  }

  /// Maps the range instead of copying it: the first touch of hundreds of
  /// megabytes of fresh memory costs a page fault per page (several times
  /// the copy, far more in a virtual machine), while the file's pages are
  /// already in the page cache. MADV_POPULATE_READ reads the range in before
  /// this returns, so that a read error surfaces here as a StorageError (from
  /// the pread fallback) and not later as SIGBUS. Anything that refuses the
  /// mapping falls back to reading.
  SharedBytes view(std::uint64_t offset, std::size_t length) const override {
    if (length == 0 || offset + length > m_size) return File::view(offset, length);
    const auto page = static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE));
    const std::uint64_t start = offset / page * page;
    const std::size_t mappedLength = length + static_cast<std::size_t>(offset - start);
    void* address =
        ::mmap(nullptr, mappedLength, PROT_READ, MAP_PRIVATE, m_fd, static_cast<off_t>(start));
    if (address == MAP_FAILED) return File::view(offset, length);
    auto mapping = std::make_shared<const FileMapping>(address, mappedLength);
#ifdef MADV_POPULATE_READ  // Linux 5.14
    if (::madvise(address, mappedLength, MADV_POPULATE_READ) != 0)
      return File::view(offset, length);
#else
    return File::view(offset, length);
#endif
    const std::string_view bytes(static_cast<const char*>(address) + (offset - start), length);
    return SharedBytes(std::move(mapping), bytes);
  }

  void pwrite(const void* buffer, std::size_t length, std::uint64_t offset) override {
    const auto* in = static_cast<const char*>(buffer);
    std::size_t done = 0;
    while (done < length) {
      const ssize_t n = ::pwrite(m_fd, in + done, length - done, static_cast<off_t>(offset + done));
      if (n < 0) {
        if (errno == EINTR) continue;
        const int error = errno;
        m_size = std::max(m_size, offset + done);
        throwSystemError("write", m_path, error, static_cast<std::int64_t>(offset + done));
      }
      done += static_cast<std::size_t>(n);
    }
    m_size = std::max(m_size, offset + length);
  }

  void truncate(std::uint64_t size) override {
    while (::ftruncate(m_fd, static_cast<off_t>(size)) != 0) {
      if (errno != EINTR)
        throwSystemError("truncate", m_path, errno, static_cast<std::int64_t>(size));
    }
    m_size = size;
  }

  void sync() override {
    while (::fdatasync(m_fd) != 0) {
      if (errno != EINTR) throwSystemError("fdatasync", m_path, errno);
    }
  }

  void startWriteback(std::uint64_t offset, std::uint64_t length) override {
#ifdef SYNC_FILE_RANGE_WRITE
    // Only a hint: an error here shows up again at sync().
    (void)::sync_file_range(m_fd, static_cast<off_t>(offset), static_cast<off_t>(length),
                            SYNC_FILE_RANGE_WRITE);
#else
    (void)offset;
    (void)length;
#endif
  }

  bool reserve(std::uint64_t size) override {
    if (size <= m_size) return true;
    // posix_fallocate returns the error instead of setting errno.
    if (::posix_fallocate(m_fd, 0, static_cast<off_t>(size)) != 0) return false;
    m_size = size;
    return true;
  }

 private:
  std::string m_path;
  int m_fd;
  std::uint64_t m_size;
};

}  // namespace

std::unique_ptr<File> PosixFileSystem::open(const std::string& path, OpenMode mode) {
  int flags = O_RDWR | O_CLOEXEC;
  if (mode == OpenMode::CreateOrOpen) flags |= O_CREAT;
  if (mode == OpenMode::CreateTruncate) flags |= O_CREAT | O_TRUNC;
  int fd;
  do {
    fd = ::open(path.c_str(), flags, 0644);
  } while (fd < 0 && errno == EINTR);
  if (fd < 0) throwSystemError("open", path, errno);
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int error = errno;
    ::close(fd);
    throwSystemError("stat", path, error);
  }
  return std::make_unique<PosixFile>(path, fd, static_cast<std::uint64_t>(st.st_size));
}

bool PosixFileSystem::exists(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0) return true;
  if (errno == ENOENT || errno == ENOTDIR) return false;
  throwSystemError("stat", path, errno);
}

void PosixFileSystem::rename(const std::string& from, const std::string& to) {
  if (::rename(from.c_str(), to.c_str()) != 0)
    throwSystemError("rename to " + to + " from", from, errno);
}

void PosixFileSystem::remove(const std::string& path) {
  if (::unlink(path.c_str()) != 0) throwSystemError("remove", path, errno);
}

std::vector<std::string> PosixFileSystem::list(const std::string& directory) {
  DIR* dir = ::opendir(directory.c_str());
  if (dir == nullptr) throwSystemError("list directory", directory, errno);
  std::vector<std::string> names;
  errno = 0;
  while (const dirent* entry = ::readdir(dir)) {
    const std::string name = entry->d_name;
    if (name != "." && name != "..") names.push_back(name);
  }
  const int error = errno;
  ::closedir(dir);
  if (error != 0) throwSystemError("list directory", directory, error);
  std::sort(names.begin(), names.end());
  return names;
}

void PosixFileSystem::syncDirectory(const std::string& directory) {
  const int fd = ::open(directory.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) throwSystemError("open directory", directory, errno);
  if (::fsync(fd) != 0) {
    const int error = errno;
    ::close(fd);
    throwSystemError("fsync directory", directory, error);
  }
  ::close(fd);
}

void PosixFileSystem::createDirectories(const std::string& directory) {
  if (directory.empty()) return;
  std::string prefix;
  std::size_t position = 0;
  while (position != std::string::npos) {
    position = directory.find('/', position + 1);
    prefix = directory.substr(0, position);
    if (prefix.empty()) continue;
    if (::mkdir(prefix.c_str(), 0755) == 0) {
      // A new directory is durable only once its parent is synced.
      syncDirectory(parentDirectory(prefix));
    } else if (errno != EEXIST) {
      throwSystemError("create directory", prefix, errno);
    }
  }
  struct stat st {};
  if (::stat(directory.c_str(), &st) != 0) throwSystemError("create directory", directory, errno);
  if (!S_ISDIR(st.st_mode)) throwSystemError("create directory", directory, ENOTDIR);
}

class CountingFileSystem::CountingFile : public File {
 public:
  CountingFile(std::unique_ptr<File> inner, std::atomic<std::uint64_t>& syncs,
               std::atomic<std::uint64_t>& reads, std::atomic<std::uint64_t>& written)
      : m_inner(std::move(inner)), m_syncs(syncs), m_reads(reads), m_written(written) {}
  const std::string& path() const override { return m_inner->path(); }
  std::uint64_t size() const override { return m_inner->size(); }
  std::size_t pread(void* buffer, std::size_t length, std::uint64_t offset) const override {
    m_reads.fetch_add(1, std::memory_order_relaxed);
    return m_inner->pread(buffer, length, offset);
  }
  void pwrite(const void* buffer, std::size_t length, std::uint64_t offset) override {
    m_inner->pwrite(buffer, length, offset);
    m_written.fetch_add(length, std::memory_order_relaxed);
  }
  SharedBytes view(std::uint64_t offset, std::size_t length) const override {
    m_reads.fetch_add(1, std::memory_order_relaxed);
    return m_inner->view(offset, length);
  }
  void truncate(std::uint64_t size) override { m_inner->truncate(size); }
  bool reserve(std::uint64_t size) override { return m_inner->reserve(size); }
  void startWriteback(std::uint64_t offset, std::uint64_t length) override {
    m_inner->startWriteback(offset, length);
  }
  void sync() override {
    m_inner->sync();
    m_syncs.fetch_add(1, std::memory_order_relaxed);
  }

 private:
  std::unique_ptr<File> m_inner;
  std::atomic<std::uint64_t>& m_syncs;
  std::atomic<std::uint64_t>& m_reads;
  std::atomic<std::uint64_t>& m_written;
};

std::unique_ptr<File> CountingFileSystem::open(const std::string& path, OpenMode mode) {
  return std::make_unique<CountingFile>(m_inner.open(path, mode), m_fileSyncs, m_fileReads,
                                        m_bytesWritten);
}

void CountingFileSystem::syncDirectory(const std::string& directory) {
  m_inner.syncDirectory(directory);
  m_directorySyncs.fetch_add(1, std::memory_order_relaxed);
}

PosixFileSystem& PosixFileSystem::instance() {
  static PosixFileSystem fileSystem;
  return fileSystem;
}

}  // namespace copycat::storage
