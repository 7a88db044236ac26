// SnapshotStore: durable writes, retention, chunked reads and receives, and
// crashes at every step of writing a snapshot.

#include <functional>
#include <string>
#include <vector>

#include <QDir>
#include <QTemporaryDir>
#include <QTest>

#include "engine/storage/crashable_file_system.h"
#include "engine/storage/format.h"
#include "engine/storage/snapshot_store.h"
#include "tests/storage_test_util.h"

using copycat::raft::SnapshotMeta;
using copycat::storage::CrashableFileSystem;
using copycat::storage::CrashOptions;
using copycat::storage::PosixFileSystem;
using copycat::storage::SnapshotStore;
using copycat::storage::StorageError;
using storage_test::Warnings;

namespace {

SnapshotMeta meta(copycat::raft::Index index, copycat::raft::Term term) {
  SnapshotMeta m;
  m.index = index;
  m.term = term;
  m.membership.voters = {1, 2, 3};
  m.membership.learners = {4};
  return m;
}

std::string data(std::size_t size, std::uint64_t seed) {
  return storage_test::randomBytes(size, seed);
}

QStringList filesIn(const std::string& dir) {
  return QDir(QString::fromStdString(dir)).entryList(QDir::Files | QDir::Hidden);
}

struct Stop {};

}  // namespace

class StorageSnapshotTest : public QObject {
  Q_OBJECT

 private slots:
  void writeReadAndKeepTwo() {
    QTemporaryDir dir;
    const std::string path = dir.path().toStdString();
    {
      SnapshotStore store(PosixFileSystem::instance(), path);
      QVERIFY(store.empty());
      QVERIFY(store.latest().isEmpty());
      store.write(meta(10, 1), data(5000, 1));
      store.write(meta(20, 2), data(7000, 2));
      store.write(meta(30, 2), data(3000, 3));
      QCOMPARE(store.snapshots().size(), std::size_t(2));
      QCOMPARE(store.latest().index, copycat::raft::Index(30));
      QCOMPARE(store.latest().size, std::uint64_t(3000));
      QCOMPARE(store.readAll(), data(3000, 3));
      QCOMPARE(store.readChunk(1000, 500), data(3000, 3).substr(1000, 500));
      QCOMPARE(store.readChunk(2900, 500), data(3000, 3).substr(2900));
      QVERIFY(store.readChunk(3000, 500).empty());
    }
    QCOMPARE(filesIn(path).size(), 2);
    SnapshotStore store(PosixFileSystem::instance(), path);
    QCOMPARE(store.latest(), (SnapshotMeta{30, 2, {{1, 2, 3}, {4}}, 3000}));
    QCOMPARE(store.readAll(), data(3000, 3));
  }

  // With a background runner, superseded files are removed by the job it
  // was given, in order; until the job runs they are still there, and a
  // store opened meanwhile prunes them itself.
  void supersededFilesAreRemovedInTheBackground() {
    QTemporaryDir dir;
    const std::string path = dir.path().toStdString();
    std::vector<std::function<void()>> jobs;
    SnapshotStore store(PosixFileSystem::instance(), path, 1, {},
                        [&jobs](std::function<void()> job) { jobs.push_back(std::move(job)); });
    store.write(meta(10, 1), data(5000, 1));
    QVERIFY(jobs.empty());
    store.write(meta(20, 2), data(7000, 2));
    store.write(meta(30, 2), data(3000, 3));
    QCOMPARE(jobs.size(), std::size_t(2));
    QCOMPARE(store.snapshots().size(), std::size_t(1));
    QCOMPARE(filesIn(path).size(), 3);
    {
      SnapshotStore reopened(PosixFileSystem::instance(), path, 1);
      QCOMPARE(reopened.latest().index, copycat::raft::Index(30));
      QCOMPARE(filesIn(path).size(), 1);
    }
    store.write(meta(40, 2), data(1000, 4));
    QCOMPARE(jobs.size(), std::size_t(3));
    // The first two jobs find their files gone already (at most a warning).
    for (const auto& job : jobs) job();
    QCOMPARE(
        filesIn(path),
        QStringList{QString::fromStdString(copycat::storage::format::snapshotFileName(40, 2))});
    QCOMPARE(store.readAll(), data(1000, 4));
  }

