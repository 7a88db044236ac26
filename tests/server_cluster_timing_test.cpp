// In-process servers (engine/server) over real loopback TCP: election,
// replication, failover, and bad input on a connection. Wall-clock timers
// drive the cores, so every wait has a generous bound.

#include <array>
#include <atomic>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <QLoggingCategory>
#include <QMutex>
#include <QMutexLocker>
#include <QRandomGenerator>
#include <QSignalSpy>
#include <QTcpServer>
#include <QTcpSocket>
#include <QTemporaryDir>
#include <QtTest>

#include "engine/protocol/convert.h"
#include "engine/protocol/framing.h"
#include "engine/server/server_node.h"
#include "engine/storage/crashable_file_system.h"
#include "engine/storage/disk_storage.h"
#include "tests/server_test_util.h"

using copycat::raft::NodeId;
using copycat::server::RuntimeCallbacks;
using copycat::server::ServerConfig;
using copycat::server::ServerError;
using copycat::server::ServerNode;
namespace wire = copycat::wire;
namespace raft = copycat::raft;

namespace {

constexpr int kLeaderTimeoutMs = 10000;
constexpr int kCommitTimeoutMs = 10000;

using copycat::testing::freeLoopbackPorts;
using copycat::testing::hasErrorFrame;
using copycat::testing::RawConnection;

/// The data of the Normal entries one node applied, in order.
struct AppliedLog {
  mutable QMutex mutex;
  std::vector<std::string> data;
  raft::Index lastIndex = 0;
  /// The index of the latest snapshot installed (0: none).
  raft::Index installed = 0;
  bool outOfOrder = false;

  std::vector<std::string> snapshot() const {
    QMutexLocker lock(&mutex);
    return data;
  }
  raft::Index last() const {
    QMutexLocker lock(&mutex);
    return lastIndex;
  }
  raft::Index installedIndex() const {
    QMutexLocker lock(&mutex);
    return installed;
  }
};

/// Adjusts one node's configuration before it is created.
using Tweak = std::function<void(NodeId, ServerConfig&)>;
/// Called on a node's runtime thread when its role changed (after the batch
/// that changed it was persisted).
using RoleHook = std::function<void(NodeId, raft::Role)>;

class Cluster {
 public:
  Cluster(bool disk, int size, const Tweak& tweak = {}, const RoleHook& onRoleChanged = {}) {
    const std::vector<quint16> ports = freeLoopbackPorts(size);
    for (int i = 0; i < static_cast<int>(ports.size()); ++i) {
      m_members[static_cast<NodeId>(i + 1)] = QStringLiteral("127.0.0.1:%1").arg(ports[i]);
    }
    for (const auto& [id, address] : m_members) {
      ServerConfig config;
      config.id = id;
      config.address = address;
      config.peers = m_members;
      config.peers.erase(id);
      config.clusterId = "lab";
      if (disk) {
        config.storageLevel = copycat::storage::StorageLevel::Disk;
        config.dataDirectory = m_directory.filePath(QStringLiteral("n%1").arg(id));
      } else {
        config.storageLevel = copycat::storage::StorageLevel::Memory;
      }
      if (tweak) tweak(id, config);
      auto log = std::make_shared<AppliedLog>();
      RuntimeCallbacks callbacks;
      callbacks.apply = [log](std::vector<raft::Entry>&& entries) {
        QMutexLocker lock(&log->mutex);
        for (const raft::Entry& entry : entries) {
          if (entry.index != log->lastIndex + 1) log->outOfOrder = true;
          log->lastIndex = entry.index;
          if (entry.type == raft::EntryType::Normal) log->data.push_back(entry.data);
        }
      };
      // A snapshot replaces the state up to its index: entries at or below
      // it handed out afterwards would be out of order.
      callbacks.installSnapshot = [log](const raft::SnapshotMeta& meta,
                                        const copycat::storage::SharedBytes&) {
        QMutexLocker lock(&log->mutex);
        if (meta.index < log->lastIndex) log->outOfOrder = true;
        log->lastIndex = meta.index;
        log->installed = meta.index;
      };
      if (onRoleChanged) {
        callbacks.roleChanged = [onRoleChanged, id](raft::Role role, raft::Term, NodeId) {
          onRoleChanged(id, role);
        };
      }
      auto node = std::make_unique<ServerNode>(config);
      node->setCallbacks(callbacks);
      m_logs[id] = log;
      m_nodes[id] = std::move(node);
    }
  }

