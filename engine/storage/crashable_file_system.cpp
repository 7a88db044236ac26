#include "engine/storage/crashable_file_system.h"

#include <errno.h>

#include <algorithm>
#include <cstring>
#include <mutex>
#include <random>

namespace copycat::storage {

namespace {

constexpr const char* kBackupPrefix = ".crashfs-backup-";

struct PendingWrite {
  bool truncate = false;
  std::uint64_t offset = 0;  // truncate: the new size
  std::string data;
};

}  // namespace

struct CrashableFileSystem::FileState {
  std::unique_ptr<File> real;
  std::uint64_t size = 0;
  std::vector<PendingWrite> pending;
  bool dead = false;
};

class CrashableFile : public File {
 public:
  CrashableFile(CrashableFileSystem& fs, std::shared_ptr<CrashableFileSystem::FileState> state,
                std::string path)
      : m_fs(fs), m_state(std::move(state)), m_path(std::move(path)) {}

  const std::string& path() const override { return m_path; }
  std::uint64_t size() const override {
    std::lock_guard lock(m_fs.m_mutex);
    return m_state->size;
  }

  std::size_t pread(void* buffer, std::size_t length, std::uint64_t offset) const override {
    std::lock_guard lock(m_fs.m_mutex);
    checkAlive("read", static_cast<std::int64_t>(offset));
    const CrashableFileSystem::FileState& state = *m_state;
    if (offset >= state.size) return 0;
    const std::size_t n =
        static_cast<std::size_t>(std::min<std::uint64_t>(length, state.size - offset));
    auto* out = static_cast<char*>(buffer);
    const std::size_t got = state.real->pread(out, n, offset);
    std::memset(out + got, 0, n - got);
    const std::uint64_t end = offset + n;
    for (const PendingWrite& op : state.pending) {
      if (op.truncate) {
        if (op.offset < end) {
          const std::uint64_t from = std::max(op.offset, offset);
          std::memset(out + (from - offset), 0, end - from);
        }
        continue;
      }
      const std::uint64_t opEnd = op.offset + op.data.size();
      const std::uint64_t from = std::max(op.offset, offset);
      const std::uint64_t to = std::min(opEnd, end);
      if (from < to)
        std::memcpy(out + (from - offset), op.data.data() + (from - op.offset), to - from);
    }
    return n;
  }

  void pwrite(const void* buffer, std::size_t length, std::uint64_t offset) override {
    std::lock_guard lock(m_fs.m_mutex);
    checkAlive("write", static_cast<std::int64_t>(offset));
    m_fs.write(*m_state, m_path, buffer, length, offset);
  }

  void truncate(std::uint64_t size) override {
    std::lock_guard lock(m_fs.m_mutex);
    checkAlive("truncate", static_cast<std::int64_t>(size));
    m_state->pending.push_back({true, size, {}});
    m_state->size = size;
  }

  void sync() override {
    std::lock_guard lock(m_fs.m_mutex);
    checkAlive("fdatasync", -1);
    m_fs.sync(*m_state, m_path);
  }

 private:
  void checkAlive(const char* operation, std::int64_t offset) const {
    if (m_state->dead)
      throwSystemError(std::string(operation) + " (handle from before a crash)", m_path, EIO,
                       offset);
  }