  // The latest snapshot's bytes are handed out without a copy (a mapping of
  // its file) and stay readable, unchanged, after the store moved on and
  // removed that file.
  void latestBytesOutliveTheirFile() {
    QTemporaryDir dir;
    const std::string path = dir.path().toStdString();
    SnapshotStore store(PosixFileSystem::instance(), path, 1);
    QVERIFY(store.latestBytes().empty());
    const std::string first = data(3 * 4096 + 17, 7);
    store.write(meta(10, 1), first);
    const copycat::storage::SharedBytes held = store.latestBytes();
    QCOMPARE(held.view(), std::string_view(first));
    QCOMPARE(held.slice(4096, 100).view(), std::string_view(first).substr(4096, 100));
    QCOMPARE(held.slice(first.size() - 5, 100).view(),
             std::string_view(first).substr(first.size() - 5));
    store.write(meta(20, 1), data(5000, 8));
    store.write(meta(30, 1), data(6000, 9));
    QCOMPARE(filesIn(path).size(), 1);
    QCOMPARE(held.view(), std::string_view(first));
    QCOMPARE(store.latestBytes().view(), std::string_view(data(6000, 9)));
  }

  // File::view: a real file maps the range at any offset, the bytes survive
  // closing and removing the file; a range past the end is a StorageError;
  // the default (a crash-simulating file) reads the same bytes; a counting
  // file system counts views as reads.
  void fileViewsReturnTheRange() {
    QTemporaryDir dir;
    const std::string path = dir.path().toStdString() + "/file";
    const std::string bytes = data(5 * 4096 + 123, 10);
    copycat::storage::CountingFileSystem counting(PosixFileSystem::instance());
    copycat::storage::SharedBytes middle;
    {
      auto file = counting.open(path, copycat::storage::OpenMode::CreateTruncate);
      file->append(bytes.data(), bytes.size());
      middle = file->view(4096 + 5, 3 * 4096);
      QCOMPARE(file->view(0, bytes.size()).view(), std::string_view(bytes));
      QVERIFY(file->view(bytes.size(), 0).empty());
      QVERIFY_THROWS_EXCEPTION(StorageError, file->view(bytes.size() - 10, 11));
      QCOMPARE(counting.fileReads(), std::uint64_t(4));
    }
    PosixFileSystem::instance().remove(path);
    QCOMPARE(middle.view(), std::string_view(bytes).substr(4096 + 5, 3 * 4096));

    CrashableFileSystem crashable;
    auto file = crashable.open(path, copycat::storage::OpenMode::CreateTruncate);
    file->append(bytes.data(), bytes.size());
    QCOMPARE(file->view(100, 5000).view(), std::string_view(bytes).substr(100, 5000));
    QVERIFY_THROWS_EXCEPTION(StorageError, file->view(bytes.size(), 1));
  }

  void receiveInChunks() {
    QTemporaryDir dir;
    const std::string path = dir.path().toStdString();
    const std::string bytes = data(10000, 4);
    SnapshotMeta m = meta(50, 3);
    m.size = bytes.size();
    {
      SnapshotStore store(PosixFileSystem::instance(), path);
      store.write(meta(10, 1), data(100, 5));
      store.beginReceive(m);
      store.receiveChunk(0, std::string_view(bytes).substr(0, 3000));
      // A restart from offset 0 discards what was received.
      store.beginReceive(m);
      QCOMPARE(store.received(), std::uint64_t(0));
      for (std::size_t offset = 0; offset < bytes.size(); offset += 4096) {
        store.receiveChunk(offset, std::string_view(bytes).substr(offset, 4096));
      }
      store.receiveChunk(0, std::string_view(bytes).substr(0, 4096));  // a repeat is ignored
      QVERIFY_THROWS_EXCEPTION(std::invalid_argument, store.receiveChunk(20000, "x"));
      QCOMPARE(store.latest().index, copycat::raft::Index(10));  // not installed yet
      QCOMPARE(store.finishReceive(), m);
      QCOMPARE(store.latest(), m);
      QCOMPARE(store.readAll(), bytes);
    }
    SnapshotStore store(PosixFileSystem::instance(), path);
    QCOMPARE(store.latest(), m);
    QCOMPARE(store.readAll(), bytes);
  }

  void incompleteOrMismatchedReceiveIsNotInstalled() {
    QTemporaryDir dir;
    const std::string path = dir.path().toStdString();
    const std::string bytes = data(1000, 6);
    SnapshotMeta m = meta(50, 3);
    m.size = bytes.size();
    SnapshotStore store(PosixFileSystem::instance(), path);
    store.write(meta(10, 1), data(100, 5));
    store.beginReceive(m);
    store.receiveChunk(0, std::string_view(bytes).substr(0, 600));
    QVERIFY_THROWS_EXCEPTION(StorageError, store.finishReceive());
    QCOMPARE(store.latest().index, copycat::raft::Index(10));
    store.beginReceive(m);
    QVERIFY_THROWS_EXCEPTION(StorageError, store.receiveChunk(0, bytes + "extra"));
    store.beginReceive(m, 12345);  // wrong checksum
    store.receiveChunk(0, bytes);
    QVERIFY_THROWS_EXCEPTION(StorageError, store.finishReceive());
    QCOMPARE(store.latest().index, copycat::raft::Index(10));
    store.beginReceive(m, copycat::storage::format::checksum(bytes.data(), bytes.size()));
    store.receiveChunk(0, bytes);
    QCOMPARE(store.finishReceive().index, copycat::raft::Index(50));
    QCOMPARE(filesIn(path).size(), 2);  // no temporary file left
  }