  bool start() {
    if (m_members.empty() || !m_directory.isValid()) return false;
    for (auto& [id, node] : m_nodes) {
      if (!node->start()) {
        qWarning() << "node" << id << "did not start:" << node->failure();
        return false;
      }
    }
    for (auto& [id, node] : m_nodes) {
      QFuture<void> done = node->bootstrap(m_members);
      try {
        done.waitForFinished();
      } catch (const ServerError& error) {
        qWarning() << "node" << id << "did not bootstrap:" << error.message();
        return false;
      }
    }
    return true;
  }

  ServerNode& node(NodeId id) { return *m_nodes.at(id); }
  /// Cuts (or heals) every link between `id` and the other members, on both
  /// ends.
  void isolate(NodeId id, bool cut) {
    for (const auto& [other, node] : m_nodes) {
      if (other == id) continue;
      m_nodes.at(id)->setLinkCut(other, cut);
      node->setLinkCut(id, cut);
    }
  }
  /// Starts a stopped node again from its storage, with an empty applied log
  /// (the state machine restarts empty and the log is applied again).
  bool restart(NodeId id) {
    {
      QMutexLocker lock(&m_logs.at(id)->mutex);
      m_logs.at(id)->data.clear();
      m_logs.at(id)->lastIndex = 0;
    }
    return m_nodes.at(id)->start();
  }
  const AppliedLog& applied(NodeId id) const { return *m_logs.at(id); }
  const std::map<NodeId, QString>& members() const { return m_members; }
  quint16 port(NodeId id) const {
    return static_cast<quint16>(m_members.at(id).section(QLatin1Char(':'), 1).toUInt());
  }
  std::vector<NodeId> running() const {
    std::vector<NodeId> ids;
    for (const auto& [id, node] : m_nodes) {
      if (node->isRunning()) ids.push_back(id);
    }
    return ids;
  }

  /// The leader every running node agrees on, in one term.
  std::optional<NodeId> agreedLeader() const {
    std::optional<NodeId> leader;
    raft::Term term = 0;
    for (NodeId id : running()) {
      const raft::Status status = m_nodes.at(id)->status();
      if (status.leader == raft::kNoNode) return std::nullopt;
      if (leader && (*leader != status.leader || term != status.term)) return std::nullopt;
      leader = status.leader;
      term = status.term;
    }
    if (!leader || !m_nodes.count(*leader) || !m_nodes.at(*leader)->isRunning()) {
      return std::nullopt;
    }
    if (m_nodes.at(*leader)->status().role != raft::Role::Leader) return std::nullopt;
    return leader;
  }

  bool everyRunningNodeApplied(const std::vector<std::string>& expected) const {
    for (NodeId id : running()) {
      if (m_logs.at(id)->snapshot() != expected) return false;
    }
    return true;
  }

  bool anyOutOfOrder() const {
    for (const auto& [id, log] : m_logs) {
      QMutexLocker lock(&log->mutex);
      if (log->outOfOrder) return true;
    }
    return false;
  }

  /// Proposes `data` at the leader (retrying while leadership settles) and
  /// waits until every running node applied it (only the leader without
  /// `everywhere`).
  bool commit(const std::string& data, bool everywhere = true) {
    QDeadlineTimer deadline(kCommitTimeoutMs);
    while (!deadline.hasExpired()) {
      if (!QTest::qWaitFor([this] { return agreedLeader().has_value(); },
                           static_cast<int>(deadline.remainingTime()))) {
        return false;
      }
      const std::optional<NodeId> leader = agreedLeader();
      if (!leader) continue;
      QFuture<raft::Index> index = m_nodes.at(*leader)->propose(data);
      if (!QTest::qWaitFor([&index] { return index.isFinished(); }, 5000)) return false;
      try {
        if (index.isCanceled() || index.result() == 0) continue;
      } catch (const ServerError&) {
        continue;  // leadership moved between the check and the proposal
      }
      auto appliedEverywhere = [this, &data, everywhere, leader] {
        for (NodeId id : everywhere ? running() : std::vector<NodeId>{*leader}) {
          const std::vector<std::string> got = m_logs.at(id)->snapshot();
          if (got.empty() || got.back() != data) return false;
        }
        return true;
      };
      // A leader that stops (or is deposed) before the entry commits may
      // lose it: propose again to the next one.
      auto leaderLost = [this, leader] {
        return !m_nodes.at(*leader)->isRunning() ||
               m_nodes.at(*leader)->status().role != raft::Role::Leader;
      };
      if (QTest::qWaitFor([&] { return appliedEverywhere() || leaderLost(); },
                          static_cast<int>(deadline.remainingTime())) &&
          appliedEverywhere()) {
        return true;
      }
    }
    return false;
  }