  CrashableFileSystem& m_fs;
  std::shared_ptr<CrashableFileSystem::FileState> m_state;
  std::string m_path;
};

CrashableFileSystem::CrashableFileSystem() = default;
CrashableFileSystem::~CrashableFileSystem() = default;

std::unique_ptr<File> CrashableFileSystem::open(const std::string& path, OpenMode mode) {
  std::lock_guard lock(m_mutex);
  const bool existed = m_base.exists(path);
  if (!existed && mode == OpenMode::Existing) throwSystemError("open", path, ENOENT);
  if (!existed) {
    m_base.open(path, OpenMode::CreateOrOpen);
    recordChange(parentDirectory(path), {NamespaceChange::Kind::Create, path, {}, {}});
  }
  std::shared_ptr<FileState>& state = m_files[path];
  if (!state) {
    state = std::make_shared<FileState>();
    state->real = m_base.open(path, OpenMode::Existing);
    state->size = state->real->size();
  }
  if (existed && mode == OpenMode::CreateTruncate && state->size != 0) {
    state->pending.push_back({true, 0, {}});
    state->size = 0;
  }
  return std::make_unique<CrashableFile>(*this, state, path);
}

bool CrashableFileSystem::exists(const std::string& path) {
  std::lock_guard lock(m_mutex);
  return m_base.exists(path);
}

void CrashableFileSystem::rename(const std::string& from, const std::string& to) {
  std::lock_guard lock(m_mutex);
  if (!m_base.exists(from)) throwSystemError("rename to " + to + " from", from, ENOENT);
  const std::string directory = parentDirectory(to);
  NamespaceChange change{NamespaceChange::Kind::Rename, to, from, {}};
  if (m_base.exists(to)) {
    change.backup = backupName(directory);
    m_base.rename(to, change.backup);
    moveState(to, change.backup);
  }
  m_base.rename(from, to);
  moveState(from, to);
  recordChange(directory, std::move(change));
}

void CrashableFileSystem::remove(const std::string& path) {
  std::lock_guard lock(m_mutex);
  if (!m_base.exists(path)) throwSystemError("remove", path, ENOENT);
  const std::string directory = parentDirectory(path);
  NamespaceChange change{NamespaceChange::Kind::Remove, path, {}, backupName(directory)};
  m_base.rename(path, change.backup);
  moveState(path, change.backup);
  recordChange(directory, std::move(change));
}

std::vector<std::string> CrashableFileSystem::list(const std::string& directory) {
  std::lock_guard lock(m_mutex);
  std::vector<std::string> names = m_base.list(directory);
  std::erase_if(names, [](const std::string& name) { return name.rfind(kBackupPrefix, 0) == 0; });
  return names;
}

void CrashableFileSystem::syncDirectory(const std::string& directory) {
  std::lock_guard lock(m_mutex);
  auto it = m_unsynced.find(directory);
  if (it != m_unsynced.end()) {
    for (const NamespaceChange& change : it->second) {
      if (change.backup.empty()) continue;
      m_base.remove(change.backup);
      m_files.erase(change.backup);
    }
    m_unsynced.erase(it);
  }
  if (m_realSync) m_base.syncDirectory(directory);
}

void CrashableFileSystem::createDirectories(const std::string& directory) {
  std::lock_guard lock(m_mutex);
  m_base.createDirectories(directory);
}

void CrashableFileSystem::crash(const CrashOptions& options) {
  std::lock_guard lock(m_mutex);
  std::mt19937_64 random(options.tornWritesSeed.value_or(0));
  for (auto& [path, state] : m_files) {
    if (options.tornWritesSeed && !state->pending.empty()) {
      const std::size_t keep =
          std::uniform_int_distribution<std::size_t>(0, state->pending.size())(random);
      for (std::size_t i = 0; i < keep && i < state->pending.size(); ++i) {
        PendingWrite& op = state->pending[i];
        if (op.truncate) {
          state->real->truncate(op.offset);
          continue;
        }
        std::size_t length = op.data.size();
        if (i + 1 == keep) length = std::uniform_int_distribution<std::size_t>(0, length)(random);
        state->real->pwrite(op.data.data(), length, op.offset);
      }
    }
    state->pending.clear();
    state->dead = true;
  }
  m_files.clear();
  for (auto& [directory, changes] : m_unsynced) {
    for (auto it = changes.rbegin(); it != changes.rend(); ++it) {
      const NamespaceChange& change = *it;
      if (!options.undoUnsyncedNamespaceChanges) {
        if (!change.backup.empty()) m_base.remove(change.backup);
        continue;
      }
      switch (change.kind) {
        case NamespaceChange::Kind::Create:
          if (m_base.exists(change.path)) m_base.remove(change.path);
          break;
        case NamespaceChange::Kind::Rename:
          m_base.rename(change.path, change.from);
          if (!change.backup.empty()) m_base.rename(change.backup, change.path);
          break;
        case NamespaceChange::Kind::Remove:
          m_base.rename(change.backup, change.path);
          break;
      }
    }
  }
  m_unsynced.clear();
  clearFaults();
}

void CrashableFileSystem::clearFaults() {
  std::lock_guard lock(m_mutex);
  m_writeBudget.reset();
  m_failSyncAt.reset();
}

void CrashableFileSystem::write(FileState& state, const std::string& path, const void* buffer,
                                std::size_t length, std::uint64_t offset) {
  std::size_t accepted = length;
  if (m_writeBudget && *m_writeBudget < length) accepted = static_cast<std::size_t>(*m_writeBudget);
  if (accepted > 0) {
    const char* bytes = static_cast<const char*>(buffer);
    PendingWrite* last = state.pending.empty() ? nullptr : &state.pending.back();
    if (last != nullptr && !last->truncate && last->offset + last->data.size() == offset) {
      last->data.append(bytes, accepted);
    } else {
      state.pending.push_back({false, offset, std::string(bytes, accepted)});
    }
    state.size = std::max(state.size, offset + accepted);
  }
  if (m_writeBudget) {
    *m_writeBudget -= accepted;
    if (accepted < length) {
      throwSystemError("write", path, ENOSPC, static_cast<std::int64_t>(offset + accepted));
    }
  }
}

void CrashableFileSystem::sync(FileState& state, const std::string& path) {
  ++m_syncs;
  if (m_failSyncAt && m_syncs == *m_failSyncAt) {
    m_failSyncAt.reset();
    state.pending.clear();
    state.size = state.real->size();
    throwSystemError("fdatasync", path, EIO);
  }
  for (const PendingWrite& op : state.pending) {
    if (op.truncate) {
      state.real->truncate(op.offset);
    } else {
      state.real->pwrite(op.data.data(), op.data.size(), op.offset);
    }
  }
  state.pending.clear();
  if (m_realSync) state.real->sync();
}

std::string CrashableFileSystem::backupName(const std::string& directory) {
  return joinPath(directory, kBackupPrefix + std::to_string(++m_backups));
}

void CrashableFileSystem::moveState(const std::string& from, const std::string& to) {
  auto it = m_files.find(from);
  if (it == m_files.end()) return;
  std::shared_ptr<FileState> state = std::move(it->second);
  m_files.erase(it);
  m_files[to] = std::move(state);
}

void CrashableFileSystem::recordChange(const std::string& directory, NamespaceChange change) {
  m_unsynced[directory].push_back(std::move(change));
}

}  // namespace copycat::storage
