// Recovery of the segmented log from damaged real files, and its behaviour
// on disk errors and crashes through CrashableFileSystem.

#include <errno.h>

#include <algorithm>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include <QDir>
#include <QFileInfo>
#include <QTemporaryDir>
#include <QTest>

#include "engine/storage/crashable_file_system.h"
#include "engine/storage/file_system.h"
#include "engine/storage/format.h"
#include "engine/storage/segmented_log.h"
#include "tests/storage_test_util.h"

using copycat::raft::Entry;
using copycat::raft::Index;
using copycat::raft::Term;
using copycat::storage::CrashableFileSystem;
using copycat::storage::CrashOptions;
using copycat::storage::PosixFileSystem;
using copycat::storage::SegmentedLog;
using copycat::storage::SegmentedLogOptions;
using copycat::storage::StorageError;
using storage_test::makeEntries;
using storage_test::Warnings;

namespace {

constexpr std::size_t kPayload = 100;
// Entries 13k are Noops without payload and 17k ConfigChanges with payload.
std::uint64_t frameSize(Index index) {
  return copycat::storage::format::frameSize(storage_test::makeEntry(index, 1, kPayload));
}
std::uint64_t offsetOf(Index first, Index index) {
  std::uint64_t offset = copycat::storage::format::kSegmentHeaderSize;
  for (Index i = first; i < index; ++i) offset += frameSize(i);
  return offset;
}

std::string segmentPath(const std::string& dir, std::uint64_t id) {
  return copycat::storage::joinPath(dir, copycat::storage::format::segmentFileName(id));
}

/// The byte-exact cases below write segments without preallocation; the
/// preallocation tests at the end turn it on.
SegmentedLogOptions options(Warnings& warnings, std::uint64_t entriesPerSegment = 100) {
  SegmentedLogOptions o;
  o.maxSegmentEntries = entriesPerSegment;
  o.warn = warnings.sink();
  o.preallocate = false;
  return o;
}

SegmentedLogOptions preallocated(Warnings& warnings) {
  SegmentedLogOptions o = options(warnings);
  o.maxSegmentBytes = 64u << 10;
  o.preallocate = true;
  return o;
}

std::uint64_t fileSize(const std::string& path) {
  return static_cast<std::uint64_t>(QFileInfo(QString::fromStdString(path)).size());
}

/// Writes entries 1..count with segments of 100 entries; returns them.
std::vector<Entry> writeLog(const std::string& dir, Index count) {
  Warnings warnings;
  SegmentedLog log(PosixFileSystem::instance(), dir, options(warnings));
  std::vector<Entry> entries = makeEntries(1, count, 1, kPayload);
  for (Index i = 0; i < count; i += 25) {
    log.append(
        std::vector<Entry>(entries.begin() + i, entries.begin() + std::min<Index>(i + 25, count)));
  }
  return entries;
}

void verifyPrefix(const SegmentedLog& log, const std::vector<Entry>& expected, Index last) {
  QCOMPARE(log.lastIndex(), last);
  const std::vector<Entry> read = log.entries(1, last + 1);
  QCOMPARE(read.size(), static_cast<std::size_t>(last));
  for (Index i = 0; i < last; ++i) QVERIFY(read[i] == expected[i]);
}

void resize(const std::string& path, std::uint64_t size) {
  QVERIFY(QFile::resize(QString::fromStdString(path), static_cast<qint64>(size)));
}

}  // namespace

class StorageRecoveryTest : public QObject {
  Q_OBJECT

