// The Server facade (engine/server/server.h) over real loopback TCP: three
// in-process servers with the example map state machine. Commands through
// the leader, reads, replica equality, a slow state machine that must not
// cost the leader its leadership, automatic snapshots and recovery from
// them, and an unregistered operation type. Wall-clock timers drive the
// cores, so every wait has a generous bound.

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <QDateTime>
#include <QDeadlineTimer>
#include <QDir>
#include <QRandomGenerator>
#include <QTcpServer>
#include <QTemporaryDir>
#include <QtTest>

#include "engine/kv/map_state_machine.h"
#include "engine/server/server.h"
#include "tests/server_test_util.h"

using copycat::Command;
using copycat::ErrorCode;
using copycat::Expected;
using copycat::Index;
using copycat::Serializer;
using copycat::kv::CasCommand;
using copycat::kv::GetQuery;
using copycat::kv::KeysQuery;
using copycat::kv::PutCommand;
using copycat::kv::SizeQuery;
using copycat::server::Server;
using copycat::server::ServerError;
namespace raft = copycat::raft;

namespace {

constexpr int kLeaderTimeoutMs = 15000;
constexpr int kResultTimeoutMs = 20000;

/// Sleeps `ms` milliseconds in the state machine (a slow handler).
struct SlowCommand : Command<bool> {
  int ms = 0;
  SlowCommand() = default;
  explicit SlowCommand(int m) : ms(m) {}
  template <class Archive>
  void serialize(Archive& archive) {
    archive(ms);
  }
};

/// Records its Commit::time under its index and returns it (ms since epoch).
struct StampCommand : Command<std::int64_t> {
  template <class Archive>
  void serialize(Archive&) {}
};

/// The recorded stamps (index -> Commit::time in ms).
struct StampsQuery : copycat::Query<std::map<std::uint64_t, std::int64_t>> {
  template <class Archive>
  void serialize(Archive&) {}
};

/// Never registered with any serializer.
struct UnregisteredCommand : Command<bool> {
  template <class Archive>
  void serialize(Archive&) {}
};

class SlowMap : public copycat::kv::MapStateMachine {
 public:
  SlowMap() {
    on<SlowCommand>([](copycat::Commit<SlowCommand>& commit) {
      std::this_thread::sleep_for(std::chrono::milliseconds(commit->ms));
      return true;
    });
    on<StampCommand>([this](copycat::Commit<StampCommand>& commit) {
      const std::int64_t time = commit.time().time_since_epoch().count();
      m_stamps[commit.index()] = time;
      return time;
    });
    on<StampsQuery>([this](copycat::Commit<StampsQuery>&) { return m_stamps; });
  }

 private:
  std::map<std::uint64_t, std::int64_t> m_stamps;  // not snapshotted: tests only
};

void registerAll(Serializer& serializer) {
  copycat::kv::registerKvOperations(serializer);
  serializer.registerType<SlowCommand>(100);
  serializer.registerType<StampCommand>(101);
  serializer.registerType<StampsQuery>(102);
}

using copycat::testing::freeLoopbackPorts;

/// Waits for a future while the test thread's event loop keeps running.
/// Nothing when it did not finish in time, was cancelled or failed with a
/// ServerError (logged).
template <class T>
std::optional<Expected<T>> await(QFuture<Expected<T>> future, int timeoutMs = kResultTimeoutMs) {
  QDeadlineTimer deadline(timeoutMs);
  while (!future.isFinished() && !deadline.hasExpired()) QTest::qWait(5);
  if (!future.isFinished() || future.isCanceled()) return std::nullopt;
  try {
    return future.result();
  } catch (const ServerError& error) {
    qWarning() << "request failed:" << error.message();
    return std::nullopt;
  }
}

class Cluster {
 public:
  explicit Cluster(std::uint64_t snapshotEntries = 10000,
                   std::function<void(copycat::server::ServerConfig&)> tweak = {})
      : m_snapshotEntries(snapshotEntries), m_tweak(std::move(tweak)) {
    for (quint16 port : freeLoopbackPorts(3)) m_members << QStringLiteral("127.0.0.1:%1").arg(port);
    for (const QString& address : m_members) m_servers[address] = build(address);
  }