 private:
  QTemporaryDir m_directory;
  std::map<NodeId, QString> m_members;
  std::map<NodeId, std::unique_ptr<ServerNode>> m_nodes;
  std::map<NodeId, std::shared_ptr<AppliedLog>> m_logs;
};

wire::Frame handshake(const std::string& clusterId, NodeId node) {
  wire::Frame frame;
  wire::Handshake* body = frame.mutable_handshake();
  body->set_request_id(7);
  body->set_protocol_version(copycat::protocol::kProtocolVersion);
  body->set_cluster_id(clusterId);
  body->set_kind(wire::PEER_KIND_SERVER);
  body->set_node_id(node);
  return frame;
}

}  // namespace

class ServerClusterTimingTest : public QObject {
  Q_OBJECT

 private slots:
  void initTestCase() {
    QLoggingCategory::setFilterRules(
        QStringLiteral("copycat.server.debug=false\ncopycat.server.info=false"));
  }

  void electsAndReplicates_data() { storageLevels(); }
  void electsAndReplicates() {
    QFETCH(bool, disk);
    Cluster cluster(disk, 3);
    QVERIFY(cluster.start());
    QTRY_VERIFY_WITH_TIMEOUT(cluster.agreedLeader().has_value(), kLeaderTimeoutMs);
    QVERIFY(cluster.commit("alpha"));
    QVERIFY(cluster.commit("beta"));
    QTRY_VERIFY_WITH_TIMEOUT(cluster.everyRunningNodeApplied({"alpha", "beta"}), kCommitTimeoutMs);
    QCOMPARE(cluster.running().size(), std::size_t{3});
    QVERIFY(!cluster.anyOutOfOrder());
    // A follower refuses proposals and names the leader.
    const NodeId leader = *cluster.agreedLeader();
    const NodeId follower = leader == 1 ? 2 : 1;
    QFuture<raft::Index> refused = cluster.node(follower).propose(std::string("nope"));
    QTRY_VERIFY_WITH_TIMEOUT(refused.isFinished(), 5000);
    bool threw = false;
    try {
      refused.result();
    } catch (const ServerError& error) {
      threw = true;
      QCOMPARE(error.leader(), leader);
    }
    QVERIFY(threw);
  }

  void leaderFailover_data() { storageLevels(); }
  void leaderFailover() {
    QFETCH(bool, disk);
    Cluster cluster(disk, 3);
    QVERIFY(cluster.start());
    QTRY_VERIFY_WITH_TIMEOUT(cluster.agreedLeader().has_value(), kLeaderTimeoutMs);
    QVERIFY(cluster.commit("before"));
    const NodeId oldLeader = *cluster.agreedLeader();
    cluster.node(oldLeader).stop();
    QCOMPARE(cluster.running().size(), std::size_t{2});
    QTRY_VERIFY_WITH_TIMEOUT(
        cluster.agreedLeader().has_value() && *cluster.agreedLeader() != oldLeader,
        kLeaderTimeoutMs);
    QVERIFY(cluster.commit("after"));
    QTRY_VERIFY_WITH_TIMEOUT(cluster.everyRunningNodeApplied({"before", "after"}),
                             kCommitTimeoutMs);
    QVERIFY(!cluster.anyOutOfOrder());
  }

