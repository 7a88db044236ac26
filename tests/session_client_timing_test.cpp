// Clients and sessions over real loopback sockets: in-process servers
// (engine/server) driven through engine/client. Exactly-once commands with
// replies lost on the way, reads at the three consistency levels (never
// stale at a partitioned old leader, never backwards for one client),
// session events across a failover, session expiry, a follower caught up
// through InstallSnapshot, join/leave, and bad input on client connections.
// Wall-clock timers drive the cores, so every wait has a generous bound.

#include <algorithm>
#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <QDeadlineTimer>
#include <QLoggingCategory>
#include <QTemporaryDir>
#include <QtTest>

#include "engine/client/client.h"
#include "engine/kv/map_state_machine.h"
#include "engine/protocol/copycat.pb.h"
#include "engine/server/server.h"
#include "tests/server_test_util.h"

using copycat::Commit;
using copycat::Consistency;
using copycat::ErrorCode;
using copycat::Expected;
using copycat::Serializer;
using copycat::client::Client;
using copycat::client::RecoveryStrategy;
using copycat::client::ServerSelection;
using copycat::kv::GetQuery;
using copycat::kv::PutCommand;
using copycat::server::Server;
using copycat::testing::freeLoopbackPorts;
using copycat::testing::hasErrorFrame;
using copycat::testing::RawConnection;
namespace raft = copycat::raft;
namespace wire = copycat::wire;

namespace {

constexpr int kLeaderTimeoutMs = 20000;
constexpr int kResultTimeoutMs = 30000;
constexpr std::chrono::milliseconds kElectionTimeout{600};

/// Appends `suffix` to the value of `key`; returns the new value.
struct AppendCommand : copycat::Command<std::string> {
  std::string key, suffix;
  AppendCommand() = default;
  AppendCommand(std::string k, std::string s) : key(std::move(k)), suffix(std::move(s)) {}
  template <class Archive>
  void serialize(Archive& archive) {
    archive(key, suffix);
  }
};

/// Publishes the event "note" carrying `number` to the submitting session.
struct NotifyCommand : copycat::Command<bool> {
  int number = 0;
  NotifyCommand() = default;
  explicit NotifyCommand(int n) : number(n) {}
  template <class Archive>
  void serialize(Archive& archive) {
    archive(number);
  }
};

class TestMachine : public copycat::kv::MapStateMachine {
 public:
  TestMachine() {
    on<AppendCommand>([this](Commit<AppendCommand>& commit) {
      std::string& value = m_appended[commit->key];
      value += commit->suffix;
      return value;
    });
    on<NotifyCommand>([](Commit<NotifyCommand>& commit) {
      commit.session().publish("note", commit->number);
      return true;
    });
    on<AppendedQuery>([this](Commit<AppendedQuery>& commit) {
      auto found = m_appended.find(commit->key);
      return found == m_appended.end() ? std::string() : found->second;
    });
  }

  struct AppendedQuery : copycat::Query<std::string> {
    std::string key;
    AppendedQuery() = default;
    explicit AppendedQuery(std::string k) : key(std::move(k)) {}
    template <class Archive>
    void serialize(Archive& archive) {
      archive(key);
    }
  };

