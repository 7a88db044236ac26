// DiskStorage driven with Ready batches like a runtime drives it, compared
// with the Memory level, reopened, and used under a real raft::Node.

#include <errno.h>

#include <functional>
#include <future>
#include <memory>
#include <string>
#include <vector>

#include <QDir>
#include <QTemporaryDir>
#include <QTest>

#include "engine/raft/node.h"
#include "engine/storage/crashable_file_system.h"
#include "engine/storage/disk_storage.h"
#include "engine/storage/snapshot_store.h"
#include "tests/storage_test_util.h"

using copycat::raft::Entry;
using copycat::raft::HardState;
using copycat::raft::Index;
using copycat::raft::Ready;
using copycat::raft::SnapshotChunk;
using copycat::raft::SnapshotMeta;
using copycat::raft::Term;
using copycat::storage::CrashableFileSystem;
using copycat::storage::DiskStorage;
using copycat::storage::openStorage;
using copycat::storage::PersistentStorage;
using copycat::storage::PreparedSnapshot;
using copycat::storage::StorageError;
using copycat::storage::StorageLevel;
using copycat::storage::StorageOptions;
using storage_test::makeEntries;
using storage_test::Warnings;

namespace {

StorageOptions diskOptions(const QTemporaryDir& dir, Warnings* warnings = nullptr,
                           CrashableFileSystem* fs = nullptr) {
  StorageOptions options;
  options.directory = dir.path().toStdString() + "/node";
  options.log.maxSegmentEntries = 20;
  options.fileSystem = fs;
  if (warnings != nullptr) options.warn = warnings->sink();
  return options;
}

Ready entriesReady(std::vector<Entry> entries, std::optional<HardState> state) {
  Ready ready;
  ready.entries = std::move(entries);
  ready.hardState = state;
  return ready;
}

/// Ready batches that install snapshot `meta` carrying `data`, in chunks.
std::vector<Ready> snapshotReadies(const SnapshotMeta& meta, const std::string& data,
                                   std::size_t chunk) {
  std::vector<Ready> out;
  for (std::size_t offset = 0; offset < data.size(); offset += chunk) {
    Ready ready;
    const bool last = offset + chunk >= data.size();
    ready.snapshotChunks.push_back(SnapshotChunk{meta, offset, data.substr(offset, chunk), last});
    if (last) ready.snapshot = meta;
    out.push_back(std::move(ready));
  }
  return out;
}

/// The disk level adds the data's checksum to the snapshot's meta; the
/// memory level computes none.
SnapshotMeta withoutChecksum(SnapshotMeta meta) {
  meta.checksum = 0;
  return meta;
}

/// Both storages hold the same log (from the later first index), hard state
/// and snapshot.
void compareStorages(const PersistentStorage& disk, const PersistentStorage& memory) {
  QCOMPARE(disk.lastIndex(), memory.lastIndex());
  QCOMPARE(disk.hardState(), memory.hardState());
  QCOMPARE(withoutChecksum(disk.snapshotMeta()), memory.snapshotMeta());
  QCOMPARE(disk.snapshotMeta().checksum != 0, !memory.snapshotMeta().isEmpty());
  QCOMPARE(disk.snapshotData(), memory.snapshotData());
  QVERIFY(disk.firstIndex() <= memory.firstIndex());
  const Index first = memory.firstIndex();
  QCOMPARE(disk.term(first - 1), memory.term(first - 1));
  if (first <= memory.lastIndex()) {
    QCOMPARE(disk.entries(first, disk.lastIndex() + 1, SIZE_MAX),
             memory.entries(first, memory.lastIndex() + 1, SIZE_MAX));
  }
  for (Index i = first; i <= memory.lastIndex(); ++i) QCOMPARE(disk.term(i), memory.term(i));
}

}  // namespace

class StorageDiskTest : public QObject {
  Q_OBJECT