 private slots:
  void preallocatedSegmentsReopenCleanly() {
    QTemporaryDir dir;
    const std::string path = dir.path().toStdString();
    const std::vector<Entry> entries = makeEntries(1, 250, 1, kPayload);
    {
      Warnings warnings;
      SegmentedLog log(PosixFileSystem::instance(), path, preallocated(warnings));
      for (Index i = 0; i < 250; i += 25) {
        log.append(std::vector<Entry>(entries.begin() + static_cast<std::ptrdiff_t>(i),
                                      entries.begin() + static_cast<std::ptrdiff_t>(i + 25)));
      }
      QVERIFY(warnings.messages.empty());
    }
    // Closed segments are trimmed to their last frame; the newest is full size.
    QCOMPARE(fileSize(segmentPath(path, 1)), offsetOf(1, 101));
    QCOMPARE(fileSize(segmentPath(path, 2)), offsetOf(101, 201));
    QCOMPARE(fileSize(segmentPath(path, 3)), std::uint64_t{64u << 10});
    Warnings warnings;
    SegmentedLog log(PosixFileSystem::instance(), path, preallocated(warnings));
    QVERIFY2(warnings.messages.empty(), warnings.all().c_str());
    verifyPrefix(log, entries, 250);
    QCOMPARE(log.bytes(), offsetOf(1, 101) + offsetOf(101, 201) + offsetOf(201, 251));
  }

  void tornTailInPreallocatedSpace() {
    QTemporaryDir dir;
    const std::string path = dir.path().toStdString();
    const std::vector<Entry> entries = makeEntries(1, 250, 1, kPayload);
    {
      Warnings warnings;
      SegmentedLog log(PosixFileSystem::instance(), path, preallocated(warnings));
      log.append(entries);
    }
    // Half of a frame written into the zeros after the last entry.
    const std::string newest = segmentPath(path, 3);
    std::string bytes = storage_test::readFile(newest);
    const std::uint64_t end = offsetOf(201, 251);
    const std::string garbage = storage_test::randomBytes(40, 3);
    std::copy(garbage.begin(), garbage.end(), bytes.begin() + static_cast<std::ptrdiff_t>(end));
    storage_test::writeFile(newest, bytes);
    Warnings warnings;
    SegmentedLog log(PosixFileSystem::instance(), path, preallocated(warnings));
    verifyPrefix(log, entries, 250);
    QVERIFY2(warnings.any(newest) && warnings.any("offset " + std::to_string(end)),
             warnings.all().c_str());
    // Truncated, then allocated again: zeros after the last frame.
    QCOMPARE(fileSize(newest), std::uint64_t{64u << 10});
    log.append(makeEntries(251, 260, 1, kPayload));
    Warnings again;
    SegmentedLog reopened(PosixFileSystem::instance(), path, preallocated(again));
    QCOMPARE(reopened.lastIndex(), Index(260));
    QVERIFY(again.messages.empty());
  }

  void untrimmedOlderSegmentIsTrimmedOnOpen() {
    QTemporaryDir dir;
    const std::string path = dir.path().toStdString();
    const std::vector<Entry> entries = makeEntries(1, 150, 1, kPayload);
    {
      Warnings warnings;
      SegmentedLog log(PosixFileSystem::instance(), path, preallocated(warnings));
      log.append(entries);
    }
    // A crash between creating segment 2 and trimming segment 1.
    const std::string first = segmentPath(path, 1);
    storage_test::writeFile(first, storage_test::readFile(first) + std::string(5000, '\0'));
    Warnings warnings;
    SegmentedLog log(PosixFileSystem::instance(), path, preallocated(warnings));
    QVERIFY2(warnings.messages.empty(), warnings.all().c_str());
    verifyPrefix(log, entries, 150);
    QCOMPARE(fileSize(first), offsetOf(1, 101));
  }

  void tornTailCutMidEntry() {
    QTemporaryDir dir;
    const std::string path = dir.path().toStdString();
    const std::vector<Entry> entries = writeLog(path, 250);  // segments 1..3, newest holds 201..250
    const std::string newest = segmentPath(path, 3);
    const std::uint64_t cut = offsetOf(201, 250) + 20;
    resize(newest, cut);
    Warnings warnings;
    SegmentedLog log(PosixFileSystem::instance(), path, options(warnings));
    verifyPrefix(log, entries, 249);
    QVERIFY2(warnings.any(newest) && warnings.any("offset " + std::to_string(offsetOf(201, 250))),
             warnings.all().c_str());
    QCOMPARE(static_cast<std::uint64_t>(QFileInfo(QString::fromStdString(newest)).size()),
             offsetOf(201, 250));
    // The log keeps working and a second open is clean.
    log.append(makeEntries(250, 260, 2, kPayload));
    Warnings again;
    SegmentedLog reopened(PosixFileSystem::instance(), path, options(again));
    QCOMPARE(reopened.lastIndex(), Index(260));
    QVERIFY(again.messages.empty());
  }