  // While both followers are replicated to, the leader syncs its own log
  // once per ownSyncDelayMs (200 ms here, to make it plain), the followers
  // every write; with a follower gone its own copy counts, and commits do not
  // wait for the delay.
  void leaderDefersItsOwnSyncOnlyWhileFollowersCommit() {
    constexpr int kDelayMs = 200;
    Cluster cluster(true, 3,
                    [](NodeId, ServerConfig& config) { config.ownSyncDelayMs = kDelayMs; });
    QVERIFY(cluster.start());
    QTRY_VERIFY_WITH_TIMEOUT(cluster.agreedLeader().has_value(), kLeaderTimeoutMs);
    QVERIFY(cluster.commit("warm-up"));
    const NodeId leader = *cluster.agreedLeader();
    std::map<NodeId, std::uint64_t> before;
    for (NodeId id : {1, 2, 3}) before[id] = cluster.node(id).storageCounters().syncs;
    QElapsedTimer elapsed;
    elapsed.start();
    constexpr int kWrites = 60;
    for (int i = 0; i < kWrites; ++i) QVERIFY(cluster.commit("write " + std::to_string(i)));
    const qint64 tookMs = elapsed.elapsed();
    for (NodeId id : {1, 2, 3}) {
      const std::uint64_t syncs = cluster.node(id).storageCounters().syncs - before[id];
      if (id == leader) {
        const auto bound = static_cast<std::uint64_t>(tookMs / kDelayMs + 3);
        QVERIFY2(
            syncs <= bound,
            qPrintable(QStringLiteral("leader synced %1 times in %2 ms").arg(syncs).arg(tookMs)));
      } else {
        QVERIFY2(syncs >= kWrites,
                 qPrintable(QStringLiteral("follower %1 synced %2 times").arg(id).arg(syncs)));
      }
    }

    const NodeId follower = leader == 1 ? 2 : 1;
    cluster.node(follower).stop();
    elapsed.restart();
    constexpr int kAlone = 10;
    for (int i = 0; i < kAlone; ++i) QVERIFY(cluster.commit("alone " + std::to_string(i)));
    QVERIFY2(elapsed.elapsed() < kAlone * kDelayMs * 3 / 4,
             qPrintable(QStringLiteral("%1 writes with one follower took %2 ms")
                            .arg(kAlone)
                            .arg(elapsed.elapsed())));
    QVERIFY(!cluster.anyOutOfOrder());
  }

  // A leader that defers its own sync (here for ten minutes) syncs what it
  // wrote before anything of a batch that is not a leader's leaves it.
  // Deposed by a leadership transfer, it has voted for the new leader by the
  // time its role change is reported; a power cut right then must not lose
  // any entry it wrote as leader.
  void deposedLeaderSyncsWhatItDeferredBeforeItAnswers() {
    std::array<copycat::storage::CrashableFileSystem, 3> fileSystems;
    std::atomic<NodeId> crashWhenDeposed{raft::kNoNode};
    Cluster cluster(
        true, 3,
        [&fileSystems](NodeId id, ServerConfig& config) {
          config.fileSystem = &fileSystems.at(id - 1);
          config.ownSyncDelayMs = 600000;
        },
        [&fileSystems, &crashWhenDeposed](NodeId id, raft::Role role) {
          NodeId armed = id;
          if (role != raft::Role::Leader &&
              crashWhenDeposed.compare_exchange_strong(armed, raft::kNoNode)) {
            fileSystems.at(id - 1).crash();
          }
        });
    QVERIFY(cluster.start());
    QTRY_VERIFY_WITH_TIMEOUT(cluster.agreedLeader().has_value(), kLeaderTimeoutMs);
    for (int i = 0; i < 10; ++i) QVERIFY(cluster.commit("deferred " + std::to_string(i)));
    const NodeId leader = *cluster.agreedLeader();
    const raft::Status before = cluster.node(leader).status();
    QVERIFY2(before.durable < before.lastIndex,
             qPrintable(QStringLiteral("nothing deferred: durable %1, last index %2")
                            .arg(before.durable)
                            .arg(before.lastIndex)));

    crashWhenDeposed = leader;
    const NodeId target = leader == 1 ? 2 : 1;
    cluster.node(leader).transferLeadership(target);
    QTRY_COMPARE_WITH_TIMEOUT(crashWhenDeposed.load(), raft::kNoNode, kLeaderTimeoutMs);
    cluster.node(leader).stop();
    QTRY_VERIFY_WITH_TIMEOUT(cluster.agreedLeader() == target, kLeaderTimeoutMs);
    QVERIFY(cluster.commit("after the transfer"));

    copycat::storage::StorageOptions options;
    options.directory = cluster.node(leader).config().dataDirectory.toStdString();
    options.fileSystem = &fileSystems.at(leader - 1);
    options.clusterId = "lab";
    const std::unique_ptr<copycat::storage::PersistentStorage> storage =
        copycat::storage::openStorage(options);
    QVERIFY2(storage->lastIndex() >= before.lastIndex,
             qPrintable(QStringLiteral("the power cut left entries up to %1 of %2")
                            .arg(storage->lastIndex())
                            .arg(before.lastIndex)));
  }