 private slots:
  void readyBatchesMatchTheMemoryLevel() {
    QTemporaryDir dir;
    StorageOptions options = diskOptions(dir);
    std::vector<Ready> readies;
    readies.push_back(entriesReady(makeEntries(1, 30, 1), HardState{1, 1, 0}));
    readies.push_back(entriesReady(makeEntries(31, 75, 1), HardState{1, 1, 30}));
    readies.push_back(entriesReady({}, HardState{2, 0, 30}));
    readies.push_back(
        entriesReady(makeEntries(51, 60, 2), HardState{2, 3, 40}));  // conflicting suffix
    readies.push_back(entriesReady(makeEntries(61, 90, 2), std::nullopt));
    {
      std::unique_ptr<PersistentStorage> disk = openStorage(options);
      StorageOptions memoryOptions;
      memoryOptions.level = StorageLevel::Memory;
      std::unique_ptr<PersistentStorage> memory = openStorage(memoryOptions);
      QCOMPARE(disk->level(), StorageLevel::Disk);
      QCOMPARE(memory->level(), StorageLevel::Memory);
      for (const Ready& ready : readies) {
        disk->persist(ready);
        memory->persist(ready);
        compareStorages(*disk, *memory);
      }
      const SnapshotMeta meta{40, 1, {{1, 2, 3}, {}}, 0};
      disk->takeSnapshot(meta, "state at 40", 10);
      memory->takeSnapshot(meta, "state at 40", 10);
      compareStorages(*disk, *memory);
      QCOMPARE(disk->firstIndex(), Index(21));  // whole segments of 20 entries
      QCOMPARE(disk->snapshotChunk(6, 2), std::string("at"));
    }
    DiskStorage reopened(options);
    QCOMPARE(reopened.lastIndex(), Index(90));
    QCOMPARE(reopened.hardState(), (HardState{2, 3, 40}));
    QCOMPARE(reopened.snapshotMeta().index, Index(40));
    QCOMPARE(reopened.snapshotData(), std::string("state at 40"));
    QCOMPARE(reopened.firstIndex(), Index(21));
    QCOMPARE(reopened.term(20), std::optional<Term>(1));
    QCOMPARE(reopened.term(55), std::optional<Term>(2));
  }

  void receivedSnapshotReplacesAConflictingLog() {
    QTemporaryDir dir;
    StorageOptions options = diskOptions(dir);
    const std::string data = storage_test::randomBytes(10000, 9);
    SnapshotMeta meta{120, 4, {{1, 2, 3}, {}}, data.size()};
    {
      DiskStorage disk(options);
      StorageOptions memoryOptions;
      memoryOptions.level = StorageLevel::Memory;
      std::unique_ptr<PersistentStorage> memory = openStorage(memoryOptions);
      std::vector<Ready> readies;
      readies.push_back(entriesReady(makeEntries(1, 100, 1), HardState{3, 2, 50}));
      // A first transfer restarted at offset 0.
      readies.push_back(snapshotReadies(meta, data, 3000).front());
      for (Ready& ready : snapshotReadies(meta, data, 3000)) readies.push_back(std::move(ready));
      readies.back().hardState = HardState{4, 0, 120};
      readies.push_back(entriesReady(makeEntries(121, 130, 4), HardState{4, 0, 125}));
      for (const Ready& ready : readies) {
        disk.persist(ready);
        memory->persist(ready);
        compareStorages(disk, *memory);
      }
      QCOMPARE(disk.firstIndex(), Index(121));
      QCOMPARE(disk.term(120), std::optional<Term>(4));
    }
    DiskStorage reopened(options);
    QCOMPARE(withoutChecksum(reopened.snapshotMeta()), meta);
    QCOMPARE(reopened.snapshotData(), data);
    QCOMPARE(reopened.lastIndex(), Index(130));
    QCOMPARE(reopened.hardState(), (HardState{4, 0, 125}));
  }