 private:
  std::map<std::string, std::string> m_appended;  // not snapshotted: no snapshots in those tests
};

void registerAll(Serializer& serializer) {
  copycat::kv::registerKvOperations(serializer);
  serializer.registerType<AppendCommand>(200);
  serializer.registerType<NotifyCommand>(201);
  serializer.registerType<TestMachine::AppendedQuery>(202);
}

/// Waits for a future while the test thread's event loop runs.
template <class T>
std::optional<T> await(QFuture<T> future, int timeoutMs = kResultTimeoutMs) {
  QDeadlineTimer deadline(timeoutMs);
  while (!future.isFinished() && !deadline.hasExpired()) QTest::qWait(5);
  if (!future.isFinished() || future.isCanceled()) return std::nullopt;
  try {
    return future.result();
  } catch (const std::exception& error) {
    qWarning() << "request failed:" << error.what();
    return std::nullopt;
  }
}

bool awaitVoid(QFuture<void> future, int timeoutMs = kResultTimeoutMs) {
  QDeadlineTimer deadline(timeoutMs);
  while (!future.isFinished() && !deadline.hasExpired()) QTest::qWait(5);
  if (!future.isFinished()) return false;
  try {
    future.waitForFinished();
    return true;
  } catch (const std::exception& error) {
    qWarning() << "failed:" << error.what();
    return false;
  }
}

/// In-process servers on loopback ports with their own storage directories.
class Cluster {
 public:
  struct Options {
    int size = 3;
    std::uint64_t snapshotEntries = 100000;
    std::uint64_t segmentBytes = 1u << 20;
    double replyDropRate = 0;
    std::chrono::milliseconds sessionTimeout{5000};
    int followerApplyDelayMs = copycat::server::ServerConfig{}.followerApplyDelayMs;
  };

  explicit Cluster(Options options) : m_options(options) {
    for (quint16 port : freeLoopbackPorts(options.size + 1)) {
      m_addresses << QStringLiteral("127.0.0.1:%1").arg(port);
    }
    m_spare = m_addresses.isEmpty() ? QString() : m_addresses.takeLast();
    for (const QString& address : m_addresses) m_servers[address] = build(address);
  }

  std::unique_ptr<Server> build(const QString& address) {
    const Options options = m_options;
    return Server::builder(address)
        .withStateMachine([] { return std::make_unique<TestMachine>(); })
        .withRegistration(registerAll)
        .withStorage(copycat::storage::StorageLevel::Disk,
                     m_directory.filePath(QString(address).replace(QLatin1Char(':'), '_')),
                     options.segmentBytes, options.snapshotEntries)
        .withElectionTimeout(kElectionTimeout)
        .withHeartbeatInterval(std::chrono::milliseconds(50))
        .withSessionTimeout(options.sessionTimeout)
        .withConfig([options](copycat::server::ServerConfig& config) {
          config.clientReplyDropRate = options.replyDropRate;
          config.snapshotKeepEntries = 5;
          config.followerApplyDelayMs = options.followerApplyDelayMs;
        })
        .build();
  }

  bool bootstrap() {
    if (m_addresses.size() != m_options.size || !m_directory.isValid()) return false;
    std::vector<QFuture<void>> done;
    for (auto& [address, server] : m_servers) done.push_back(server->bootstrap(m_addresses));
    for (QFuture<void>& future : done) {
      if (!awaitVoid(future)) return false;
    }
    return true;
  }

  Server* leader() const {
    Server* found = nullptr;
    for (const auto& [address, server] : m_servers) {
      if (!server->isLeader()) continue;
      if (found) return nullptr;
      found = server.get();
    }
    return found;
  }

  std::unique_ptr<Client> client(QStringList members = {},
                                 ServerSelection selection = ServerSelection::Any,
                                 std::chrono::milliseconds timeout = std::chrono::seconds(30)) {
    return Client::builder(members.isEmpty() ? m_addresses : members)
        .withRegistration(registerAll)
        .withServerSelection(selection)
        .withTimeout(timeout)
        .build();
  }

  /// Cuts (or heals) every link between `address` and the other servers.
  void isolate(const QString& address, bool cut) {
    Server& isolated = *m_servers.at(address);
    for (auto& [other, server] : m_servers) {
      if (other == address) continue;
      isolated.setLinkCut(server->id(), cut);
      server->setLinkCut(isolated.id(), cut);
    }
  }

  Server& server(const QString& address) { return *m_servers.at(address); }
  std::map<QString, std::unique_ptr<Server>>& servers() { return m_servers; }
  const QStringList& addresses() const { return m_addresses; }
  const QString& spare() const { return m_spare; }