  // A follower hands committed entries to its state machine in batches. With
  // a delay of ten minutes only the limit on held entries, a shutdown or a
  // role change hands them out here; whatever hands them out, every entry
  // is applied once, in order.
  void followerHoldsCommittedEntriesUntilItHandsThemOut() {
    Cluster cluster(false, 3,
                    [](NodeId, ServerConfig& config) { config.followerApplyDelayMs = 600000; });
    QVERIFY(cluster.start());
    QTRY_VERIFY_WITH_TIMEOUT(cluster.agreedLeader().has_value(), kLeaderTimeoutMs);
    const NodeId leader = *cluster.agreedLeader();
    std::vector<NodeId> followers;
    for (NodeId id : {1, 2, 3}) {
      if (id != leader) followers.push_back(id);
    }
    QVERIFY(cluster.commit("first", false));
    // Heartbeats carry the commit index to the followers meanwhile.
    QTest::qWait(300);
    for (NodeId id : followers) QVERIFY(cluster.applied(id).snapshot().empty());

    std::vector<std::string> written{"first"};
    constexpr int kMore = 300;
    static_assert(kMore > static_cast<int>(copycat::server::RaftRuntime::kHeldEntriesLimit));
    for (int i = 0; i < kMore; ++i) {
      written.push_back("write " + std::to_string(i));
      QVERIFY(cluster.commit(written.back(), false));
    }
    QTest::qWait(300);
    auto lastApplied = [&cluster](NodeId id) { return cluster.applied(id).last(); };
    const raft::Index committed = lastApplied(leader);
    for (NodeId id : followers) {
      // Handed out once the limit was reached; held since.
      QVERIFY2(lastApplied(id) >= copycat::server::RaftRuntime::kHeldEntriesLimit &&
                   lastApplied(id) < committed,
               qPrintable(QStringLiteral("follower %1 applied through %2 of %3")
                              .arg(id)
                              .arg(lastApplied(id))
                              .arg(committed)));
    }

    // Shutting down hands out what the follower holds.
    cluster.node(followers[0]).stop();
    QVERIFY(cluster.applied(followers[0]).snapshot() == written);
    // So does ceasing to follow: the other follower campaigns once the
    // leader is gone.
    cluster.node(leader).stop();
    QTRY_VERIFY_WITH_TIMEOUT(cluster.applied(followers[1]).snapshot() == written, kLeaderTimeoutMs);
    QVERIFY(!cluster.anyOutOfOrder());
  }

  // A follower cut off while it holds committed entries catches up through a
  // snapshot: what it held is handed out before the snapshot is installed.
  void heldEntriesGoBeforeAnInstalledSnapshot() {
    Cluster cluster(false, 3, [](NodeId, ServerConfig& config) {
      config.followerApplyDelayMs = 600000;
      config.snapshotKeepEntries = 0;
    });
    QVERIFY(cluster.start());
    QTRY_VERIFY_WITH_TIMEOUT(cluster.agreedLeader().has_value(), kLeaderTimeoutMs);
    const NodeId leader = *cluster.agreedLeader();
    const NodeId cutOff = leader == 1 ? 2 : 1;
    QVERIFY(cluster.commit("held", false));
    // Heartbeats carry the commit index to the followers meanwhile.
    QTest::qWait(300);
    QVERIFY(cluster.applied(cutOff).snapshot().empty());
    cluster.isolate(cutOff, true);
    for (int i = 0; i < 20; ++i) QVERIFY(cluster.commit("later " + std::to_string(i), false));
    const raft::Index snapshotAt = cluster.node(leader).status().commit;
    cluster.node(leader).storeSnapshot(snapshotAt, "state");
    QTRY_VERIFY_WITH_TIMEOUT(cluster.node(leader).status().firstIndex > snapshotAt,
                             kCommitTimeoutMs);
    cluster.isolate(cutOff, false);
    QTRY_VERIFY_WITH_TIMEOUT(cluster.node(cutOff).status().snapshotIndex >= snapshotAt,
                             kCommitTimeoutMs);
    cluster.node(cutOff).stop();
    QVERIFY(cluster.applied(cutOff).snapshot() == std::vector<std::string>{"held"});
    QVERIFY(cluster.applied(cutOff).installedIndex() >= snapshotAt);
    QVERIFY(!cluster.anyOutOfOrder());
  }