  void receivedSnapshotKeepsAMatchingLog() {
    QTemporaryDir dir;
    DiskStorage disk(diskOptions(dir));
    disk.persist(entriesReady(makeEntries(1, 100, 1), HardState{1, 1, 10}));
    const SnapshotMeta meta{60, 1, {{1}, {}}, 5};
    for (const Ready& ready : snapshotReadies(meta, "hello", 2)) disk.persist(ready);
    QCOMPARE(disk.lastIndex(), Index(100));
    QVERIFY(disk.firstIndex() <= 61 && disk.firstIndex() > 40);
    QCOMPARE(disk.hardState().commit, Index(60));
    QCOMPARE(disk.snapshotData(), std::string("hello"));
  }

  void snapshotBeyondTheLogResetsItOnOpen() {
    // A crash after installing a received snapshot but before resetting the log.
    QTemporaryDir dir;
    StorageOptions options = diskOptions(dir);
    {
      DiskStorage disk(options);
      disk.persist(entriesReady(makeEntries(1, 30, 1), HardState{2, 0, 10}));
    }
    {
      copycat::storage::SnapshotStore store(copycat::storage::PosixFileSystem::instance(),
                                            options.directory + "/snapshots");
      store.write(SnapshotMeta{200, 2, {{1}, {}}, 0}, "later");
    }
    Warnings warnings;
    options.warn = warnings.sink();
    DiskStorage disk(options);
    QCOMPARE(disk.firstIndex(), Index(201));
    QCOMPARE(disk.lastIndex(), Index(200));
    QCOMPARE(disk.term(200), std::optional<Term>(2));
    QCOMPARE(disk.hardState().commit, Index(200));
    QVERIFY(warnings.any("snapshot 200"));
  }

  void missingMetaWithDataRefusesToStart() {
    QTemporaryDir dir;
    StorageOptions options = diskOptions(dir);
    {
      DiskStorage disk(options);
      disk.persist(entriesReady(makeEntries(1, 5, 1), HardState{1, 1, 0}));
    }
    QVERIFY(QFile::remove(QString::fromStdString(options.directory + "/meta")));
    const std::string error = storage_test::storageErrorOf([&] { DiskStorage disk(options); });
    QVERIFY2(error.find("meta") != std::string::npos, error.c_str());
  }

  void otherClusterRefused() {
    QTemporaryDir dir;
    StorageOptions options = diskOptions(dir);
    options.clusterId = "alpha";
    { DiskStorage disk(options); }
    { DiskStorage disk(options); }
    options.clusterId = "beta";
    const std::string error = storage_test::storageErrorOf([&] { DiskStorage disk(options); });
    QVERIFY2(error.find("alpha") != std::string::npos, error.c_str());
  }

  void diskErrorStopsPersisting() {
    QTemporaryDir dir;
    CrashableFileSystem fs;
    StorageOptions options = diskOptions(dir, nullptr, &fs);
    {
      DiskStorage disk(options);
      disk.persist(entriesReady(makeEntries(1, 10, 1), HardState{1, 1, 5}));
      fs.failSyncNumber(1);
      QVERIFY_THROWS_EXCEPTION(
          StorageError, disk.persist(entriesReady(makeEntries(11, 15, 1), HardState{1, 1, 10})));
      QVERIFY(disk.failed());
      QCOMPARE(disk.lastIndex(), Index(10));
      QVERIFY_THROWS_EXCEPTION(StorageError, disk.persist(entriesReady({}, HardState{2, 0, 10})));
    }
    fs.crash();
    DiskStorage disk(options);
    QCOMPARE(disk.lastIndex(), Index(10));
    QCOMPARE(disk.hardState(), (HardState{1, 1, 5}));
  }