  void corruptNewestFallsBackToPrevious() {
    QTemporaryDir dir;
    const std::string path = dir.path().toStdString();
    std::string newest;
    {
      SnapshotStore store(PosixFileSystem::instance(), path);
      store.write(meta(10, 1), data(5000, 1));
      store.write(meta(20, 2), data(5000, 2));
      newest = path + "/" + copycat::storage::format::snapshotFileName(20, 2);
    }
    storage_test::flipByte(newest, 3000);  // in the data
    Warnings warnings;
    SnapshotStore store(PosixFileSystem::instance(), path, 2, warnings.sink());
    QCOMPARE(store.latest().index, copycat::raft::Index(10));
    QCOMPARE(store.readAll(), data(5000, 1));
    QVERIFY2(warnings.any(newest), warnings.all().c_str());
    QVERIFY(QFile::exists(QString::fromStdString(newest + ".corrupt")));
  }

  void truncatedNewestFallsBackToPrevious() {
    QTemporaryDir dir;
    const std::string path = dir.path().toStdString();
    {
      SnapshotStore store(PosixFileSystem::instance(), path);
      store.write(meta(10, 1), data(5000, 1));
      store.write(meta(20, 2), data(5000, 2));
    }
    const std::string newest = path + "/" + copycat::storage::format::snapshotFileName(20, 2);
    QVERIFY(QFile::resize(QString::fromStdString(newest), 2000));
    Warnings warnings;
    SnapshotStore store(PosixFileSystem::instance(), path, 2, warnings.sink());
    QCOMPARE(store.latest().index, copycat::raft::Index(10));
  }

  // A crash at every step of writing (or installing a received) snapshot:
  // on restart the old or the new snapshot is used, never a partial one, and
  // no temporary file remains.
  void crashAtEveryStep() {
    const std::vector<std::string> steps = {"partial-write", "temp-written", "temp-synced",
                                            "renamed", "directory-synced"};
    for (bool received : {false, true}) {
      for (const std::string& step : steps) {
        for (bool undo : {true, false}) {
          const std::string label =
              step + (received ? " (received)" : " (written)") + (undo ? " undo" : " keep");
          QTemporaryDir dir;
          const std::string path = dir.path().toStdString();
          CrashableFileSystem fs;
          const std::string oldData = data(6000, 1);
          const std::string newData = data(9000, 2);
          SnapshotMeta newMeta = meta(20, 2);
          newMeta.size = newData.size();
          {
            SnapshotStore store(fs, path);
            store.write(meta(10, 1), oldData);
            if (step == "partial-write") {
              fs.failWritesAfterBytes(4000);
            } else {
              store.setStepObserver([&](const char* at) {
                if (step == at) throw Stop{};
              });
            }
            try {
              if (received) {
                store.beginReceive(newMeta);
                for (std::size_t offset = 0; offset < newData.size(); offset += 2000) {
                  store.receiveChunk(offset, std::string_view(newData).substr(offset, 2000));
                }
                store.finishReceive();
              } else {
                store.write(newMeta, newData);
              }
              QVERIFY2(false, ("no crash point reached: " + label).c_str());
            } catch (const Stop&) {
            } catch (const StorageError&) {
              QVERIFY2(step == "partial-write", label.c_str());
            }
          }
          CrashOptions crash;
          crash.undoUnsyncedNamespaceChanges = undo;
          crash.tornWritesSeed = 3;
          fs.crash(crash);
          Warnings warnings;
          SnapshotStore store(fs, path, 2, warnings.sink());
          const bool expectNew = step == "directory-synced" || (step == "renamed" && !undo);
          QVERIFY2(store.latest().index == (expectNew ? 20u : 10u), label.c_str());
          QVERIFY2(store.readAll() == (expectNew ? newData : oldData), label.c_str());
          for (const QString& name : filesIn(path)) {
            QVERIFY2(!name.endsWith(".tmp") && !name.endsWith(".corrupt"),
                     (label + ": " + name.toStdString()).c_str());
          }
        }
      }
    }
  }
};

QTEST_APPLESS_MAIN(StorageSnapshotTest)
#include "storage_snapshot_test.moc"
