// MetaStore: two checksummed copies of term, vote and commit; one corrupt
// copy falls back to the other, both corrupt refuse to start.

#include <random>
#include <string>

#include <QTemporaryDir>
#include <QTest>

#include "engine/storage/crashable_file_system.h"
#include "engine/storage/format.h"
#include "engine/storage/meta_store.h"
#include "tests/storage_test_util.h"

using copycat::raft::HardState;
using copycat::storage::CrashableFileSystem;
using copycat::storage::CrashOptions;
using copycat::storage::MetaStore;
using copycat::storage::PersistentMeta;
using copycat::storage::PosixFileSystem;
using copycat::storage::StorageError;
using copycat::storage::format::kMetaSlotSize;
using storage_test::Warnings;

namespace {

std::string metaPath(const QTemporaryDir& dir) { return dir.path().toStdString() + "/meta"; }

}  // namespace

class StorageMetaTest : public QObject {
  Q_OBJECT

 private slots:
  void freshStoreStartsEmpty() {
    QTemporaryDir dir;
    MetaStore store(PosixFileSystem::instance(), metaPath(dir), true);
    QVERIFY(store.hardState().isEmpty());
    QCOMPARE(storage_test::readFile(metaPath(dir)).size(), 2 * kMetaSlotSize);
  }

  void missingFileWithoutCreateRefuses() {
    QTemporaryDir dir;
    QVERIFY_THROWS_EXCEPTION(StorageError,
                             MetaStore(PosixFileSystem::instance(), metaPath(dir), false));
  }

  void saveAndReopen() {
    QTemporaryDir dir;
    {
      MetaStore store(PosixFileSystem::instance(), metaPath(dir), true);
      QVERIFY(store.save(HardState{3, 2, 0}));
      QVERIFY(!store.save(HardState{3, 2, 5}));  // commit only: no sync
      QVERIFY(store.save(PersistentMeta{{4, 0, 7}, "cluster-a"}));
      QVERIFY(!store.save(HardState{4, 0, 7}));  // unchanged
    }
    MetaStore store(PosixFileSystem::instance(), metaPath(dir), false);
    QCOMPARE(store.hardState(), (HardState{4, 0, 7}));
    QCOMPARE(store.meta().clusterId, std::string("cluster-a"));
  }

  void newestCopyCorruptUsesTheOther() {
    QTemporaryDir dir;
    int newestSlot = 0;
    {
      MetaStore store(PosixFileSystem::instance(), metaPath(dir), true);
      store.save(HardState{5, 1, 0});
      store.save(HardState{6, 2, 0});
    }
    // Find the slot holding term 6 and damage it.
    const std::string bytes = storage_test::readFile(metaPath(dir));
    for (int slot = 0; slot < 2; ++slot) {
      const auto decoded = copycat::storage::format::decodeMetaSlot(
          bytes.data() + slot * kMetaSlotSize, kMetaSlotSize);
      QVERIFY(decoded);
      if (decoded->term == 6) newestSlot = slot;
    }
    storage_test::flipByte(metaPath(dir), newestSlot * kMetaSlotSize + 26);
    Warnings warnings;
    MetaStore store(PosixFileSystem::instance(), metaPath(dir), false, warnings.sink());
    QCOMPARE(store.hardState(), (HardState{5, 1, 0}));
    QVERIFY2(warnings.any("offset " + std::to_string(newestSlot * kMetaSlotSize)),
             warnings.all().c_str());
    // Saving again works and both copies are valid afterwards.
    store.save(HardState{7, 0, 0});
    store.save(HardState{7, 3, 0});
    Warnings again;
    MetaStore reopened(PosixFileSystem::instance(), metaPath(dir), false, again.sink());
    QCOMPARE(reopened.hardState(), (HardState{7, 3, 0}));
    QVERIFY(again.messages.empty());
  }