  // write() leaves the data sync of a batch to a job the runtime runs on
  // another thread: the entries are readable at once, durable only after it.
  void deferredSyncMakesABatchDurableOnlyWhenItRuns() {
    QTemporaryDir dir;
    CrashableFileSystem fs;
    StorageOptions options = diskOptions(dir, nullptr, &fs);
    {
      DiskStorage disk(options);
      disk.persist(entriesReady(makeEntries(1, 10, 1), HardState{1, 1, 5}));
      const std::function<void()> sync =
          disk.write(entriesReady(makeEntries(11, 15, 1), HardState{1, 1, 14}));
      QVERIFY(sync);
      QCOMPARE(disk.lastIndex(), Index(15));
      QCOMPARE(disk.entries(11, 16, SIZE_MAX), makeEntries(11, 15, 1));
      // The saved commit never points past what a crash keeps.
      QCOMPARE(disk.hardState().commit, Index(10));
    }
    fs.crash();
    {
      DiskStorage disk(options);
      QCOMPARE(disk.lastIndex(), Index(10));
      // Segments of 20 entries: the two the batch closes are synced at once,
      // the one it leaves open only by the job.
      const std::function<void()> sync = disk.write(entriesReady(makeEntries(11, 45, 1), {}));
      QVERIFY(sync);
      QCOMPARE(disk.lastIndex(), Index(45));
    }
    fs.crash();
    {
      DiskStorage disk(options);
      QCOMPARE(disk.lastIndex(), Index(40));
      const std::function<void()> sync =
          disk.write(entriesReady(makeEntries(41, 45, 1), HardState{1, 1, 45}));
      QCOMPARE(disk.hardState().commit, Index(40));
      sync();
      QVERIFY(!disk.write(entriesReady({}, HardState{1, 1, 45})));
      QCOMPARE(disk.hardState().commit, Index(45));
    }
    fs.crash();
    {
      DiskStorage disk(options);
      QCOMPARE(disk.lastIndex(), Index(45));
      QCOMPARE(disk.entries(41, 46, SIZE_MAX), makeEntries(41, 45, 1));
      // A failed sync reaches whoever runs the job.
      fs.failSyncNumber(1);
      const std::function<void()> sync = disk.write(entriesReady(makeEntries(46, 50, 1), {}));
      QVERIFY_THROWS_EXCEPTION(StorageError, sync());
    }
    fs.crash();
    DiskStorage disk(options);
    QCOMPARE(disk.lastIndex(), Index(45));
  }

  // A leader may write several batches before it syncs: the newest job makes
  // them all durable, a segment they fill is closed durable, and no saved
  // commit index points past what a sync covered, not even one saved by a
  // batch without entries.
  void unsyncedBatchesBecomeDurableWithTheNewestJob() {
    QTemporaryDir dir;
    CrashableFileSystem fs;
    StorageOptions options = diskOptions(dir, nullptr, &fs);
    // Without preallocation closing a segment trims (and syncs) nothing.
    options.log.preallocate = false;
    {
      DiskStorage disk(options);
      disk.persist(entriesReady(makeEntries(1, 10, 1), HardState{1, 1, 5}));
      QVERIFY(disk.write(entriesReady(makeEntries(11, 15, 1), {})));
      QVERIFY(disk.write(entriesReady(makeEntries(16, 18, 1), HardState{1, 1, 15})));
      QVERIFY(!disk.write(entriesReady({}, HardState{1, 1, 18})));
      QCOMPARE(disk.hardState().commit, Index(10));
    }
    fs.crash();
    {
      DiskStorage disk(options);
      QCOMPARE(disk.lastIndex(), Index(10));
      QVERIFY(disk.write(entriesReady(makeEntries(11, 15, 1), {})));
      const std::function<void()> newest = disk.write(entriesReady(makeEntries(16, 18, 1), {}));
      newest();
      QVERIFY(!disk.write(entriesReady({}, HardState{1, 1, 18})));
      QCOMPARE(disk.hardState().commit, Index(18));
    }
    fs.crash();
    {
      DiskStorage disk(options);
      QCOMPARE(disk.lastIndex(), Index(18));
      // Segments of 20 entries: 19-20 fill the first one unsynced, and the
      // next batch, which opens the second, closes the first durable.
      QVERIFY(disk.write(entriesReady(makeEntries(19, 20, 1), {})));
      QVERIFY(disk.write(entriesReady(makeEntries(21, 25, 1), {})));
    }
    fs.crash();
    DiskStorage disk(options);
    QCOMPARE(disk.lastIndex(), Index(20));
    QCOMPARE(disk.entries(11, 21, SIZE_MAX), makeEntries(11, 20, 1));
  }