  std::unique_ptr<Server> build(const QString& address) {
    return Server::builder(address)
        .withStateMachine([] { return std::make_unique<SlowMap>(); })
        .withRegistration(registerAll)
        .withStorage(copycat::storage::StorageLevel::Disk, directoryOf(address), 1u << 20,
                     m_snapshotEntries)
        .withElectionTimeout(std::chrono::milliseconds(1000))
        .withHeartbeatInterval(std::chrono::milliseconds(50))
        .withClusterId("api-test")
        .withConfig([this](copycat::server::ServerConfig& config) {
          if (m_tweak) m_tweak(config);
        })
        .build();
  }

  QString directoryOf(const QString& address) const {
    return m_directory.filePath(QString(address).replace(QLatin1Char(':'), QLatin1Char('_')));
  }

  bool bootstrap() {
    if (m_members.size() != 3 || !m_directory.isValid()) return false;
    std::vector<QFuture<void>> done;
    for (auto& [address, server] : m_servers) done.push_back(server->bootstrap(m_members));
    for (QFuture<void>& future : done) {
      try {
        future.waitForFinished();
      } catch (const ServerError& error) {
        qWarning() << "bootstrap failed:" << error.message();
        return false;
      }
    }
    return true;
  }

  /// Stops every server and starts new ones from their directories.
  bool restartAll() {
    for (auto& [address, server] : m_servers) server->shutdown().waitForFinished();
    m_servers.clear();
    for (const QString& address : m_members) {
      m_servers[address] = build(address);
      try {
        m_servers[address]->start().waitForFinished();
      } catch (const ServerError& error) {
        qWarning() << "restart failed:" << error.message();
        return false;
      }
    }
    return true;
  }

  /// The one leader, if exactly one server is leader.
  Server* leader() const {
    Server* found = nullptr;
    for (const auto& [address, server] : m_servers) {
      if (!server->isLeader()) continue;
      if (found) return nullptr;
      found = server.get();
    }
    return found;
  }

  /// Submits through whoever is leader, retrying while there is none.
  template <class Op>
  std::optional<Expected<typename Op::Result>> submit(const Op& op) {
    QDeadlineTimer deadline(kResultTimeoutMs);
    while (!deadline.hasExpired()) {
      if (Server* current = leader()) {
        auto result = await(current->submit(op));
        if (result) return result;
      }
      QTest::qWait(50);
    }
    return std::nullopt;
  }

  const std::map<QString, std::unique_ptr<Server>>& servers() const { return m_servers; }
  void stop(const QString& address) { m_servers.at(address)->shutdown().waitForFinished(); }

 private:
  std::uint64_t m_snapshotEntries;
  std::function<void(copycat::server::ServerConfig&)> m_tweak;
  QTemporaryDir m_directory;
  QStringList m_members;
  std::map<QString, std::unique_ptr<Server>> m_servers;
};

/// A server's whole map, read locally once it applied `index`.
std::optional<std::map<std::string, std::string>> dump(Server& server, Index index) {
  const auto keys = await(server.submit(KeysQuery{}, copycat::Consistency::Sequential, index));
  if (!keys || !*keys) return std::nullopt;
  std::map<std::string, std::string> result;
  for (const std::string& key : keys->value()) {
    const auto value = await(server.submit(GetQuery(key), copycat::Consistency::Sequential, index));
    if (!value || !*value || !value->value()) return std::nullopt;
    result[key] = *value->value();
  }
  return result;
}

}  // namespace

class ServerApiTimingTest : public QObject {
  Q_OBJECT

 private slots:
  void commandsAndQueriesThroughTheLeader();
  void slowStateMachineKeepsLeadership();
  void snapshotsAndRecovery();
  void unregisteredOperationIsAnError();
  void proposalFailsWhenLeadershipIsLost();
  void followerServesSequentialReadsWithoutHoldingThem();
};