  void tornTailZeroed() {
    QTemporaryDir dir;
    const std::string path = dir.path().toStdString();
    const std::vector<Entry> entries = writeLog(path, 250);
    const std::string newest = segmentPath(path, 3);
    std::string bytes = storage_test::readFile(newest);
    const std::uint64_t zeroFrom = bytes.size() - 512;
    std::fill(bytes.begin() + static_cast<std::ptrdiff_t>(zeroFrom), bytes.end(), '\0');
    storage_test::writeFile(newest, bytes);
    Index last = 200;
    while (offsetOf(201, last + 2) <= zeroFrom) ++last;
    Warnings warnings;
    SegmentedLog log(PosixFileSystem::instance(), path, options(warnings));
    verifyPrefix(log, entries, last);
    QVERIFY(last < 250 && last > 200);
    QVERIFY2(
        warnings.any(newest) && warnings.any("offset " + std::to_string(offsetOf(201, last + 1))),
        warnings.all().c_str());
  }

  void tornTailGarbageAppended() {
    QTemporaryDir dir;
    const std::string path = dir.path().toStdString();
    const std::vector<Entry> entries = writeLog(path, 250);
    const std::string newest = segmentPath(path, 3);
    const std::uint64_t end = offsetOf(201, 251);
    storage_test::writeFile(newest,
                            storage_test::readFile(newest) + storage_test::randomBytes(3000, 7));
    Warnings warnings;
    SegmentedLog log(PosixFileSystem::instance(), path, options(warnings));
    verifyPrefix(log, entries, 250);
    QVERIFY2(warnings.any(newest) && warnings.any("offset " + std::to_string(end)),
             warnings.all().c_str());
  }

  void tornTailOfAnEmptyNewSegment() {
    QTemporaryDir dir;
    const std::string path = dir.path().toStdString();
    const std::vector<Entry> entries = writeLog(path, 201);
    resize(segmentPath(path, 3), copycat::storage::format::kSegmentHeaderSize + 10);
    Warnings warnings;
    SegmentedLog log(PosixFileSystem::instance(), path, options(warnings));
    verifyPrefix(log, entries, 200);
    QCOMPARE(log.append(makeEntries(201, 202, 1, kPayload)), Index(202));
  }

  void badChecksumInClosedSegmentRefusesToOpen() {
    QTemporaryDir dir;
    const std::string path = dir.path().toStdString();
    writeLog(path, 250);
    const std::string closed = segmentPath(path, 2);
    const std::uint64_t offset = offsetOf(101, 150);
    storage_test::flipByte(closed, offset + 50);  // inside entry 150's payload
    Warnings warnings;
    const std::string error = storage_test::storageErrorOf(
        [&] { SegmentedLog log(PosixFileSystem::instance(), path, options(warnings)); });
    QVERIFY2(error.find(closed) != std::string::npos, error.c_str());
    QVERIFY2(error.find("offset " + std::to_string(offset)) != std::string::npos, error.c_str());
    QVERIFY2(error.find("index 150") != std::string::npos, error.c_str());
    // Nothing was truncated.
    QCOMPARE(static_cast<std::uint64_t>(QFileInfo(QString::fromStdString(closed)).size()),
             offsetOf(101, 201));
  }

  void badEntryBeforeTheTailOfTheNewestRefusesToOpen() {
    QTemporaryDir dir;
    const std::string path = dir.path().toStdString();
    writeLog(path, 250);
    const std::string newest = segmentPath(path, 3);
    const std::uint64_t offset = offsetOf(201, 230);
    const std::uint64_t size = QFileInfo(QString::fromStdString(newest)).size();
    storage_test::flipByte(newest, offset + 4);  // entry 230's checksum
    Warnings warnings;
    const std::string error = storage_test::storageErrorOf(
        [&] { SegmentedLog log(PosixFileSystem::instance(), path, options(warnings)); });
    QVERIFY2(error.find(newest) != std::string::npos, error.c_str());
    QVERIFY2(error.find("offset " + std::to_string(offset)) != std::string::npos, error.c_str());
    QVERIFY2(error.find("index 230") != std::string::npos, error.c_str());
    QCOMPARE(static_cast<std::uint64_t>(QFileInfo(QString::fromStdString(newest)).size()), size);
  }