 private:
  Options m_options;
  QTemporaryDir m_directory;
  QStringList m_addresses;
  QString m_spare;
  std::map<QString, std::unique_ptr<Server>> m_servers;
};

QString leaderAddress(Cluster& cluster) {
  Server* leader = cluster.leader();
  return leader ? leader->address() : QString();
}

wire::Frame clientHandshake(const std::string& clusterId) {
  wire::Frame frame;
  wire::Handshake* body = frame.mutable_handshake();
  body->set_request_id(1);
  body->set_protocol_version(copycat::protocol::kProtocolVersion);
  body->set_cluster_id(clusterId);
  body->set_kind(wire::PEER_KIND_CLIENT);
  return frame;
}

/// Opens a session over a raw client connection; 0 when none was opened.
std::uint64_t registerRawSession(RawConnection& raw) {
  raw.send(clientHandshake(""));
  wire::Frame registerFrame;
  registerFrame.mutable_register_session()->set_request_id(2);
  raw.send(registerFrame);
  QDeadlineTimer deadline(kResultTimeoutMs);
  while (!deadline.hasExpired()) {
    for (const wire::Frame& frame : raw.frames()) {
      if (frame.body_case() == wire::Frame::kRegisterSessionReply) {
        return frame.register_session_reply().session_id();
      }
    }
    QTest::qWait(10);
  }
  return 0;
}

const wire::OperationReply* findReply(const std::vector<wire::Frame>& frames,
                                      std::uint64_t requestId) {
  for (const wire::Frame& frame : frames) {
    if (frame.body_case() == wire::Frame::kOperationReply &&
        frame.operation_reply().request_id() == requestId) {
      return &frame.operation_reply();
    }
  }
  return nullptr;
}

}  // namespace

class SessionClientTimingTest : public QObject {
  Q_OBJECT

 private slots:
  void initTestCase() { QLoggingCategory::setFilterRules(QStringLiteral("copycat.*.info=false")); }

  void clientsReadAndWrite_data() {
    QTest::addColumn<int>("size");
    QTest::newRow("3 nodes") << 3;
    QTest::newRow("5 nodes") << 5;
  }
  void clientsReadAndWrite() {
    QFETCH(int, size);
    Cluster cluster({.size = size});
    QVERIFY(cluster.bootstrap());
    QTRY_VERIFY_WITH_TIMEOUT(cluster.leader() != nullptr, kLeaderTimeoutMs);
    auto client = cluster.client();
    QVERIFY(await(client->connect()).value_or(Expected<void>(copycat::Error{})).ok());
    for (int i = 0; i < 30; ++i) {
      auto put = await(client->submit(PutCommand("k" + std::to_string(i), std::to_string(i))));
      QVERIFY(put && put->ok());
    }
    for (Consistency level :
         {Consistency::Linearizable, Consistency::LinearizableLease, Consistency::Sequential}) {
      auto get = await(client->submit(GetQuery("k29"), level));
      QVERIFY(get && get->ok());
      QCOMPARE(get->value(), std::optional<std::string>("29"));
    }
    const copycat::Index last = client->lastIndex();
    for (auto& [address, server] : cluster.servers()) {
      QTRY_VERIFY_WITH_TIMEOUT(server->appliedIndex() >= last, kResultTimeoutMs);
    }
  }