void ServerApiTimingTest::commandsAndQueriesThroughTheLeader() {
  Cluster cluster;
  QVERIFY(cluster.bootstrap());
  QTRY_VERIFY_WITH_TIMEOUT(cluster.leader() != nullptr, kLeaderTimeoutMs);

  auto put = cluster.submit(PutCommand("a", "1"));
  QVERIFY(put && *put);
  QVERIFY(put->value() == std::nullopt);
  put = cluster.submit(PutCommand("a", "2"));
  QVERIFY(put && *put);
  QVERIFY(put->value() == std::optional<std::string>("1"));
  auto get = cluster.submit(GetQuery("a"));
  QVERIFY(get && *get);
  QVERIFY(get->value() == std::optional<std::string>("2"));
  auto cas = cluster.submit(CasCommand("a", std::string("2"), "3"));
  QVERIFY(cas && *cas);
  QVERIFY(cas->value());
  cas = cluster.submit(CasCommand("a", std::string("2"), "4"));
  QVERIFY(cas && *cas);
  QVERIFY(!cas->value());
  cas = cluster.submit(CasCommand("b", std::nullopt, "x"));
  QVERIFY(cas && *cas);
  QVERIFY(cas->value());
  get = cluster.submit(GetQuery("a"));
  QVERIFY(get && *get);
  QVERIFY(get->value() == std::optional<std::string>("3"));
  get = cluster.submit(GetQuery("missing"));
  QVERIFY(get && *get);
  QVERIFY(get->value() == std::nullopt);
  const auto size = cluster.submit(SizeQuery{});
  QVERIFY(size && *size);
  QCOMPARE(size->value(), std::uint64_t{2});

  // Commit::time is the leader's clock, carried in the entry: never going
  // backwards, and the same on every replica.
  std::vector<std::int64_t> stamps;
  const std::int64_t before = QDateTime::currentMSecsSinceEpoch();
  for (int i = 0; i < 5; ++i) {
    const auto stamp = cluster.submit(StampCommand{});
    QVERIFY(stamp && *stamp);
    if (!stamps.empty()) QVERIFY(stamp->value() >= stamps.back());
    stamps.push_back(stamp->value());
  }
  QVERIFY(stamps.front() >= before - 1000);
  QVERIFY(stamps.back() <= QDateTime::currentMSecsSinceEpoch() + 1000);

  // Every replica ends equal once it applied what the leader applied.
  Server* leader = cluster.leader();
  QVERIFY(leader);
  const Index applied = leader->appliedIndex();
  const std::map<std::string, std::string> expected{{"a", "3"}, {"b", "x"}};
  for (const auto& [address, server] : cluster.servers()) {
    QTRY_VERIFY_WITH_TIMEOUT(server->appliedIndex() >= applied, kResultTimeoutMs);
    const auto contents = dump(*server, applied);
    QVERIFY2(contents.has_value(), qPrintable(address));
    QVERIFY(*contents == expected);
    const auto recorded =
        await(server->submit(StampsQuery{}, copycat::Consistency::Sequential, applied));
    QVERIFY(recorded && *recorded);
    std::vector<std::int64_t> times;
    for (const auto& [index, time] : recorded->value()) times.push_back(time);
    QVERIFY2(times == stamps, qPrintable(address));
  }
}

void ServerApiTimingTest::slowStateMachineKeepsLeadership() {
  Cluster cluster;
  QVERIFY(cluster.bootstrap());
  QTRY_VERIFY_WITH_TIMEOUT(cluster.leader() != nullptr, kLeaderTimeoutMs);
  // Let the leader's term settle (its no-op applied) before measuring.
  QVERIFY(cluster.submit(PutCommand("k", "v")).has_value());
  Server* leader = cluster.leader();
  QVERIFY(leader);
  const raft::Term term = leader->status().term;

  std::vector<QFuture<Expected<bool>>> slow;
  for (int i = 0; i < 12; ++i) slow.push_back(leader->submit(SlowCommand(300)));
  QDeadlineTimer window(3000);
  while (!window.hasExpired()) {
    QVERIFY2(leader->isLeader(), "the leader lost its leadership during slow applies");
    for (const auto& [address, server] : cluster.servers()) {
      QCOMPARE(server->status().term, term);
    }
    QTest::qWait(50);
  }
  // The state machine was still busy all along.
  QVERIFY(!slow.back().isFinished());
  for (QFuture<Expected<bool>>& future : slow) {
    const auto result = await(future, 30000);
    QVERIFY(result && *result);
    QVERIFY(result->value());
  }
  QCOMPARE(leader->status().term, term);
  QVERIFY(leader->isLeader());
}