  // A single-node cluster on disk: everything it committed survives a
  // restart, and a new core resumes from the storage.
  // takeSnapshot() in two halves: prepareSnapshot() on another thread while
  // the owner appends, adoptSnapshot() on the owner's. Nothing changes until
  // it is adopted; a snapshot overtaken meanwhile is dropped, file and all.
  void preparedSnapshotIsTakenOnlyWhenAdopted() {
    QTemporaryDir dir;
    const StorageOptions options = diskOptions(dir);
    const QString snapshotDir = QString::fromStdString(options.directory) + "/snapshots";
    const auto snapshotFiles = [&] {
      return QDir(snapshotDir).entryList(QDir::Files | QDir::NoDotAndDotDot).size();
    };
    {
      std::unique_ptr<PersistentStorage> disk = openStorage(options);
      StorageOptions memoryOptions;
      memoryOptions.level = StorageLevel::Memory;
      std::unique_ptr<PersistentStorage> memory = openStorage(memoryOptions);
      for (PersistentStorage* storage : {disk.get(), memory.get()}) {
        storage->persist(entriesReady(makeEntries(1, 100, 1), HardState{1, 1, 80}));
      }
      const SnapshotMeta at50{50, 1, {{1, 2, 3}, {}}, 0};
      std::vector<std::future<PreparedSnapshot>> preparing;
      for (PersistentStorage* storage : {disk.get(), memory.get()}) {
        preparing.push_back(std::async(std::launch::async, [storage, at50] {
          return storage->prepareSnapshot(at50, "state at 50");
        }));
        storage->persist(entriesReady(makeEntries(101, 110, 1), HardState{1, 1, 90}));
      }
      std::vector<PreparedSnapshot> prepared;
      for (auto& future : preparing) prepared.push_back(future.get());
      QCOMPARE(prepared[0].meta.size, std::uint64_t{11});
      QVERIFY(disk->snapshotMeta().isEmpty());
      QCOMPARE(disk->firstIndex(), Index(1));
      compareStorages(*disk, *memory);

      QVERIFY(disk->adoptSnapshot(std::move(prepared[0]), 10));
      QVERIFY(memory->adoptSnapshot(std::move(prepared[1]), 10));
      compareStorages(*disk, *memory);
      QCOMPARE(disk->snapshotMeta().index, Index(50));
      QCOMPARE(disk->snapshotData(), std::string("state at 50"));
      QCOMPARE(disk->firstIndex(), Index(41));  // whole segments of 20 entries
      QCOMPARE(snapshotFiles(), 1);

      // Overtaken: an older index, then one the leader's snapshot replaced.
      PreparedSnapshot older = disk->prepareSnapshot({45, 1, {{1, 2, 3}, {}}, 0}, "state at 45");
      QCOMPARE(snapshotFiles(), 2);
      QVERIFY(!disk->adoptSnapshot(std::move(older), 10));
      QVERIFY(!memory->adoptSnapshot(
          memory->prepareSnapshot({45, 1, {{1, 2, 3}, {}}, 0}, "state at 45"), 10));
      QCOMPARE(snapshotFiles(), 1);
      PreparedSnapshot local = disk->prepareSnapshot({70, 1, {{1, 2, 3}, {}}, 0}, "state at 70");
      const SnapshotMeta fromLeader{200, 3, {{1, 2, 3}, {}}, 6};
      for (const Ready& ready : snapshotReadies(fromLeader, "leader", 4)) disk->persist(ready);
      QVERIFY(!disk->adoptSnapshot(std::move(local), 10));
      QCOMPARE(disk->snapshotMeta().index, Index(200));
      QCOMPARE(disk->snapshotData(), std::string("leader"));
      QCOMPARE(snapshotFiles(), 2);  // 50 and 200
      QVERIFY_THROWS_EXCEPTION(std::invalid_argument,
                               disk->adoptSnapshot(memory->prepareSnapshot(at50, "x"), 10));
    }
    // A crash after prepareSnapshot(): the snapshot is complete on disk and
    // the log is whole, which opening accepts.
    {
      DiskStorage disk(options);
      disk.persist(entriesReady(makeEntries(201, 230, 3), HardState{3, 1, 220}));
      disk.prepareSnapshot({220, 3, {{1, 2, 3}, {}}, 0}, "state at 220");
    }
    DiskStorage reopened(options);
    QCOMPARE(reopened.snapshotMeta().index, Index(220));
    QCOMPARE(reopened.snapshotData(), std::string("state at 220"));
    QCOMPARE(reopened.firstIndex(), Index(201));
    QCOMPARE(reopened.lastIndex(), Index(230));
  }