  void exactlyOnceWithLostReplies() {
    Cluster cluster({.replyDropRate = 0.2});
    QVERIFY(cluster.bootstrap());
    QTRY_VERIFY_WITH_TIMEOUT(cluster.leader() != nullptr, kLeaderTimeoutMs);
    constexpr int kClients = 5;
    constexpr int kAppends = 50;
    std::vector<std::unique_ptr<Client>> clients;
    for (int c = 0; c < kClients; ++c) clients.push_back(cluster.client());
    // Every client appends its tokens one after another, all clients at once.
    std::vector<int> next(kClients, 0);
    std::vector<QFuture<Expected<std::string>>> inFlight(kClients);
    for (int c = 0; c < kClients; ++c) {
      inFlight[c] = clients[c]->submit(
          AppendCommand("log", QStringLiteral("c%1:%2;").arg(c).arg(0).toStdString()));
    }
    QDeadlineTimer deadline(180000);
    int done = 0;
    while (done < kClients && !deadline.hasExpired()) {
      QTest::qWait(5);
      for (int c = 0; c < kClients; ++c) {
        if (next[c] >= kAppends || !inFlight[c].isFinished()) continue;
        const Expected<std::string> result = inFlight[c].result();
        QVERIFY2(result.ok(), result.ok() ? "" : result.error().message.c_str());
        if (++next[c] == kAppends) {
          ++done;
          continue;
        }
        inFlight[c] = clients[c]->submit(
            AppendCommand("log", QStringLiteral("c%1:%2;").arg(c).arg(next[c]).toStdString()));
      }
    }
    QCOMPARE(done, kClients);
    auto log = await(clients[0]->submit(TestMachine::AppendedQuery("log")));
    QVERIFY(log && log->ok());
    const QStringList tokens =
        QString::fromStdString(log->value()).split(QLatin1Char(';'), Qt::SkipEmptyParts);
    QCOMPARE(tokens.size(), kClients * kAppends);
    std::vector<int> seen(kClients, 0);
    for (const QString& token : tokens) {
      const QStringList parts = token.mid(1).split(QLatin1Char(':'));
      QCOMPARE(parts.size(), 2);
      const int c = parts[0].toInt();
      QCOMPARE(parts[1].toInt(), seen[c]);  // once each, in the client's order
      ++seen[c];
    }
  }

  void linearizableReadAtPartitionedOldLeaderIsNeverStale() {
    Cluster cluster({});
    QVERIFY(cluster.bootstrap());
    QTRY_VERIFY_WITH_TIMEOUT(cluster.leader() != nullptr, kLeaderTimeoutMs);
    auto writer = cluster.client();
    auto first = await(writer->submit(PutCommand("x", "old")));
    QVERIFY(first && first->ok());
    const QString oldLeader = leaderAddress(cluster);
    QVERIFY(!oldLeader.isEmpty());
    QStringList majority = cluster.addresses();
    majority.removeAll(oldLeader);

    // A client that can reach only the old leader, connected before the cut.
    auto isolatedReader =
        cluster.client({oldLeader}, ServerSelection::Any, std::chrono::milliseconds(4000));
    QVERIFY(await(isolatedReader->connect()).value_or(Expected<void>(copycat::Error{})).ok());

    cluster.isolate(oldLeader, true);
    auto majorityClient = cluster.client(majority);
    auto second = await(majorityClient->submit(PutCommand("x", "new")));
    QVERIFY(second && second->ok());

    // Straight at the old leader: it cannot confirm its leadership, so it
    // never answers OK (it fails the read or redirects once it stepped down).
    RawConnection raw(static_cast<quint16>(oldLeader.section(':', 1).toUInt()));
    QTRY_VERIFY_WITH_TIMEOUT(raw.connected(), 5000);
    raw.send(clientHandshake(""));
    std::uint64_t requestId = 10;
    for (wire::Consistency level :
         {wire::CONSISTENCY_LINEARIZABLE, wire::CONSISTENCY_LINEARIZABLE_LEASE}) {
      wire::Frame query;
      wire::QueryRequest* body = query.mutable_query();
      body->set_request_id(++requestId);
      body->set_consistency(level);
      body->set_type_id(2);  // GetQuery
      body->set_payload(cluster.server(oldLeader).serializer().encode(GetQuery("x")).bytes);
      raw.send(query);
      QTRY_VERIFY_WITH_TIMEOUT(findReply(raw.frames(), requestId) != nullptr, kResultTimeoutMs);
      QVERIFY2(findReply(raw.frames(), requestId)->status() != wire::STATUS_OK,
               "a partitioned old leader served a linearizable read");
    }
    // Through a client that knew only the old leader: it fails over to the
    // majority (it learned the members) or gives up, never reads "old".
    for (Consistency level : {Consistency::Linearizable, Consistency::LinearizableLease}) {
      auto read = await(isolatedReader->submit(GetQuery("x"), level));
      QVERIFY(read.has_value());
      if (read->ok()) {
        QCOMPARE(read->value(), std::optional<std::string>("new"));
      } else {
        QVERIFY(read->error().code == ErrorCode::Unavailable);
      }
    }
    cluster.isolate(oldLeader, false);
    QTRY_VERIFY_WITH_TIMEOUT(
        cluster.server(oldLeader).appliedIndex() >= majorityClient->lastIndex(), kResultTimeoutMs);
    auto healed = cluster.client({oldLeader}, ServerSelection::Any);
    auto read = await(healed->submit(GetQuery("x"), Consistency::Linearizable));
    QVERIFY(read && read->ok());
    QCOMPARE(read->value(), std::optional<std::string>("new"));
  }

