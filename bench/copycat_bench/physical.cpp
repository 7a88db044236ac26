#include "bench/copycat_bench/physical.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <barrier>
#include <limits>
#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <QDir>

#include "bench/copycat_bench/stats.h"

namespace copycat::bench {

namespace {

[[noreturn]] void fail(const std::string& what) {
  throw std::runtime_error(what + ": " + std::strerror(errno));
}

QString filesystemName(const QString& directory) {
  struct statfs info {};
  if (::statfs(QFile::encodeName(directory).constData(), &info) != 0) return QStringLiteral("?");
  switch (static_cast<unsigned long>(info.f_type)) {
    case 0xEF53:
      return QStringLiteral("ext4");
    case 0x01021994:
      return QStringLiteral("tmpfs");
    case 0x58465342:
      return QStringLiteral("xfs");
    case 0x9123683E:
      return QStringLiteral("btrfs");
    case 0x794c7630:
      return QStringLiteral("overlayfs");
    default:
      return QStringLiteral("0x%1").arg(static_cast<qulonglong>(info.f_type), 0, 16);
  }
}

void syncFigures(const QString& directory, double seconds, PhysicalFigures* figures) {
  const std::string path = QDir(directory).filePath(QStringLiteral("physical.fsync")).toStdString();
  const int fd = ::open(path.c_str(), O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0644);
  if (fd < 0) fail("open " + path);
  std::vector<char> block(4096, 'p');
  std::vector<std::int64_t> latencies;
  const std::int64_t start = nowNs();
  const auto end = start + static_cast<std::int64_t>(seconds * 1e9);
  while (nowNs() < end || latencies.size() < 3) {
    if (::write(fd, block.data(), block.size()) != static_cast<ssize_t>(block.size())) {
      ::close(fd);
      fail("write " + path);
    }
    const std::int64_t before = nowNs();
    if (::fdatasync(fd) != 0) {
      ::close(fd);
      fail("fdatasync " + path);
    }
    latencies.push_back(nowNs() - before);
  }
  const double elapsed = static_cast<double>(nowNs() - start) / 1e9;
  ::close(fd);
  ::unlink(path.c_str());
  figures->fdatasyncPerSec = static_cast<double>(latencies.size()) / elapsed;
  figures->fdatasyncP50Ms = summarize(latencies).p50Ms;
}

/// Three files in the data dir, one per writer thread of a 3-node cluster's
/// disk measurements; closed and removed on destruction.
class WriterFiles {
 public:
  static constexpr std::size_t kWriters = 3;

  explicit WriterFiles(const QString& directory) {
    for (std::size_t i = 0; i < kWriters; ++i) {
      m_paths[i] =
          QDir(directory).filePath(QStringLiteral("physical.quorum%1").arg(i)).toStdString();
      m_fds[i] = ::open(m_paths[i].c_str(), O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0644);
      if (m_fds[i] < 0) {
        const int error = errno;
        closeAll(i);
        errno = error;
        fail("open " + m_paths[i]);
      }
    }
  }
  ~WriterFiles() { closeAll(kWriters); }
  WriterFiles(const WriterFiles&) = delete;
  WriterFiles& operator=(const WriterFiles&) = delete;

  /// Appends 4 KiB to writer i's file and fdatasyncs it; false on failure.
  bool appendAndSync(std::size_t i) const {
    const std::array<char, 4096> block{};
    return ::write(m_fds[i], block.data(), block.size()) == static_cast<ssize_t>(block.size()) &&
           ::fdatasync(m_fds[i]) == 0;
  }
  const std::string& path(std::size_t i) const { return m_paths[i]; }

 private:
  void closeAll(std::size_t count) {
    for (std::size_t j = 0; j < count; ++j) {
      ::close(m_fds[j]);
      ::unlink(m_paths[j].c_str());
    }
  }