  void corruptLengthBeforeTheTailRefusesToOpen() {
    QTemporaryDir dir;
    const std::string path = dir.path().toStdString();
    writeLog(path, 250);
    const std::string newest = segmentPath(path, 3);
    storage_test::flipByte(newest, offsetOf(201, 210) + 1);  // entry 210's length field
    Warnings warnings;
    const std::string error = storage_test::storageErrorOf(
        [&] { SegmentedLog log(PosixFileSystem::instance(), path, options(warnings)); });
    QVERIFY2(error.find("index 210") != std::string::npos, error.c_str());
  }

  void badSegmentHeaderRefusesToOpen() {
    QTemporaryDir dir;
    const std::string path = dir.path().toStdString();
    writeLog(path, 250);
    storage_test::flipByte(segmentPath(path, 2), 20);
    Warnings warnings;
    const std::string error = storage_test::storageErrorOf(
        [&] { SegmentedLog log(PosixFileSystem::instance(), path, options(warnings)); });
    QVERIFY2(error.find(segmentPath(path, 2)) != std::string::npos &&
                 error.find("header") != std::string::npos,
             error.c_str());
  }

  void missingMiddleSegmentRefusesToOpen() {
    QTemporaryDir dir;
    const std::string path = dir.path().toStdString();
    writeLog(path, 250);
    QVERIFY(QFile::remove(QString::fromStdString(segmentPath(path, 2))));
    Warnings warnings;
    const std::string error = storage_test::storageErrorOf(
        [&] { SegmentedLog log(PosixFileSystem::instance(), path, options(warnings)); });
    QVERIFY2(error.find(segmentPath(path, 3)) != std::string::npos, error.c_str());
  }

  void staleTemporaryFilesAreRemoved() {
    QTemporaryDir dir;
    const std::string path = dir.path().toStdString();
    writeLog(path, 50);
    storage_test::writeFile(segmentPath(path, 2) + ".tmp", "partial");
    Warnings warnings;
    SegmentedLog log(PosixFileSystem::instance(), path, options(warnings));
    QCOMPARE(log.lastIndex(), Index(50));
    QVERIFY(!QFile::exists(QString::fromStdString(segmentPath(path, 2) + ".tmp")));
    QVERIFY(warnings.any(".tmp"));
  }

  void diskFullDuringAppend() {
    QTemporaryDir dir;
    const std::string path = dir.path().toStdString();
    CrashableFileSystem fs;
    Warnings warnings;
    const std::vector<Entry> entries = makeEntries(1, 40, 1, kPayload);
    {
      SegmentedLog log(fs, path, options(warnings, 1000));
      QCOMPARE(log.append({entries.begin(), entries.begin() + 20}), Index(20));
      fs.failWritesAfterBytes(300);
      StorageError error("");
      try {
        log.append({entries.begin() + 20, entries.end()});
        QFAIL("append succeeded on a full disk");
      } catch (const StorageError& e) {
        error = e;
      }
      QCOMPARE(error.errorNumber(), ENOSPC);
      QCOMPARE(log.lastIndex(), Index(20));
      QVERIFY(log.failed());
      fs.clearFaults();
      QVERIFY_THROWS_EXCEPTION(StorageError, log.append({entries.begin() + 20, entries.end()}));
      QVERIFY_THROWS_EXCEPTION(StorageError, log.truncateSuffix(10));
      QCOMPARE(log.lastIndex(), Index(20));
      QCOMPARE(log.entries(1, 21), std::vector<Entry>(entries.begin(), entries.begin() + 20));
    }
    fs.crash();
    SegmentedLog reopened(fs, path, options(warnings, 1000));
    verifyPrefix(reopened, entries, 20);
  }