  void sequentialReadsNeverGoBackwards() {
    Cluster cluster({});
    QVERIFY(cluster.bootstrap());
    QTRY_VERIFY_WITH_TIMEOUT(cluster.leader() != nullptr, kLeaderTimeoutMs);
    auto client = cluster.client({}, ServerSelection::Followers);
    QString lagging;
    for (const QString& address : cluster.addresses()) {
      if (address != leaderAddress(cluster)) lagging = address;
    }
    int lastSeen = -1;
    for (int i = 0; i < 60; ++i) {
      if (i == 10) cluster.isolate(lagging, true);  // one follower falls behind
      if (i == 40) cluster.isolate(lagging, false);
      auto put = await(client->submit(PutCommand("counter", std::to_string(i))));
      QVERIFY(put && put->ok());
      auto get = await(client->submit(GetQuery("counter"), Consistency::Sequential));
      QVERIFY(get && get->ok() && get->value());
      const int seen = std::stoi(*get->value());
      QVERIFY2(seen >= i, "a sequential read returned state older than the client's own write");
      QVERIFY(seen >= lastSeen);
      lastSeen = seen;
    }
  }

  void followerCatchesUpThroughSnapshot() {
    // Small segments: compaction drops whole segments below the snapshot.
    Cluster cluster({.snapshotEntries = 20, .segmentBytes = 2048});
    QVERIFY(cluster.bootstrap());
    QTRY_VERIFY_WITH_TIMEOUT(cluster.leader() != nullptr, kLeaderTimeoutMs);
    auto client = cluster.client();
    QString follower;
    for (const QString& address : cluster.addresses()) {
      if (address != leaderAddress(cluster)) follower = address;
    }
    cluster.isolate(follower, true);
    const raft::Index behind = cluster.server(follower).status().lastIndex;
    for (int i = 0; i < 200; ++i) {
      auto put = await(client->submit(PutCommand("s" + std::to_string(i), std::to_string(i))));
      QVERIFY(put && put->ok());
    }
    Server* leader = cluster.leader();
    QVERIFY(leader != nullptr);
    // The leader compacted past everything the follower has.
    QTRY_VERIFY_WITH_TIMEOUT(leader->status().firstIndex > behind + 1, kResultTimeoutMs);
    cluster.isolate(follower, false);
    QTRY_VERIFY_WITH_TIMEOUT(cluster.server(follower).status().snapshotIndex > behind,
                             kResultTimeoutMs);
    QTRY_VERIFY_WITH_TIMEOUT(cluster.server(follower).appliedIndex() >= client->lastIndex(),
                             kResultTimeoutMs);
    auto reader = cluster.client({follower}, ServerSelection::Any);
    for (int i : {0, 99, 199}) {
      auto get = await(reader->submit(GetQuery("s" + std::to_string(i)), Consistency::Sequential));
      QVERIFY(get && get->ok());
      QCOMPARE(get->value(), std::optional<std::string>(std::to_string(i)));
    }
  }

