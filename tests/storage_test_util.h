// Helpers shared by the storage tests: entries, warning capture, and
// byte-level damage to real files.
#pragma once

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include <QFile>
#include <QString>
#include <QTest>

#include "engine/raft/types.h"
#include "engine/storage/storage_error.h"

namespace storage_test {

using copycat::raft::Entry;
using copycat::raft::EntryType;
using copycat::raft::Index;
using copycat::raft::Term;

inline Entry makeEntry(Index index, Term term, std::size_t payload = 100) {
  Entry entry;
  entry.index = index;
  entry.term = term;
  entry.data.resize(payload);
  for (std::size_t i = 0; i < payload; ++i)
    entry.data[i] = static_cast<char>('a' + (index * 7 + i) % 26);
  if (index % 17 == 0) {
    entry.type = EntryType::ConfigChange;
    entry.change.kind = copycat::raft::ConfigChange::Kind::AddLearner;
    entry.change.node = index;
  } else if (index % 13 == 0) {
    entry.type = EntryType::Noop;
    entry.data.clear();
  }
  return entry;
}

inline std::vector<Entry> makeEntries(Index from, Index to, Term term, std::size_t payload = 100) {
  std::vector<Entry> out;
  for (Index i = from; i <= to; ++i) out.push_back(makeEntry(i, term, payload));
  return out;
}

/// Collects warnings for inspection.
struct Warnings {
  std::vector<std::string> messages;
  copycat::storage::WarningSink sink() {
    return [this](const std::string& message) { messages.push_back(message); };
  }
  bool any(const std::string& needle) const {
    for (const std::string& m : messages) {
      if (m.find(needle) != std::string::npos) return true;
    }
    return false;
  }
  std::string all() const {
    std::string out;
    for (const std::string& m : messages) out += m + "\n";
    return out;
  }
};

inline std::string readFile(const std::string& path) {
  QFile file(QString::fromStdString(path));
  if (!file.open(QIODevice::ReadOnly)) return {};
  const QByteArray bytes = file.readAll();
  return std::string(bytes.constData(), static_cast<std::size_t>(bytes.size()));
}

inline void writeFile(const std::string& path, const std::string& bytes) {
  QFile file(QString::fromStdString(path));
  QVERIFY(file.open(QIODevice::WriteOnly | QIODevice::Truncate));
  QCOMPARE(file.write(bytes.data(), static_cast<qint64>(bytes.size())),
           static_cast<qint64>(bytes.size()));
}

inline void flipByte(const std::string& path, std::uint64_t offset) {
  std::string bytes = readFile(path);
  QVERIFY(offset < bytes.size());
  bytes[offset] = static_cast<char>(bytes[offset] ^ 0x5a);
  writeFile(path, bytes);
}

inline std::string randomBytes(std::size_t length, std::uint64_t seed) {
  std::mt19937_64 random(seed);
  std::string out(length, '\0');
  for (char& c : out) c = static_cast<char>(random());
  return out;
}

/// Runs `body` and returns the StorageError message it threw ("" if none).
template <typename F>
std::string storageErrorOf(F&& body) {
  try {
    body();
  } catch (const copycat::storage::StorageError& error) {
    return error.what();
  }
  return {};
}

}  // namespace storage_test