void ServerApiTimingTest::snapshotsAndRecovery() {
  Cluster cluster(50);
  QVERIFY(cluster.bootstrap());
  QTRY_VERIFY_WITH_TIMEOUT(cluster.leader() != nullptr, kLeaderTimeoutMs);
  QVERIFY(cluster.submit(PutCommand("warm", "up")).has_value());
  Server* leader = cluster.leader();
  QVERIFY(leader);

  std::vector<QFuture<Expected<std::optional<std::string>>>> puts;
  for (int i = 0; i < 200; ++i) {
    puts.push_back(
        leader->submit(PutCommand("key" + std::to_string(i), "value" + std::to_string(i))));
  }
  for (auto& future : puts) {
    const auto result = await(future);
    QVERIFY(result);
    QVERIFY2(*result, *result ? "" : result->error().message.c_str());
  }
  const Index applied = leader->appliedIndex();
  QVERIFY(applied >= 201);
  for (const auto& [address, server] : cluster.servers()) {
    QTRY_VERIFY_WITH_TIMEOUT(server->appliedIndex() >= applied, kResultTimeoutMs);
    QVERIFY(server->snapshotsTaken() >= 4);
    QTRY_VERIFY_WITH_TIMEOUT(server->status().snapshotIndex >= 150, kResultTimeoutMs);
    const QDir snapshots(cluster.directoryOf(address) + QStringLiteral("/snapshots"));
    QVERIFY2(!snapshots.entryList(QDir::Files).isEmpty(), qPrintable(snapshots.path()));
  }

  // Every node restarts from its snapshot plus the rest of its log.
  QVERIFY(cluster.restartAll());
  for (const auto& [address, server] : cluster.servers()) {
    QVERIFY(server->appliedIndex() == 0 || server->appliedIndex() >= 150);
  }
  QTRY_VERIFY_WITH_TIMEOUT(cluster.leader() != nullptr, kLeaderTimeoutMs);
  std::map<std::string, std::string> expected{{"warm", "up"}};
  for (int i = 0; i < 200; ++i) expected["key" + std::to_string(i)] = "value" + std::to_string(i);
  for (const auto& [address, server] : cluster.servers()) {
    QTRY_VERIFY_WITH_TIMEOUT(server->appliedIndex() >= applied, kResultTimeoutMs);
    const auto contents = dump(*server, applied);
    QVERIFY2(contents.has_value(), qPrintable(address));
    QVERIFY(*contents == expected);
  }
  const auto get = cluster.submit(GetQuery("key199"));
  QVERIFY(get && *get);
  QVERIFY(get->value() == std::optional<std::string>("value199"));
}