  void restartFromDisk() {
    Cluster cluster(true, 3);
    QVERIFY(cluster.start());
    QTRY_VERIFY_WITH_TIMEOUT(cluster.agreedLeader().has_value(), kLeaderTimeoutMs);
    QVERIFY(cluster.commit("one"));
    QVERIFY(cluster.commit("two"));
    for (NodeId id : {1, 2, 3}) cluster.node(id).stop();
    QVERIFY(cluster.running().empty());
    for (NodeId id : {1, 2, 3}) QVERIFY(cluster.restart(id));
    // Restarted nodes refuse to found a new cluster over their state.
    QFuture<void> again = cluster.node(1).bootstrap(cluster.members());
    QTRY_VERIFY_WITH_TIMEOUT(again.isFinished(), 5000);
    QVERIFY_THROWS_EXCEPTION(ServerError, again.waitForFinished());
    QTRY_VERIFY_WITH_TIMEOUT(cluster.agreedLeader().has_value(), kLeaderTimeoutMs);
    QVERIFY(cluster.commit("three"));
    QTRY_VERIFY_WITH_TIMEOUT(cluster.everyRunningNodeApplied({"one", "two", "three"}),
                             kCommitTimeoutMs);
    QVERIFY(!cluster.anyOutOfOrder());
  }

  void persistFailureStopsOnlyThatNode_data() {
    QTest::addColumn<bool>("syncFails");
    QTest::newRow("a write fails (out of space)") << false;
    QTest::newRow("an fdatasync fails") << true;
  }

  void persistFailureStopsOnlyThatNode() {
    QFETCH(bool, syncFails);
    // Node 3 writes through a file layer that runs out of space (past the
    // start-up's writes, which zero the log's first MiB ahead), or whose 40th
    // sync (past the start-up's) fails.
    copycat::storage::CrashableFileSystem fileSystem;
    if (syncFails) {
      fileSystem.failSyncNumber(40);
    } else {
      fileSystem.failWritesAfterBytes(1536 * 1024);
    }
    Cluster cluster(true, 3, [&fileSystem](NodeId id, ServerConfig& config) {
      if (id == 3) config.fileSystem = &fileSystem;
    });
    QVERIFY(cluster.start());
    QTRY_VERIFY_WITH_TIMEOUT(cluster.agreedLeader().has_value(), kLeaderTimeoutMs);
    const std::string padding(16 * 1024, 'x');
    for (int i = 0; i < 64 && cluster.node(3).isRunning(); ++i) {
      QVERIFY(cluster.commit(std::to_string(i) + padding));
    }
    QTRY_VERIFY_WITH_TIMEOUT(!cluster.node(3).isRunning(), kCommitTimeoutMs);
    QVERIFY2(cluster.node(3).failure().contains(QStringLiteral("cannot persist")),
             qPrintable(cluster.node(3).failure()));
    QTRY_COMPARE_WITH_TIMEOUT(cluster.running().size(), std::size_t{2}, 5000);
    QVERIFY(cluster.commit("after the failure"));
    // What node 3 applied before it stopped is a prefix of the others' log.
    const std::vector<std::string> survivor = cluster.applied(1).snapshot();
    const std::vector<std::string> failed = cluster.applied(3).snapshot();
    QVERIFY(failed.size() < survivor.size());
    QVERIFY(std::equal(failed.begin(), failed.end(), survivor.begin()));
    QVERIFY(!cluster.anyOutOfOrder());
  }

