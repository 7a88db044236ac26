// SegmentedLog on real files: append, read, truncate and compact across many
// segments, and reopening to an identical log.

#include <memory>
#include <string>
#include <vector>

#include <QFileInfo>
#include <QTemporaryDir>
#include <QTest>

#include "engine/storage/file_system.h"
#include "engine/storage/format.h"
#include "engine/storage/segmented_log.h"
#include "tests/storage_test_util.h"

using copycat::raft::Entry;
using copycat::raft::Index;
using copycat::storage::CountingFileSystem;
using copycat::storage::PosixFileSystem;
using copycat::storage::SegmentedLog;
using copycat::storage::SegmentedLogOptions;
using storage_test::makeEntries;
using storage_test::makeEntry;

namespace {

SegmentedLogOptions fiftyPerSegment() {
  SegmentedLogOptions options;
  options.maxSegmentEntries = 50;
  return options;
}

SegmentedLogOptions smallSegments() {
  SegmentedLogOptions options;
  options.maxSegmentBytes = 4096;
  options.maxSegmentEntries = 50;
  return options;
}

/// The entries the log should hold: index i has term termOf[i].
void verifyLog(const SegmentedLog& log, const std::vector<Entry>& expected) {
  QCOMPARE(log.lastIndex(), expected.empty() ? log.firstIndex() - 1 : expected.back().index);
  const std::vector<Entry> all = log.entries(log.firstIndex(), log.lastIndex() + 1);
  QCOMPARE(all.size(), static_cast<std::size_t>(log.lastIndex() + 1 - log.firstIndex()));
  for (const Entry& entry : all) {
    const Entry& want = expected[entry.index - expected.front().index];
    QVERIFY2(entry == want, ("entry " + std::to_string(entry.index) + " differs").c_str());
    QCOMPARE(log.term(entry.index).value(), want.term);
  }
}

}  // namespace

class StorageLogTest : public QObject {
  Q_OBJECT

 private slots:
  void emptyLog() {
    QTemporaryDir dir;
    SegmentedLog log(PosixFileSystem::instance(), dir.path().toStdString(), {});
    QCOMPARE(log.firstIndex(), Index(1));
    QCOMPARE(log.lastIndex(), Index(0));
    QCOMPARE(log.term(0).value(), copycat::raft::Term(0));
    QVERIFY(!log.term(1));
    QCOMPARE(log.segmentCount(), std::size_t(1));
  }

  void appendReadAcrossSegments() {
    QTemporaryDir dir;
    const std::string path = dir.path().toStdString();
    std::vector<Entry> expected;
    {
      SegmentedLog log(PosixFileSystem::instance(), path, smallSegments());
      Index next = 1;
      for (std::size_t batch : {1, 5, 16, 37, 64, 128, 3, 256, 1, 89}) {
        std::vector<Entry> entries = makeEntries(next, next + batch - 1, 1 + next / 100);
        QCOMPARE(log.append(entries), next + batch - 1);
        expected.insert(expected.end(), entries.begin(), entries.end());
        next += batch;
      }
      QVERIFY(log.segmentCount() > 10);
      verifyLog(log, expected);
      // maxBytes stops early but returns at least one entry.
      const std::vector<Entry> limited = log.entries(10, 400, 1000);
      QVERIFY(!limited.empty() && limited.size() < 20);
      QCOMPARE(limited.front().index, Index(10));
      QCOMPARE(log.entries(10, 400, 1).size(), std::size_t(1));
      QCOMPARE(log.entry(333), expected[332]);
    }
    SegmentedLog reopened(PosixFileSystem::instance(), path, smallSegments());
    verifyLog(reopened, expected);
  }