  void ioErrorOnSyncDuringAppend() {
    QTemporaryDir dir;
    const std::string path = dir.path().toStdString();
    CrashableFileSystem fs;
    Warnings warnings;
    const std::vector<Entry> entries = makeEntries(1, 40, 1, kPayload);
    {
      SegmentedLog log(fs, path, options(warnings, 1000));
      log.append({entries.begin(), entries.begin() + 20});
      fs.failSyncNumber(1);
      StorageError error("");
      try {
        log.append({entries.begin() + 20, entries.end()});
        QFAIL("append succeeded although fdatasync failed");
      } catch (const StorageError& e) {
        error = e;
      }
      QCOMPARE(error.errorNumber(), EIO);
      QVERIFY(std::string(error.what()).find(segmentPath(path, 1)) != std::string::npos);
      QCOMPARE(log.lastIndex(), Index(20));
      QVERIFY_THROWS_EXCEPTION(StorageError, log.append({entries.begin() + 20, entries.end()}));
    }
    fs.crash();
    SegmentedLog reopened(fs, path, options(warnings, 1000));
    verifyPrefix(reopened, entries, 20);
  }

  // Random disk-full points and torn crashes: whatever append acknowledged is
  // there after the crash, and the log always opens.
  void crashesNeverLoseAcknowledgedEntries() {
    for (std::uint64_t seed = 1; seed <= 60; ++seed) {
      QTemporaryDir dir;
      const std::string path = dir.path().toStdString();
      CrashableFileSystem fs;
      Warnings warnings;
      std::mt19937_64 random(seed);
      const std::vector<Entry> entries = makeEntries(1, 400, 1, kPayload);
      Index acknowledged = 0;
      {
        SegmentedLog log(fs, path, options(warnings, 7));
        fs.failWritesAfterBytes(random() % 40000);
        try {
          while (acknowledged < 400) {
            const Index batch = std::min<Index>(1 + random() % 30, 400 - acknowledged);
            acknowledged = log.append(
                {entries.begin() + acknowledged, entries.begin() + acknowledged + batch});
          }
        } catch (const StorageError&) {
          QVERIFY(log.failed());
        }
        // A batch spanning segments may have made its first part durable.
        QVERIFY(log.lastIndex() >= acknowledged);
        acknowledged = log.lastIndex();
      }
      CrashOptions crash;
      crash.tornWritesSeed = seed;
      crash.undoUnsyncedNamespaceChanges = seed % 2 == 0;
      fs.crash(crash);
      try {
        SegmentedLog reopened(fs, path, options(warnings, 7));
        QVERIFY2(reopened.lastIndex() >= acknowledged, ("seed " + std::to_string(seed)).c_str());
        verifyPrefix(reopened, entries, reopened.lastIndex());
      } catch (const StorageError& error) {
        QFAIL(("seed " + std::to_string(seed) + ": " + error.what()).c_str());
      }
    }
  }