  void olderCopyCorruptUsesTheNewest() {
    QTemporaryDir dir;
    {
      MetaStore store(PosixFileSystem::instance(), metaPath(dir), true);
      store.save(HardState{5, 1, 0});
      store.save(HardState{6, 2, 0});
    }
    const std::string bytes = storage_test::readFile(metaPath(dir));
    int olderSlot = 0;
    for (int slot = 0; slot < 2; ++slot) {
      const auto decoded = copycat::storage::format::decodeMetaSlot(
          bytes.data() + slot * kMetaSlotSize, kMetaSlotSize);
      if (decoded->term == 5) olderSlot = slot;
    }
    storage_test::flipByte(metaPath(dir), olderSlot * kMetaSlotSize + 3);
    Warnings warnings;
    MetaStore store(PosixFileSystem::instance(), metaPath(dir), false, warnings.sink());
    QCOMPARE(store.hardState(), (HardState{6, 2, 0}));
    QCOMPARE(warnings.messages.size(), std::size_t(1));
  }

  void bothCopiesCorruptRefuseToStart() {
    QTemporaryDir dir;
    {
      MetaStore store(PosixFileSystem::instance(), metaPath(dir), true);
      store.save(HardState{9, 4, 0});
    }
    storage_test::flipByte(metaPath(dir), 30);
    storage_test::flipByte(metaPath(dir), kMetaSlotSize + 30);
    const std::string error = storage_test::storageErrorOf(
        [&] { MetaStore store(PosixFileSystem::instance(), metaPath(dir), false); });
    QVERIFY2(error.find(metaPath(dir)) != std::string::npos &&
                 error.find("both copies") != std::string::npos,
             error.c_str());
    // Also with create allowed: an existing damaged file is never reset.
    QVERIFY_THROWS_EXCEPTION(StorageError,
                             MetaStore(PosixFileSystem::instance(), metaPath(dir), true));
  }

  void shortOrEmptyFileRefusesToStart() {
    QTemporaryDir dir;
    storage_test::writeFile(metaPath(dir), "");
    QVERIFY_THROWS_EXCEPTION(StorageError,
                             MetaStore(PosixFileSystem::instance(), metaPath(dir), true));
  }

  void termAndVoteSurviveCrashes() {
    // Term/vote changes are synced; commit-only changes are not, and a crash
    // keeping any torn prefix of them never loses the synced term and vote.
    for (std::uint64_t seed = 1; seed <= 40; ++seed) {
      QTemporaryDir dir;
      CrashableFileSystem fs;
      HardState durable;
      {
        MetaStore store(fs, metaPath(dir), true);
        std::mt19937_64 random(seed);
        HardState state;
        for (int step = 0; step < 30; ++step) {
          if (random() % 3 == 0) {
            ++state.term;
            state.vote = random() % 2 ? 0 : 1 + random() % 5;
            QVERIFY(store.save(state));
            durable = state;
          } else {
            state.commit += 1 + random() % 4;
            QVERIFY(!store.save(state));
          }
        }
      }
      CrashOptions crash;
      crash.tornWritesSeed = seed;
      fs.crash(crash);
      Warnings warnings;
      MetaStore store(fs, metaPath(dir), false, warnings.sink());
      QCOMPARE(store.hardState().term, durable.term);
      QCOMPARE(store.hardState().vote, durable.vote);
      QVERIFY(store.hardState().commit >= durable.commit);
    }
  }

  void ioErrorStopsSaving() {
    QTemporaryDir dir;
    CrashableFileSystem fs;
    MetaStore store(fs, metaPath(dir), true);
    store.save(HardState{2, 1, 0});
    fs.failSyncNumber(1);
    QVERIFY_THROWS_EXCEPTION(StorageError, store.save(HardState{3, 2, 0}));
    QCOMPARE(store.hardState(), (HardState{2, 1, 0}));
    QVERIFY(store.failed());
    QVERIFY_THROWS_EXCEPTION(StorageError, store.save(HardState{3, 2, 0}));
    fs.crash();
    MetaStore reopened(fs, metaPath(dir), false);
    QCOMPARE(reopened.hardState(), (HardState{2, 1, 0}));
  }
};

QTEST_APPLESS_MAIN(StorageMetaTest)
#include "storage_meta_test.moc"