  void drivesARealNode() {
    QTemporaryDir dir;
    CrashableFileSystem fs;
    StorageOptions options = diskOptions(dir, nullptr, &fs);
    copycat::raft::Config config;
    config.id = 1;
    Index committed = 0;
    Term term = 0;
    auto drain = [&](copycat::raft::Node& node, DiskStorage& disk) {
      while (node.hasReady()) {
        Ready ready = node.ready();
        disk.persist(ready);
        if (!ready.committed.empty()) committed = ready.committed.back().index;
        node.advance(ready);
      }
    };
    {
      DiskStorage disk(options);
      copycat::raft::Node node(config, disk, copycat::raft::Membership{{1}, {}});
      node.campaign();
      drain(node, disk);
      QVERIFY(node.role() == copycat::raft::Role::Leader);
      for (int i = 0; i < 200; ++i) {
        QVERIFY(node.propose("value " + std::to_string(i)) ==
                copycat::raft::ProposeResult::Accepted);
        if (i % 7 == 0) drain(node, disk);
      }
      drain(node, disk);
      term = node.term();
      QVERIFY(committed >= 200);
      disk.takeSnapshot(SnapshotMeta{150, term, {{1}, {}}, 0}, "snapshot", 20);
      node.snapshotTaken(150);
      QVERIFY(node.propose("after snapshot") == copycat::raft::ProposeResult::Accepted);
      drain(node, disk);
    }
    fs.crash();
    DiskStorage disk(options);
    QVERIFY(disk.lastIndex() >= committed);
    QCOMPARE(disk.hardState().term, term);
    QCOMPARE(disk.snapshotMeta().index, Index(150));
    const std::vector<Entry> tail =
        disk.entries(disk.lastIndex() - 1, disk.lastIndex() + 1, SIZE_MAX);
    QCOMPARE(tail[0].data, std::string("value 199"));
    QCOMPARE(tail[1].data, std::string("after snapshot"));
    QVERIFY(disk.firstIndex() > 1 && disk.firstIndex() <= 131);
    config.applied = 0;
    copycat::raft::Node node(config, disk);
    node.campaign();
    drain(node, disk);
    QVERIFY(node.role() == copycat::raft::Role::Leader);
    QVERIFY(node.term() > term);
    QVERIFY(node.propose("after restart") == copycat::raft::ProposeResult::Accepted);
    drain(node, disk);
    QCOMPARE(disk.entries(disk.lastIndex(), disk.lastIndex() + 1, SIZE_MAX).front().data,
             std::string("after restart"));
  }
};

QTEST_APPLESS_MAIN(StorageDiskTest)
#include "storage_disk_test.moc"