  void largeEntryGetsItsOwnSegment() {
    QTemporaryDir dir;
    SegmentedLog log(PosixFileSystem::instance(), dir.path().toStdString(), smallSegments());
    std::vector<Entry> entries = makeEntries(1, 3, 1);
    entries[1].data.assign(20000, 'x');
    entries[1].type = copycat::raft::EntryType::Normal;
    log.append(entries);
    QCOMPARE(log.entry(2).data.size(), std::size_t(20000));
    SegmentedLog reopened(PosixFileSystem::instance(), dir.path().toStdString(), smallSegments());
    QCOMPARE(reopened.entries(1, 4), entries);
  }

  void truncateSuffixWithinAndAcrossSegments() {
    QTemporaryDir dir;
    const std::string path = dir.path().toStdString();
    std::vector<Entry> expected = makeEntries(1, 500, 1);
    {
      SegmentedLog log(PosixFileSystem::instance(), path, fiftyPerSegment());
      log.append(expected);
      const std::size_t segments = log.segmentCount();
      // Replace a suffix starting in the middle of a segment.
      std::vector<Entry> replacement = makeEntries(333, 340, 2, 50);
      QCOMPARE(log.append(replacement), Index(340));
      QVERIFY(log.segmentCount() < segments);
      expected.resize(332);
      expected.insert(expected.end(), replacement.begin(), replacement.end());
      verifyLog(log, expected);
      // Truncate exactly at a segment boundary (50 entries per segment).
      log.truncateSuffix(301);
      expected.resize(300);
      verifyLog(log, expected);
      std::vector<Entry> more = makeEntries(301, 420, 3);
      log.append(more);
      expected.insert(expected.end(), more.begin(), more.end());
      verifyLog(log, expected);
    }
    SegmentedLog reopened(PosixFileSystem::instance(), path, fiftyPerSegment());
    verifyLog(reopened, expected);
  }

  void truncateEverything() {
    QTemporaryDir dir;
    SegmentedLog log(PosixFileSystem::instance(), dir.path().toStdString(), smallSegments());
    log.append(makeEntries(1, 200, 1));
    log.truncateSuffix(1);
    QCOMPARE(log.lastIndex(), Index(0));
    QCOMPARE(log.segmentCount(), std::size_t(1));
    log.append(makeEntries(1, 10, 4));
    QCOMPARE(log.term(10).value(), copycat::raft::Term(4));
  }

  void compactPrefixDeletesWholeSegments() {
    QTemporaryDir dir;
    const std::string path = dir.path().toStdString();
    const std::vector<Entry> all = makeEntries(1, 500, 1);
    {
      SegmentedLog log(PosixFileSystem::instance(), path, fiftyPerSegment());
      log.append(all);
      log.compactPrefix(175);
      QCOMPARE(log.firstIndex(), Index(151));  // segments of 50 entries
      QCOMPARE(log.term(150).value(), copycat::raft::Term(1));
      QVERIFY(!log.term(149));
      QCOMPARE(log.entries(151, 152, SIZE_MAX).front(), all[150]);
      // The newest segment is never deleted.
      log.compactPrefix(10000);
      QCOMPARE(log.firstIndex(), Index(451));
      QCOMPARE(log.lastIndex(), Index(500));
    }
    SegmentedLog reopened(PosixFileSystem::instance(), path, fiftyPerSegment());
    QCOMPARE(reopened.firstIndex(), Index(451));
    QCOMPARE(reopened.term(450).value(), copycat::raft::Term(1));
    verifyLog(reopened, std::vector<Entry>(all.begin() + 450, all.end()));
  }

  void resetRestartsAfterASnapshot() {
    QTemporaryDir dir;
    const std::string path = dir.path().toStdString();
    {
      SegmentedLog log(PosixFileSystem::instance(), path, smallSegments());
      log.append(makeEntries(1, 120, 1));
      log.reset(1001, 7);
      QCOMPARE(log.firstIndex(), Index(1001));
      QCOMPARE(log.lastIndex(), Index(1000));
      QCOMPARE(log.term(1000).value(), copycat::raft::Term(7));
      log.append(makeEntries(1001, 1010, 8));
    }
    SegmentedLog reopened(PosixFileSystem::instance(), path, smallSegments());
    QCOMPARE(reopened.firstIndex(), Index(1001));
    QCOMPARE(reopened.lastIndex(), Index(1010));
    QCOMPARE(reopened.term(1000).value(), copycat::raft::Term(7));
  }