  // Random appends (with conflicting suffixes), compactions and resets, a
  // disk fault at a random point, then a torn crash: the log always opens,
  // keeps every entry that was durable before the failing call, and holds
  // old or new entries only where that call was writing.
  void crashesDuringTruncationAndCompaction() {
    int faulted = 0;
    for (std::uint64_t seed = 1; seed <= 80; ++seed) {
      const std::string label = "seed " + std::to_string(seed);
      QTemporaryDir dir;
      const std::string path = dir.path().toStdString();
      CrashableFileSystem fs;
      Warnings warnings;
      std::mt19937_64 random(seed);
      std::map<Index, Entry> model;  // durable entries, by index
      Index modelFirst = 1;
      std::optional<std::vector<Entry>> failedBatch;
      {
        SegmentedLog log(fs, path, options(warnings, 5));
        if (seed % 3 == 0) {
          fs.failSyncNumber(1 + random() % 60);
        } else {
          fs.failWritesAfterBytes(random() % 30000);
        }
        Term term = 1;
        try {
          for (int step = 0; step < 60; ++step) {
            const int what = static_cast<int>(random() % 10);
            if (what < 7 || model.empty()) {
              const Index last = model.empty() ? modelFirst - 1 : model.rbegin()->first;
              Index from = last + 1;
              if (what < 2 && last >= modelFirst)
                from = modelFirst + random() % (last - modelFirst + 1);
              if (from < last + 1) ++term;
              std::vector<Entry> batch =
                  makeEntries(from, from + random() % 12, term, random() % 200);
              failedBatch = batch;
              log.append(batch);
              failedBatch.reset();
              model.erase(model.lower_bound(from), model.end());
              for (const Entry& e : batch) model[e.index] = e;
            } else if (what < 9) {
              const Index upTo = modelFirst + random() % (model.rbegin()->first - modelFirst + 1);
              log.compactPrefix(upTo);
              while (model.begin()->first < log.firstIndex()) model.erase(model.begin());
              modelFirst = log.firstIndex();
            } else {
              const Index next = model.rbegin()->first + 1 + random() % 5;
              failedBatch = std::vector<Entry>{};
              log.reset(next, term);
              failedBatch.reset();
              model.clear();
              modelFirst = next;
            }
          }
        } catch (const StorageError&) {
          QVERIFY2(log.failed(), label.c_str());
        }
      }
      CrashOptions crash;
      crash.tornWritesSeed = seed;
      crash.undoUnsyncedNamespaceChanges = seed % 2 == 1;
      fs.crash(crash);
      try {
        SegmentedLog reopened(fs, path, options(warnings, 5));
        const Index reopenedFirst = reopened.firstIndex();
        if (!failedBatch) {
          QVERIFY2(reopenedFirst <= modelFirst, label.c_str());
        }
        const Index from =
            failedBatch && !failedBatch->empty() ? failedBatch->front().index : ~Index(0);
        for (const auto& [index, entry] : model) {
          if (index < reopenedFirst) continue;
          if (index >= from) break;
          if (failedBatch && failedBatch->empty()) break;  // a failed reset may drop anything
          QVERIFY2(index <= reopened.lastIndex(),
                   (label + ": lost index " + std::to_string(index)).c_str());
          QVERIFY2(reopened.entry(index) == entry,
                   (label + ": index " + std::to_string(index)).c_str());
        }
        if (!failedBatch && !model.empty()) QCOMPARE(reopened.lastIndex(), model.rbegin()->first);
        if (failedBatch && !failedBatch->empty()) {
          ++faulted;
          for (Index index = std::max(from, reopenedFirst); index <= reopened.lastIndex();
               ++index) {
            const Entry read = reopened.entry(index);
            const bool isNew =
                index - from < failedBatch->size() && read == (*failedBatch)[index - from];
            const bool isOld = model.count(index) != 0 && read == model[index];
            QVERIFY2(isNew || isOld,
                     (label + ": foreign entry at " + std::to_string(index)).c_str());
          }
        }
      } catch (const StorageError& error) {
        QFAIL((label + ": " + error.what()).c_str());
      }
    }
    QVERIFY2(faulted >= 30, std::to_string(faulted).c_str());
  }

  void ioErrorRightAfterASegmentRoll() {
    QTemporaryDir dir;
    const std::string path = dir.path().toStdString();
    CrashableFileSystem fs;
    Warnings warnings;
    {
      SegmentedLog log(fs, path, options(warnings, 10));
      log.append(makeEntries(1, 10, 1, kPayload));
      fs.failSyncNumber(2);  // the first entry batch of segment 2 after its header
      QVERIFY_THROWS_EXCEPTION(StorageError, log.append(makeEntries(11, 12, 1, kPayload)));
    }
    fs.crash();
    SegmentedLog reopened(fs, path, options(warnings, 10));
    QCOMPARE(reopened.lastIndex(), Index(10));
    QCOMPARE(reopened.append(makeEntries(11, 12, 1, kPayload)), Index(12));
  }
};

QTEST_APPLESS_MAIN(StorageRecoveryTest)
#include "storage_recovery_test.moc"