void ServerApiTimingTest::unregisteredOperationIsAnError() {
  // A state machine handling a type the serializer does not know is refused
  // when the server is built.
  QVERIFY_THROWS_EXCEPTION(std::invalid_argument,
                           Server::builder(QStringLiteral("127.0.0.1:20000"))
                               .withStateMachine([] { return std::make_unique<SlowMap>(); })
                               .withRegistration(copycat::kv::registerKvOperations)
                               .build());

  const std::vector<quint16> ports = freeLoopbackPorts(1);
  QCOMPARE(ports.size(), std::size_t{1});
  auto server = Server::builder(QStringLiteral("127.0.0.1:%1").arg(ports[0]))
                    .withStateMachine([] { return std::make_unique<SlowMap>(); })
                    .withRegistration(registerAll)
                    .withStorage(copycat::storage::StorageLevel::Memory)
                    .build();
  server->bootstrap().waitForFinished();
  QTRY_VERIFY_WITH_TIMEOUT(server->isLeader(), kLeaderTimeoutMs);

  const auto typed = await(server->submit(UnregisteredCommand{}));
  QVERIFY(typed.has_value());
  QVERIFY(!*typed);
  QVERIFY(typed->error().code == ErrorCode::UnknownOperation);
  QVERIFY2(typed->error().message.find("UnregisteredCommand") != std::string::npos,
           typed->error().message.c_str());

  const auto raw = await(server->submit(copycat::TypeId{999}, std::string("garbage")));
  QVERIFY(raw.has_value());
  QVERIFY(!*raw);
  QVERIFY(raw->error().code == ErrorCode::UnknownOperation);

  // The server keeps serving.
  const auto put = await(server->submit(PutCommand("still", "here")));
  QVERIFY(put && *put);
  const auto get = await(server->submit(GetQuery("still")));
  QVERIFY(get && *get);
  QVERIFY(get->value() == std::optional<std::string>("here"));
  server->shutdown().waitForFinished();
}

void ServerApiTimingTest::proposalFailsWhenLeadershipIsLost() {
  Cluster cluster;
  QVERIFY(cluster.bootstrap());
  QTRY_VERIFY_WITH_TIMEOUT(cluster.leader() != nullptr, kLeaderTimeoutMs);
  QVERIFY(cluster.submit(PutCommand("k", "v")).has_value());
  Server* leader = cluster.leader();
  QVERIFY(leader);
  for (const auto& [address, server] : cluster.servers()) {
    if (server.get() != leader) cluster.stop(address);
  }
  // Without a quorum the entry cannot commit; the leader steps down (check
  // quorum) and the proposer learns that the outcome is unknown.
  QFuture<Expected<std::optional<std::string>>> put = leader->submit(PutCommand("k", "lost"));
  QTRY_VERIFY_WITH_TIMEOUT(put.isFinished(), kLeaderTimeoutMs);
  QVERIFY(!leader->isLeader());
  QVERIFY_THROWS_EXCEPTION(ServerError, put.result());
  // A follower refuses at once, naming no leader it could forward to.
  QFuture<Expected<std::optional<std::string>>> refused = leader->submit(PutCommand("k", "x"));
  QTRY_VERIFY_WITH_TIMEOUT(refused.isFinished(), kResultTimeoutMs);
  QVERIFY_THROWS_EXCEPTION(ServerError, refused.result());
}

// A follower holds committed entries for its state machine (ten minutes
// here); a sequential read that needs them has them handed out at once.
void ServerApiTimingTest::followerServesSequentialReadsWithoutHoldingThem() {
  Cluster cluster(
      10000, [](copycat::server::ServerConfig& config) { config.followerApplyDelayMs = 600000; });
  QVERIFY(cluster.bootstrap());
  QTRY_VERIFY_WITH_TIMEOUT(cluster.leader() != nullptr, kLeaderTimeoutMs);
  const auto put = cluster.submit(PutCommand("held", "yes"));
  QVERIFY(put && *put);
  Server* leader = cluster.leader();
  QVERIFY(leader);
  const Index written = leader->appliedIndex();
  // Heartbeats carry the commit index to the followers meanwhile.
  QTest::qWait(300);
  for (const auto& [address, server] : cluster.servers()) {
    if (server.get() == leader) continue;
    QVERIFY2(server->appliedIndex() < written, qPrintable(address));
    const auto value =
        await(server->submit(GetQuery("held"), copycat::Consistency::Sequential, written));
    QVERIFY2(value && *value, qPrintable(address));
    QVERIFY(value->value() == std::optional<std::string>("yes"));
    QVERIFY(server->appliedIndex() >= written);
  }
}

QTEST_GUILESS_MAIN(ServerApiTimingTest)
#include "server_api_timing_test.moc"