  void startsAtTheGivenIndexWhenEmpty() {
    QTemporaryDir dir;
    SegmentedLog log(PosixFileSystem::instance(), dir.path().toStdString(), {}, 51, 3);
    QCOMPARE(log.firstIndex(), Index(51));
    QCOMPARE(log.term(50).value(), copycat::raft::Term(3));
    QVERIFY_THROWS_EXCEPTION(std::invalid_argument, log.append(makeEntries(53, 54, 3)));
    QVERIFY_THROWS_EXCEPTION(std::invalid_argument, log.append(makeEntries(51, 52, 2)));
    QCOMPARE(log.append(makeEntries(51, 52, 3)), Index(52));
  }

  // The newest entries are served from memory, and what they answer is what
  // the file answers: after conflicting appends, truncation, compaction and a
  // reset, and with a byte limit.
  // Appends write real zeros ahead of themselves (in the same write), up to
  // the segment's end, and the zeros read back as preallocated space.
  void appendsWriteZerosAhead() {
    QTemporaryDir dir;
    const std::string path = dir.path().toStdString();
    CountingFileSystem counting(PosixFileSystem::instance());
    SegmentedLogOptions options;
    options.maxSegmentBytes = 64 * 1024;
    options.zeroAheadBytes = 16 * 1024;
    const std::uint64_t frame = copycat::storage::format::frameSize(makeEntry(1, 1));
    std::vector<Entry> expected;
    {
      SegmentedLog log(counting, path, options);
      const std::uint64_t before = counting.bytesWritten();
      expected = makeEntries(1, 1, 1);
      log.append(expected);
      // The first frame and 16 KiB of zeros after it.
      QCOMPARE(counting.bytesWritten() - before, frame + options.zeroAheadBytes);
      // Appends inside the first half of the zeroed run write just their frames.
      const std::uint64_t afterFirst = counting.bytesWritten();
      std::vector<Entry> more = makeEntries(2, 11, 1);
      log.append(more);
      expected.insert(expected.end(), more.begin(), more.end());
      QCOMPARE(counting.bytesWritten() - afterFirst, 10 * frame);
      // Up to the segment's end and never beyond it: the segment holds
      // (64 KiB - header) / frame entries, the next starts a new file.
      Index next = 12;
      while (log.segmentCount() == 1) {
        std::vector<Entry> entry = makeEntries(next, next, 1);
        log.append(entry);
        expected.push_back(entry.front());
        ++next;
      }
      QVERIFY(QFileInfo(QString::fromStdString(path) + "/" +
                        QString::fromStdString(copycat::storage::format::segmentFileName(1)))
                  .size() <= static_cast<qint64>(options.maxSegmentBytes));
    }
    SegmentedLog reopened(PosixFileSystem::instance(), path, options);
    verifyLog(reopened, expected);
    // Off: only frames are written.
    QTemporaryDir other;
    CountingFileSystem plain(PosixFileSystem::instance());
    options.zeroAheadBytes = 0;
    SegmentedLog log(plain, other.path().toStdString(), options);
    const std::uint64_t before = plain.bytesWritten();
    log.append(makeEntries(1, 3, 1));
    QCOMPARE(plain.bytesWritten() - before, 3 * frame);
  }