  void badInputClosesOnlyThatConnection() {
    Cluster cluster(false, 3);
    QVERIFY(cluster.start());
    QTRY_VERIFY_WITH_TIMEOUT(cluster.agreedLeader().has_value(), kLeaderTimeoutMs);
    QVERIFY(cluster.commit("first"));
    const NodeId target = 2;

    struct Case {
      const char* name;
      std::function<void(RawConnection&)> send;
      wire::ErrorCode expected;
    };
    const std::vector<Case> cases = {
        {"text where a length prefix belongs (too large)",
         [](RawConnection& c) { c.send(QByteArray("GET / HTTP/1.1\r\nHost: x\r\n\r\n")); },
         wire::ERROR_CODE_FRAME_TOO_LARGE},
        {"bytes that do not parse as a Frame",
         [](RawConnection& c) { c.send(QByteArray("\x00\x00\x00\x05\xff\xff\xff\xff\xff", 9)); },
         wire::ERROR_CODE_MALFORMED_FRAME},
        {"a raft message before the handshake",
         [](RawConnection& c) {
           raft::Message message;
           message.type = raft::MessageType::Heartbeat;
           message.from = 1;
           message.to = 2;
           message.term = 1;
           c.send(copycat::protocol::toFrame(message));
         },
         wire::ERROR_CODE_UNEXPECTED_MESSAGE},
        {"a raft message from another node than the handshake's",
         [](RawConnection& c) {
           c.send(handshake("lab", 99));
           raft::Message message;
           message.type = raft::MessageType::Heartbeat;
           message.from = 1;
           message.to = 2;
           message.term = 1;
           c.send(copycat::protocol::toFrame(message));
         },
         wire::ERROR_CODE_INVALID_MESSAGE},
    };
    std::uint64_t rejectedBefore = cluster.node(target).rejectedConnections();
    for (const Case& testCase : cases) {
      RawConnection connection(cluster.port(target));
      QTRY_VERIFY_WITH_TIMEOUT(connection.connected(), 5000);
      testCase.send(connection);
      QTRY_VERIFY2_WITH_TIMEOUT(connection.closed(), testCase.name, 5000);
      QVERIFY2(hasErrorFrame(connection.frames(), testCase.expected), testCase.name);
      QTRY_VERIFY_WITH_TIMEOUT(cluster.node(target).rejectedConnections() > rejectedBefore, 5000);
      rejectedBefore = cluster.node(target).rejectedConnections();
    }
    QCOMPARE(cluster.running().size(), std::size_t{3});
    QVERIFY(cluster.commit("second"));
    QTRY_VERIFY_WITH_TIMEOUT(cluster.everyRunningNodeApplied({"first", "second"}),
                             kCommitTimeoutMs);
    for (NodeId id : cluster.running()) {
      QTRY_COMPARE_WITH_TIMEOUT(cluster.node(id).connectedPeers().size(), std::size_t{2}, 5000);
    }
  }

  void wrongClusterIsRejected() {
    Cluster cluster(false, 3);
    QVERIFY(cluster.start());
    QTRY_VERIFY_WITH_TIMEOUT(cluster.agreedLeader().has_value(), kLeaderTimeoutMs);

    // A raw handshake of another cluster: a rejecting reply, an ErrorFrame, closed.
    RawConnection raw(cluster.port(1));
    QTRY_VERIFY_WITH_TIMEOUT(raw.connected(), 5000);
    raw.send(handshake("another-cluster", 42));
    QTRY_VERIFY_WITH_TIMEOUT(raw.closed(), 5000);
    const std::vector<wire::Frame> frames = raw.frames();
    QVERIFY(!frames.empty());
    QCOMPARE(frames.front().body_case(), wire::Frame::kHandshakeReply);
    QVERIFY(!frames.front().handshake_reply().accepted());
    QVERIFY(hasErrorFrame(frames, wire::ERROR_CODE_WRONG_CLUSTER));

    // A whole server of another cluster that knows our members' addresses
    // never gets a connection accepted, and the cluster carries on.
    const std::vector<quint16> ports = freeLoopbackPorts(1);
    QCOMPARE(ports.size(), std::size_t{1});
    ServerConfig config;
    config.id = 4;
    config.address = QStringLiteral("127.0.0.1:%1").arg(ports.front());
    config.peers = cluster.members();
    config.clusterId = "intruders";
    config.storageLevel = copycat::storage::StorageLevel::Memory;
    ServerNode intruder(config);
    QVERIFY(intruder.start());
    const std::uint64_t before = cluster.node(2).rejectedConnections();
    QTRY_VERIFY_WITH_TIMEOUT(cluster.node(2).rejectedConnections() > before, 5000);
    QVERIFY(intruder.connectedPeers().empty());
    QVERIFY(cluster.commit("still-serving"));
    QVERIFY(intruder.connectedPeers().empty());
    QVERIFY(intruder.status().leader == raft::kNoNode);
    for (NodeId id : cluster.running()) {
      const raft::Status status = cluster.node(id).status();
      QVERIFY(!status.membership.contains(4));
    }
    intruder.stop();
  }

 private:
  static void storageLevels() {
    QTest::addColumn<bool>("disk");
    QTest::newRow("memory") << false;
    QTest::newRow("disk") << true;
  }
};

QTEST_GUILESS_MAIN(ServerClusterTimingTest)
#include "server_cluster_timing_test.moc"