  std::array<int, kWriters> m_fds{};
  std::array<std::string, kWriters> m_paths;
};

/// `writers` (2 or 3) threads start a 4 KiB append and fdatasync together,
/// round after round: the median time until the second of them finished.
double secondSyncDoneP50Ms(const QString& directory, double seconds, std::size_t writers) {
  const WriterFiles files(directory);
  const std::int64_t end = nowNs() + static_cast<std::int64_t>(seconds * 1e9);
  std::int64_t roundStart = 0;
  // The slots of writers not taking part stay last when sorted.
  std::array<std::int64_t, WriterFiles::kWriters> finished;
  finished.fill(std::numeric_limits<std::int64_t>::max());
  std::vector<std::int64_t> secondDone;
  bool more = true;
  std::atomic<bool> failed{false};
  // A round starts when all are ready and ends when all synced.
  std::barrier start(static_cast<std::ptrdiff_t>(writers), [&]() noexcept {
    more = !failed && (nowNs() < end || secondDone.size() < 3);
    roundStart = nowNs();
  });
  std::barrier finish(static_cast<std::ptrdiff_t>(writers), [&]() noexcept {
    std::array<std::int64_t, WriterFiles::kWriters> sorted = finished;
    std::sort(sorted.begin(), sorted.end());
    secondDone.push_back(sorted[1] - roundStart);
  });
  std::vector<std::thread> threads;
  for (std::size_t i = 0; i < writers; ++i) {
    threads.emplace_back([&, i] {
      for (;;) {
        start.arrive_and_wait();
        if (!more) return;
        if (!files.appendAndSync(i)) failed = true;
        finished[i] = nowNs();
        finish.arrive_and_wait();
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  if (failed) fail("write/fdatasync " + files.path(0));
  return summarize(secondDone).p50Ms;
}

void concurrentSyncFigures(const QString& directory, double seconds, PhysicalFigures* figures) {
  const WriterFiles files(directory);
  std::atomic<std::uint64_t> syncs{0};
  std::atomic<bool> failed{false};
  const std::int64_t start = nowNs();
  const std::int64_t end = start + static_cast<std::int64_t>(seconds * 1e9);
  std::vector<std::thread> writers;
  for (std::size_t i = 0; i < WriterFiles::kWriters; ++i) {
    writers.emplace_back([&, i] {
      while (!failed && nowNs() < end) {
        if (!files.appendAndSync(i)) {
          failed = true;
          return;
        }
        syncs.fetch_add(1, std::memory_order_relaxed);
      }
    });
  }
  for (std::thread& writer : writers) writer.join();
  if (failed) fail("write/fdatasync " + files.path(0));
  figures->concurrentSyncsPerSec =
      static_cast<double>(syncs.load()) / (static_cast<double>(nowNs() - start) / 1e9);
}

void sequentialFigures(const QString& directory, double seconds, PhysicalFigures* figures) {
  const std::string path = QDir(directory).filePath(QStringLiteral("physical.seq")).toStdString();
  const int fd = ::open(path.c_str(), O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0644);
  if (fd < 0) fail("open " + path);
  std::vector<char> block(1 << 20, 'q');
  std::uint64_t written = 0;
  const std::int64_t start = nowNs();
  const auto end = start + static_cast<std::int64_t>(seconds * 1e9);
  while (nowNs() < end || written < 2 * block.size()) {
    if (::write(fd, block.data(), block.size()) != static_cast<ssize_t>(block.size()) ||
        ::fdatasync(fd) != 0) {
      ::close(fd);
      ::unlink(path.c_str());
      fail("write/fdatasync " + path);
    }
    written += block.size();
  }
  const double elapsed = static_cast<double>(nowNs() - start) / 1e9;
  ::close(fd);
  ::unlink(path.c_str());
  figures->diskMBps = static_cast<double>(written) / 1e6 / elapsed;
}

bool readAll(int fd, char* buffer, std::size_t length) {
  while (length > 0) {
    const ssize_t got = ::recv(fd, buffer, length, 0);
    if (got <= 0) return false;
    buffer += got;
    length -= static_cast<std::size_t>(got);
  }
  return true;
}

bool writeAll(int fd, const char* buffer, std::size_t length) {
  while (length > 0) {
    const ssize_t put = ::send(fd, buffer, length, MSG_NOSIGNAL);
    if (put <= 0) return false;
    buffer += put;
    length -= static_cast<std::size_t>(put);
  }
  return true;
}

/// A connected pair of loopback TCP sockets with TCP_NODELAY.
std::pair<int, int> loopbackPair() {
  const int listener = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (listener < 0) fail("socket");
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof address;
  if (::bind(listener, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 ||
      ::listen(listener, 1) != 0 ||
      ::getsockname(listener, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
    ::close(listener);
    fail("loopback listen");
  }
  const int client = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (client < 0 || ::connect(client, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
    ::close(listener);
    fail("loopback connect");
  }
  const int server = ::accept(listener, nullptr, nullptr);
  ::close(listener);
  if (server < 0) fail("loopback accept");
  const int one = 1;
  ::setsockopt(client, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  ::setsockopt(server, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return {client, server};
}

void rttFigures(double seconds, PhysicalFigures* figures) {
  const auto [client, server] = loopbackPair();
  std::thread echo([fd = server] {
    char buffer[256];
    while (readAll(fd, buffer, sizeof buffer) && writeAll(fd, buffer, sizeof buffer)) {
    }
  });
  char message[256] = {};
  std::vector<std::int64_t> latencies;
  const auto end = nowNs() + static_cast<std::int64_t>(seconds * 1e9);
  while (nowNs() < end) {
    const std::int64_t before = nowNs();
    if (!writeAll(client, message, sizeof message) || !readAll(client, message, sizeof message))
      break;
    latencies.push_back(nowNs() - before);
  }
  ::shutdown(client, SHUT_RDWR);
  echo.join();
  ::close(client);
  ::close(server);
  const LatencySummary summary = summarize(latencies);
  figures->loopbackRttUs = summary.p50Ms * 1000;
  figures->loopbackRttP99Us = summary.p99Ms * 1000;
}

void streamFigures(double seconds, PhysicalFigures* figures) {
  const auto [client, server] = loopbackPair();
  std::uint64_t received = 0;
  std::int64_t receiveEnd = 0;
  std::thread sink([fd = server, &received, &receiveEnd] {
    std::vector<char> buffer(256 * 1024);
    for (;;) {
      const ssize_t got = ::recv(fd, buffer.data(), buffer.size(), 0);
      if (got <= 0) break;
      received += static_cast<std::uint64_t>(got);
    }
    receiveEnd = nowNs();
  });
  std::vector<char> chunk(64 * 1024, 's');
  const std::int64_t start = nowNs();
  const auto end = start + static_cast<std::int64_t>(seconds * 1e9);
  while (nowNs() < end && writeAll(client, chunk.data(), chunk.size())) {
  }
  ::shutdown(client, SHUT_WR);
  sink.join();
  ::close(client);
  ::close(server);
  figures->loopbackMBps =
      static_cast<double>(received) / 1e6 / (static_cast<double>(receiveEnd - start) / 1e9);
}

}  // namespace

PhysicalFigures measurePhysical(const QString& directory, double seconds) {
  PhysicalFigures figures;
  figures.filesystem = filesystemName(directory);
  syncFigures(directory, seconds * 0.3, &figures);
  figures.quorumSyncP50Ms = secondSyncDoneP50Ms(directory, seconds * 0.1, 3);
  figures.pairSyncP50Ms = secondSyncDoneP50Ms(directory, seconds * 0.05, 2);
  concurrentSyncFigures(directory, seconds * 0.1, &figures);
  sequentialFigures(directory, seconds * 0.1, &figures);
  rttFigures(seconds * 0.2, &figures);
  streamFigures(seconds * 0.15, &figures);
  return figures;
}

}  // namespace copycat::bench