  void tailCacheAnswersLikeTheFile() {
    QTemporaryDir dir;
    const std::string path = dir.path().toStdString();
    CountingFileSystem counting(PosixFileSystem::instance());
    SegmentedLogOptions options = fiftyPerSegment();
    options.tailCacheBytes = 30 * makeEntry(1, 1).byteSize();  // about 30 entries
    std::vector<Entry> expected;
    struct Read {
      Index from, to;
      std::size_t maxBytes;
      std::vector<Entry> entries;
    };
    std::vector<Read> reads;
    {
      SegmentedLog log(counting, path, options);
      Index next = 1;
      for (std::size_t batch : {7, 1, 40, 3, 90, 12, 1, 26}) {
        std::vector<Entry> entries = makeEntries(next, next + batch - 1, 1);
        log.append(entries);
        expected.insert(expected.end(), entries.begin(), entries.end());
        next += batch;
        verifyLog(log, expected);
      }
      // The newest ten are read without touching the file; older ones are not.
      std::uint64_t before = counting.fileReads();
      const std::vector<Entry> newest = log.entries(log.lastIndex() - 9, log.lastIndex() + 1);
      QCOMPARE(newest, std::vector<Entry>(expected.end() - 10, expected.end()));
      QCOMPARE(counting.fileReads(), before);
      QCOMPARE(log.entries(5, 8), std::vector<Entry>(expected.begin() + 4, expected.begin() + 7));
      QVERIFY(counting.fileReads() > before);

      // A conflicting append replaces the cached suffix.
      std::vector<Entry> replacement = makeEntries(170, 175, 2, 60);
      log.append(replacement);
      expected.resize(169);
      expected.insert(expected.end(), replacement.begin(), replacement.end());
      verifyLog(log, expected);
      before = counting.fileReads();
      QCOMPARE(log.entries(170, 176), replacement);
      QCOMPARE(counting.fileReads(), before);

      log.truncateSuffix(173);
      expected.resize(172);
      verifyLog(log, expected);
      std::vector<Entry> more = makeEntries(173, 230, 3);
      log.append(more);
      expected.insert(expected.end(), more.begin(), more.end());
      verifyLog(log, expected);

      log.compactPrefix(120);
      expected.erase(expected.begin(), expected.begin() + (log.firstIndex() - 1));
      verifyLog(log, expected);
      for (Index from = log.firstIndex(); from <= log.lastIndex(); from += 7) {
        for (std::size_t maxBytes : {std::size_t(1), std::size_t(900), SIZE_MAX}) {
          reads.push_back({from, log.lastIndex() + 1, maxBytes,
                           log.entries(from, log.lastIndex() + 1, maxBytes)});
        }
      }
    }
    options.tailCacheBytes = 0;  // everything from the file
    {
      SegmentedLog reopened(PosixFileSystem::instance(), path, options);
      for (const Read& read : reads) {
        QCOMPARE(reopened.entries(read.from, read.to, read.maxBytes), read.entries);
      }
      // After a reset only the new entries are served, cached or not.
      reopened.reset(1001, 7);
      reopened.append(makeEntries(1001, 1010, 8));
      QCOMPARE(reopened.entries(1001, 1011), makeEntries(1001, 1010, 8));
    }
    options.tailCacheBytes = 30 * makeEntry(1, 1).byteSize();
    SegmentedLog cached(PosixFileSystem::instance(), path, options);
    cached.reset(2001, 9);
    cached.append(makeEntries(2001, 2005, 9));
    QCOMPARE(cached.entries(2001, 2006), makeEntries(2001, 2005, 9));
  }

  void entriesOutsideTheLogThrow() {
    QTemporaryDir dir;
    SegmentedLog log(PosixFileSystem::instance(), dir.path().toStdString(), {});
    log.append(makeEntries(1, 5, 1));
    QVERIFY_THROWS_EXCEPTION(std::out_of_range, log.entries(0, 3));
    QVERIFY_THROWS_EXCEPTION(std::out_of_range, log.entries(2, 7));
    QCOMPARE(log.entries(3, 3).size(), std::size_t(0));
  }
};

QTEST_APPLESS_MAIN(StorageLogTest)
#include "storage_log_test.moc"