  // A follower holds committed entries for its state machine (ten minutes
  // here): a client's sequential read there, which waits for its session's
  // registration and its own write, has them handed out at once.
  void sequentialReadAtAFollowerDoesNotWaitForHeldEntries() {
    Cluster cluster({.followerApplyDelayMs = 600000});
    QVERIFY(cluster.bootstrap());
    QTRY_VERIFY_WITH_TIMEOUT(cluster.leader() != nullptr, kLeaderTimeoutMs);
    auto reader = cluster.client({}, ServerSelection::Followers);
    auto put = await(reader->submit(PutCommand("held", "yes")));
    QVERIFY(put && put->ok());
    // Heartbeats carry the commit index to the followers meanwhile.
    QTest::qWait(300);
    for (const QString& address : cluster.addresses()) {
      if (address == leaderAddress(cluster)) continue;
      QVERIFY2(cluster.server(address).appliedIndex() < reader->lastIndex(), qPrintable(address));
    }
    auto get = await(reader->submit(GetQuery("held"), Consistency::Sequential));
    QVERIFY(get && get->ok());
    QCOMPARE(get->value(), std::optional<std::string>("yes"));
  }

  void serverJoinsAndAnotherLeaves() {
    Cluster cluster({});
    QVERIFY(cluster.bootstrap());
    QTRY_VERIFY_WITH_TIMEOUT(cluster.leader() != nullptr, kLeaderTimeoutMs);
    auto client = cluster.client();
    for (int i = 0; i < 20; ++i) {
      QVERIFY(await(client->submit(PutCommand("j" + std::to_string(i), "v")))
                  .value_or(Expected<std::optional<std::string>>(copycat::Error{}))
                  .ok());
    }
    std::unique_ptr<Server> joiner = cluster.build(cluster.spare());
    QVERIFY(awaitVoid(joiner->join(cluster.addresses())));
    QTRY_VERIFY_WITH_TIMEOUT(
        cluster.leader() && cluster.leader()->status().membership.isVoter(joiner->id()),
        kResultTimeoutMs);
    QTRY_VERIFY_WITH_TIMEOUT(joiner->appliedIndex() >= client->lastIndex(), kResultTimeoutMs);
    // From now on the joiner is one of the cluster's servers (it may lead).
    Server* joined = joiner.get();
    cluster.servers()[cluster.spare()] = std::move(joiner);

    // Demote the joiner to a passive member and promote it again.
    auto demoted = await(client->demote(cluster.spare()));
    QVERIFY(demoted && demoted->ok());
    QVERIFY(cluster.leader() && cluster.leader()->status().membership.isLearner(joined->id()));
    auto promoted = await(client->promote(cluster.spare()));
    QVERIFY(promoted && promoted->ok());
    QVERIFY(cluster.leader() && cluster.leader()->status().membership.isVoter(joined->id()));
    // Demoting the leader hands leadership over first.
    const QString firstLeader = leaderAddress(cluster);
    auto demotedLeader = await(client->demote(firstLeader));
    QVERIFY(demotedLeader && demotedLeader->ok());
    QTRY_VERIFY_WITH_TIMEOUT(
        cluster.leader() && cluster.leader()->address() != firstLeader &&
            cluster.leader()->status().membership.isLearner(cluster.server(firstLeader).id()),
        kResultTimeoutMs);
    auto repromoted = await(client->promote(firstLeader));
    QVERIFY(repromoted && repromoted->ok());
    auto notMember = await(client->promote(QStringLiteral("127.0.0.1:1")));
    QVERIFY(notMember && !notMember->ok());

    QString leaving;
    for (const QString& address : cluster.addresses()) {
      if (address != leaderAddress(cluster)) leaving = address;
    }
    auto left = await(client->leave(leaving));
    QVERIFY(left && left->ok());
    const raft::NodeId leavingId = cluster.server(leaving).id();
    Server* leader = cluster.leader();
    QVERIFY(leader && !leader->status().membership.contains(leavingId));
    const raft::Term term = leader->status().term;
    // The removed server keeps running and cannot disrupt the others.
    QTest::qWait(3 * static_cast<int>(kElectionTimeout.count()));
    QVERIFY(cluster.leader() != nullptr);
    QCOMPARE(cluster.leader()->status().term, term);
    auto put = await(client->submit(PutCommand("after", "leave")));
    QVERIFY(put && put->ok());
  }

