#include "engine/storage/snapshot_store.h"

#include <algorithm>
#include <cstdint>
#include <iostream>
#include <stdexcept>

#include <xxhash.h>

#include "engine/storage/format.h"

namespace copycat::storage {

using raft::SnapshotMeta;

namespace {

void emitWarning(const WarningSink& sink, const std::string& message) {
  if (sink) {
    sink(message);
  } else {
    std::cerr << "copycat storage warning: " << message << '\n';
  }
}

constexpr std::size_t kReadChunk = 1 << 20;
/// A snapshot being received is handed to the disk in pieces of this size
/// while the rest arrives, so that the sync before installing it is short.
constexpr std::uint64_t kWritebackBytes = 8u << 20;

struct StateDeleter {
  void operator()(XXH3_state_t* state) const { XXH3_freeState(state); }
};
using HashState = std::unique_ptr<XXH3_state_t, StateDeleter>;

HashState newHashState() {
  HashState state(XXH3_createState());
  if (!state || XXH3_64bits_reset(state.get()) != XXH_OK) throw std::bad_alloc();
  return state;
}

bool byPosition(const SnapshotMeta& a, const SnapshotMeta& b) {
  return a.index != b.index ? a.index < b.index : a.term < b.term;
}

}  // namespace

struct SnapshotStore::Receive {
  SnapshotMeta meta;
  std::optional<std::uint64_t> expectedChecksum;
  std::string temporary;
  std::string header;
  std::unique_ptr<File> file;
  HashState hash;
  std::uint64_t received = 0;
  /// Bytes of data already handed to File::startWriteback().
  std::uint64_t writtenBack = 0;
};

SnapshotStore::SnapshotStore(FileSystem& fs, std::string directory, std::size_t keep,
                             WarningSink warnSink, BackgroundRunner background)
    : m_fs(fs),
      m_directory(std::move(directory)),
      m_keep(std::max<std::size_t>(keep, 1)),
      m_warn(std::move(warnSink)),
      m_background(std::move(background)) {
  while (m_directory.size() > 1 && m_directory.back() == '/') m_directory.pop_back();
  m_fs.createDirectories(m_directory);
  bool changed = false;
  for (const std::string& name : m_fs.list(m_directory)) {
    const std::string path = joinPath(m_directory, name);
    if (name.ends_with(".tmp")) {
      warn("removing stale temporary snapshot file " + path);
      m_fs.remove(path);
      changed = true;
      continue;
    }
    if (!format::isSnapshotFileName(name)) continue;
    if (std::optional<SnapshotFile> stored = verify(path)) {
      m_snapshots.push_back(std::move(*stored));
    } else {
      warn("snapshot " + path + " is damaged; renamed to " + path + ".corrupt and not used");
      m_fs.rename(path, path + ".corrupt");
      changed = true;
    }
  }
  if (changed) m_fs.syncDirectory(m_directory);
  std::sort(
      m_snapshots.begin(), m_snapshots.end(),
      [](const SnapshotFile& a, const SnapshotFile& b) { return byPosition(a.meta, b.meta); });
  if (!m_snapshots.empty()) m_latestFile = m_fs.open(m_snapshots.back().path, OpenMode::Existing);
  prune();
}

SnapshotStore::~SnapshotStore() = default;

void SnapshotStore::warn(const std::string& message) const { emitWarning(m_warn, message); }

std::optional<SnapshotStore::SnapshotFile> SnapshotStore::verify(const std::string& path) const {
  std::unique_ptr<File> file = m_fs.open(path, OpenMode::Existing);
  const std::uint64_t size = file->size();
  std::string header(56, '\0');
  if (file->pread(header.data(), header.size(), 0) != header.size()) return std::nullopt;
  const std::optional<std::size_t> headerSize =
      format::snapshotHeaderSize(header.data(), header.size());
  if (!headerSize || *headerSize > size) return std::nullopt;
  header.resize(*headerSize);
  if (file->pread(header.data(), header.size(), 0) != header.size()) return std::nullopt;
  const std::optional<format::SnapshotHeader> decoded =
      format::decodeSnapshotHeader(header.data(), header.size());
  if (!decoded || size != *headerSize + decoded->meta.size) return std::nullopt;
  HashState hash = newHashState();
  std::string buffer;
  for (std::uint64_t offset = 0; offset < decoded->meta.size;) {
    const std::size_t n =
        static_cast<std::size_t>(std::min<std::uint64_t>(kReadChunk, decoded->meta.size - offset));
    buffer.resize(n);
    if (file->pread(buffer.data(), n, *headerSize + offset) != n) return std::nullopt;
    XXH3_64bits_update(hash.get(), buffer.data(), n);
    offset += n;
  }
  if (XXH3_64bits_digest(hash.get()) != decoded->dataChecksum) return std::nullopt;
  return SnapshotFile{decoded->meta, decoded->dataChecksum, *headerSize, path};
}

SnapshotMeta SnapshotStore::latest() const {
  return m_snapshots.empty() ? SnapshotMeta{} : m_snapshots.back().meta;
}

std::uint64_t SnapshotStore::latestChecksum() const {
  return m_snapshots.empty() ? 0 : m_snapshots.back().checksum;
}

std::vector<SnapshotMeta> SnapshotStore::snapshots() const {
  std::vector<SnapshotMeta> out;
  for (const SnapshotFile& stored : m_snapshots) out.push_back(stored.meta);
  return out;
}

void SnapshotStore::write(const SnapshotMeta& meta, std::string_view data) {
  adopt(prepare(meta, data));
}

SnapshotStore::SnapshotFile SnapshotStore::prepare(const SnapshotMeta& meta,
                                                   std::string_view data) const {
  format::SnapshotHeader header{meta, format::checksum(data.data(), data.size())};
  header.meta.size = data.size();
  const std::string bytes = format::encodeSnapshotHeader(header);
  const std::string path = joinPath(m_directory, format::snapshotFileName(meta.index, meta.term));
  const std::string temporary = path + ".tmp";
  {
    std::unique_ptr<File> file = m_fs.open(temporary, OpenMode::CreateTruncate);
    file->pwrite(bytes.data(), bytes.size(), 0);
    file->pwrite(data.data(), data.size(), bytes.size());
    if (m_stepObserver) m_stepObserver("temp-written");
    file->sync();
  }
  const SnapshotFile prepared{header.meta, header.dataChecksum, bytes.size(), path};
  publish(temporary, prepared);
  return prepared;
}

void SnapshotStore::publish(const std::string& temporary, const SnapshotFile& stored) const {
  if (m_stepObserver) m_stepObserver("temp-synced");
  m_fs.rename(temporary, stored.path);
  if (m_stepObserver) m_stepObserver("renamed");
  m_fs.syncDirectory(m_directory);
  if (m_stepObserver) m_stepObserver("directory-synced");
}

void SnapshotStore::adopt(const SnapshotFile& prepared) {
  std::erase_if(m_snapshots, [&](const SnapshotFile& s) { return s.path == prepared.path; });
  m_snapshots.push_back(prepared);
  std::stable_sort(
      m_snapshots.begin(), m_snapshots.end(),
      [](const SnapshotFile& a, const SnapshotFile& b) { return byPosition(a.meta, b.meta); });
  m_latestFile = m_fs.open(m_snapshots.back().path, OpenMode::Existing);
  prune();
}

void SnapshotStore::discard(const SnapshotFile& prepared) {
  const bool kept = std::any_of(m_snapshots.begin(), m_snapshots.end(),
                                [&](const SnapshotFile& s) { return s.path == prepared.path; });
  if (!kept) m_fs.remove(prepared.path);
}

void SnapshotStore::prune() {
  if (m_snapshots.size() <= m_keep) return;
  const std::size_t drop = m_snapshots.size() - m_keep;
  std::vector<std::string> superseded;
  for (std::size_t i = 0; i < drop; ++i) superseded.push_back(m_snapshots[i].path);
  m_snapshots.erase(m_snapshots.begin(), m_snapshots.begin() + static_cast<std::ptrdiff_t>(drop));
  // Nothing reads a superseded file any more, and a crash before its removal
  // only leaves it for the next open to prune.
  auto removal = [&fs = m_fs, directory = m_directory, warnSink = m_warn,
                  superseded = std::move(superseded)] {
    const auto attempt = [&warnSink](const auto& step) {
      try {
        step();
      } catch (const std::exception& error) {
        emitWarning(warnSink, std::string("cannot remove a superseded snapshot: ") + error.what());
      }
    };
    for (const std::string& path : superseded) attempt([&] { fs.remove(path); });
    attempt([&] { fs.syncDirectory(directory); });
  };
  if (m_background) {
    m_background(std::move(removal));
  } else {
    removal();
  }
}

std::string SnapshotStore::readChunk(std::uint64_t offset, std::size_t maxBytes) const {
  if (m_snapshots.empty()) return {};
  const SnapshotFile& stored = m_snapshots.back();
  if (offset >= stored.meta.size) return {};
  const std::size_t n =
      static_cast<std::size_t>(std::min<std::uint64_t>(maxBytes, stored.meta.size - offset));
  std::string out(n, '\0');
  if (m_latestFile->pread(out.data(), n, stored.headerSize + offset) != n) {
    throw StorageError("snapshot " + stored.path + ": short read at offset " +
                       std::to_string(stored.headerSize + offset));
  }
  return out;
}

SharedBytes SnapshotStore::latestBytes() const {
  if (m_snapshots.empty()) return {};
  const SnapshotFile& stored = m_snapshots.back();
  return m_latestFile->view(stored.headerSize, static_cast<std::size_t>(stored.meta.size));
}

std::string SnapshotStore::readAll() const { return std::string(latestBytes().view()); }

void SnapshotStore::beginReceive(const SnapshotMeta& meta,
                                 std::optional<std::uint64_t> expectedChecksum) {
  abortReceive();
  auto receive = std::make_unique<Receive>();
  receive->meta = meta;
  receive->expectedChecksum = expectedChecksum;
  receive->temporary =
      joinPath(m_directory, format::snapshotFileName(meta.index, meta.term)) + ".recv.tmp";
  receive->header = format::encodeSnapshotHeader({meta, 0});
  receive->hash = newHashState();
  receive->file = m_fs.open(receive->temporary, OpenMode::CreateTruncate);
  receive->file->pwrite(receive->header.data(), receive->header.size(), 0);
  m_receive = std::move(receive);
}

std::uint64_t SnapshotStore::received() const { return m_receive ? m_receive->received : 0; }

void SnapshotStore::receiveChunk(std::uint64_t offset, std::string_view data) {
  if (!m_receive) throw std::logic_error("SnapshotStore::receiveChunk without beginReceive");
  Receive& receive = *m_receive;
  if (offset + data.size() <= receive.received && offset < receive.received) return;
  if (offset != receive.received) {
    throw std::invalid_argument("SnapshotStore::receiveChunk: offset " + std::to_string(offset) +
                                " but " + std::to_string(receive.received) + " bytes received");
  }
  if (receive.received + data.size() > receive.meta.size) {
    throw StorageError("snapshot " + receive.temporary + ": chunk at offset " +
                       std::to_string(offset) + " goes past the announced size " +
                       std::to_string(receive.meta.size));
  }
  receive.file->pwrite(data.data(), data.size(), receive.header.size() + offset);
  XXH3_64bits_update(receive.hash.get(), data.data(), data.size());
  receive.received += data.size();
  if (receive.received - receive.writtenBack >= kWritebackBytes) {
    receive.file->startWriteback(receive.header.size() + receive.writtenBack,
                                 receive.received - receive.writtenBack);
    receive.writtenBack = receive.received;
  }
}

SnapshotMeta SnapshotStore::finishReceive() {
  if (!m_receive) throw std::logic_error("SnapshotStore::finishReceive without beginReceive");
  Receive& receive = *m_receive;
  if (receive.received != receive.meta.size) {
    const std::string message = "snapshot " + receive.temporary + ": incomplete, " +
                                std::to_string(receive.received) + " of " +
                                std::to_string(receive.meta.size) + " bytes received";
    abortReceive();
    throw StorageError(message);
  }
  const std::uint64_t digest = XXH3_64bits_digest(receive.hash.get());
  if (receive.expectedChecksum && *receive.expectedChecksum != digest) {
    const std::string message = "snapshot " + receive.temporary + ": data checksum mismatch";
    abortReceive();
    throw StorageError(message);
  }
  format::SnapshotHeader header{receive.meta, digest};
  const std::string bytes = format::encodeSnapshotHeader(header);
  receive.file->pwrite(bytes.data(), bytes.size(), 0);
  if (m_stepObserver) m_stepObserver("temp-written");
  receive.file->sync();
  receive.file.reset();
  const std::string path =
      joinPath(m_directory, format::snapshotFileName(receive.meta.index, receive.meta.term));
  const SnapshotFile stored{receive.meta, digest, bytes.size(), path};
  const std::string temporary = receive.temporary;
  m_receive.reset();
  publish(temporary, stored);
  adopt(stored);
  return stored.meta;
}

void SnapshotStore::abortReceive() {
  if (!m_receive) return;
  const std::string temporary = m_receive->temporary;
  m_receive.reset();
  if (m_fs.exists(temporary)) m_fs.remove(temporary);
}

}  // namespace copycat::storage