  void eventsArriveInOrderAcrossFailover() {
    Cluster cluster({});
    QVERIFY(cluster.bootstrap());
    QTRY_VERIFY_WITH_TIMEOUT(cluster.leader() != nullptr, kLeaderTimeoutMs);
    auto client = cluster.client();
    std::vector<int> received;
    std::mutex mutex;
    client->onEvent<int>("note", std::function<void(const int&)>([&](const int& number) {
                           std::lock_guard lock(mutex);
                           received.push_back(number);
                         }));
    for (int i = 0; i < 40; ++i) {
      if (i == 20) cluster.server(leaderAddress(cluster)).shutdown();
      auto notified = await(client->submit(NotifyCommand(i)));
      QVERIFY(notified && notified->ok());
      std::lock_guard lock(mutex);
      // An operation completes only after the events it published.
      QVERIFY(!received.empty() && received.back() == i);
    }
    std::lock_guard lock(mutex);
    QCOMPARE(static_cast<int>(received.size()), 40);
    for (int i = 0; i < 40; ++i) QCOMPARE(received[static_cast<std::size_t>(i)], i);
  }

  void sessionExpiresByLogTime() {
    Cluster cluster({.sessionTimeout = std::chrono::milliseconds(1500)});
    QVERIFY(cluster.bootstrap());
    QTRY_VERIFY_WITH_TIMEOUT(cluster.leader() != nullptr, kLeaderTimeoutMs);
    Server* leader = cluster.leader();
    RawConnection raw(static_cast<quint16>(leader->address().section(':', 1).toUInt()));
    QTRY_VERIFY_WITH_TIMEOUT(raw.connected(), 5000);
    const std::uint64_t session = registerRawSession(raw);
    QVERIFY(session != 0);
    // No keep-alive from this session while another client moves log time on.
    auto other = cluster.client();
    QDeadlineTimer quiet(3000);
    while (!quiet.hasExpired()) {
      QVERIFY(await(other->submit(PutCommand("tick", "tock")))
                  .value_or(Expected<std::optional<std::string>>(copycat::Error{}))
                  .ok());
      QTest::qWait(100);
    }
    wire::Frame command;
    wire::CommandRequest* body = command.mutable_command();
    body->set_request_id(3);
    body->set_session_id(session);
    body->set_sequence(1);
    body->set_type_id(1);  // PutCommand
    body->set_payload(
        cluster.server(leader->address()).serializer().encode(PutCommand("a", "b")).bytes);
    raw.send(command);
    QTRY_VERIFY_WITH_TIMEOUT(findReply(raw.frames(), 3) != nullptr, kResultTimeoutMs);
    QCOMPARE(findReply(raw.frames(), 3)->status(), wire::STATUS_SESSION_EXPIRED);
  }

  void badInputOnClientConnections_data() {
    QTest::addColumn<int>("kind");
    QTest::newRow("garbage bytes") << 0;
    QTest::newRow("length over the maximum") << 1;
    QTest::newRow("truncated frame") << 2;
    QTest::newRow("unknown message type") << 3;
    QTest::newRow("wrong cluster id") << 4;
    QTest::newRow("raft message on a client connection") << 5;
  }
  void badInputOnClientConnections() {
    QFETCH(int, kind);
    Cluster cluster({});
    QVERIFY(cluster.bootstrap());
    QTRY_VERIFY_WITH_TIMEOUT(cluster.leader() != nullptr, kLeaderTimeoutMs);
    auto client = cluster.client();
    QVERIFY(await(client->submit(PutCommand("kept", "yes")))
                .value_or(Expected<std::optional<std::string>>(copycat::Error{}))
                .ok());
    Server* leader = cluster.leader();
    RawConnection raw(static_cast<quint16>(leader->address().section(':', 1).toUInt()));
    QTRY_VERIFY_WITH_TIMEOUT(raw.connected(), 5000);
    if (kind != 0 && kind != 4) raw.send(clientHandshake(""));
    switch (kind) {
      case 0:
        raw.send(QByteArray("\x00\x00\x00\x05hello garbage", 18));
        break;
      case 1:
        raw.send(QByteArray("\x7f\xff\xff\xff", 4));
        break;
      case 2:
        raw.send(QByteArray("\x00\x00\x01\x00\x0a\x02", 6));
        raw.socket().flush();
        raw.socket().disconnectFromHost();
        break;
      case 3:
        raw.send(QByteArray("\x00\x00\x00\x03\xf8\x3e\x01", 7));  // field 999: no known body
        break;
      case 4:
        raw.send(clientHandshake("another-cluster"));
        break;
      case 5: {
        wire::Frame frame;
        frame.mutable_raft()->set_type(wire::RAFT_MESSAGE_TYPE_HEARTBEAT);
        raw.send(frame);
        break;
      }
    }
    QTRY_VERIFY_WITH_TIMEOUT(raw.closed(), 10000);
    if (kind == 0 || kind == 3) {
      QVERIFY(hasErrorFrame(raw.frames(), kind == 0 ? wire::ERROR_CODE_UNEXPECTED_MESSAGE
                                                    : wire::ERROR_CODE_UNKNOWN_MESSAGE) ||
              hasErrorFrame(raw.frames(), wire::ERROR_CODE_MALFORMED_FRAME));
    }
    if (kind == 1) QVERIFY(hasErrorFrame(raw.frames(), wire::ERROR_CODE_FRAME_TOO_LARGE));
    if (kind == 4) QVERIFY(hasErrorFrame(raw.frames(), wire::ERROR_CODE_WRONG_CLUSTER));
    // The server keeps serving everyone else and lost nothing.
    auto get = await(client->submit(GetQuery("kept")));
    QVERIFY(get && get->ok());
    QCOMPARE(get->value(), std::optional<std::string>("yes"));
    QVERIFY(leader->isRunning());
  }

  void unregisteredOperationTypeKeepsTheConnection() {
    Cluster cluster({});
    QVERIFY(cluster.bootstrap());
    QTRY_VERIFY_WITH_TIMEOUT(cluster.leader() != nullptr, kLeaderTimeoutMs);
    Server* leader = cluster.leader();
    RawConnection raw(static_cast<quint16>(leader->address().section(':', 1).toUInt()));
    QTRY_VERIFY_WITH_TIMEOUT(raw.connected(), 5000);
    const std::uint64_t session = registerRawSession(raw);
    QVERIFY(session != 0);
    wire::Frame command;
    command.mutable_command()->set_request_id(3);
    command.mutable_command()->set_session_id(session);
    command.mutable_command()->set_sequence(1);
    command.mutable_command()->set_type_id(9999);
    command.mutable_command()->set_payload("whatever");
    raw.send(command);
    QTRY_VERIFY_WITH_TIMEOUT(findReply(raw.frames(), 3) != nullptr, kResultTimeoutMs);
    QCOMPARE(findReply(raw.frames(), 3)->status(), wire::STATUS_UNKNOWN_OPERATION);
    // The same connection still works: a valid command with that sequence.
    command.mutable_command()->set_request_id(4);
    command.mutable_command()->set_type_id(1);
    command.mutable_command()->set_payload(
        leader->serializer().encode(PutCommand("ok", "1")).bytes);
    raw.send(command);
    QTRY_VERIFY_WITH_TIMEOUT(findReply(raw.frames(), 4) != nullptr, kResultTimeoutMs);
    QCOMPARE(findReply(raw.frames(), 4)->status(), wire::STATUS_OK);
    QVERIFY(!raw.closed());
  }
};

QTEST_MAIN(SessionClientTimingTest)
#include "session_client_timing_test.moc"
