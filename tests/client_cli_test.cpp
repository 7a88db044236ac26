// The `copycat` command line: usage errors exit 2 with text on stderr, an
// unreachable cluster exits 3 once the timeout passed, and --connect-to picks
// the server that answers sequential gets (checked against two scripted fake
// servers, a leader and a follower, that answer queries with their own
// name). The binary is run as a separate process; the test's event loop
// runs the fake servers meanwhile.

#include <algorithm>
#include <optional>
#include <string>
#include <vector>

#include <QDeadlineTimer>
#include <QJsonDocument>
#include <QJsonObject>
#include <QProcess>
#include <QTcpServer>
#include <QTest>

#include "engine/api/codec.h"
#include "engine/protocol/framing.h"
#include "tests/fake_server.h"

namespace {

namespace wire = copycat::wire;

struct Run {
  int exitCode = -1;
  QByteArray out;
  QByteArray err;
};

/// Runs the CLI to its end, spinning this thread's event loop meanwhile (the
/// fake servers live on it).
Run runCli(const QStringList& arguments, const QByteArray& input = {}) {
  QProcess process;
  process.start(QStringLiteral(COPYCAT_CLI_PATH), arguments);
  if (!process.waitForStarted(30000)) return {};
  if (!input.isEmpty()) process.write(input);
  process.closeWriteChannel();
  const QDeadlineTimer deadline(60000);
  while (process.state() != QProcess::NotRunning && !deadline.hasExpired()) QTest::qWait(5);
  if (process.state() != QProcess::NotRunning) {
    process.kill();
    process.waitForFinished();
    return {};
  }
  Run run;
  run.exitCode = process.exitStatus() == QProcess::NormalExit ? process.exitCode() : -1;
  run.out = process.readAllStandardOutput();
  run.err = process.readAllStandardError();
  return run;
}

/// An address where nothing listens.
QString closedAddress() {
  QTcpServer probe;
  if (!probe.listen(QHostAddress::LocalHost, 0)) return {};
  const QString address = QStringLiteral("127.0.0.1:%1").arg(probe.serverPort());
  probe.close();
  return address;
}

/// A scripted Copycat server for the CLI: the leader opens sessions and
/// answers everything; a follower refuses session traffic with NOT_LEADER
/// (naming the leader) and answers queries. Each answers a query with its
/// own name as the value, so the CLI's output tells who answered.
class FakeServer {
 public:
  FakeServer(std::string name, std::uint64_t nodeId) : m_name(std::move(name)), m_nodeId(nodeId) {
    m_transport.onAccept([this](Conn&) { ++connections; });
    m_transport.onFrame([this](Conn& conn, const wire::Frame& frame) { answer(conn, frame); });
  }

  QString address() const { return m_transport.address(); }

  /// The leader and the members every reply names.
  FakeServer* leader = nullptr;
  std::vector<FakeServer*> members;
  int connections = 0;
  int queries = 0;

 private:
  using Conn = copycat::testing::ScriptedServer::Connection;

  bool isLeader() const { return leader == this; }

  void fillLeader(wire::LeaderHint* hint) const {
    if (!leader) return;
    hint->set_node_id(leader->m_nodeId);
    hint->set_address(leader->address().toStdString());
  }

  template <class Reply>
  void fillMembers(Reply* reply) const {
    for (const FakeServer* member : members) {
      wire::Member* m = reply->add_members();
      m->set_node_id(member->m_nodeId);
      m->set_address(member->address().toStdString());
      m->set_kind(wire::MEMBER_KIND_VOTER);
    }
  }

  void answer(Conn& conn, const wire::Frame& frame) {
    wire::Frame reply;
    switch (frame.body_case()) {
      case wire::Frame::kHandshake: {
        wire::HandshakeReply* r = reply.mutable_handshake_reply();
        r->set_request_id(frame.handshake().request_id());
        r->set_accepted(true);
        r->set_server_node_id(m_nodeId);
        r->set_protocol_version(copycat::protocol::kProtocolVersion);
        r->set_server_address(address().toStdString());
        break;
      }
      case wire::Frame::kRegisterSession: {
        wire::RegisterSessionReply* r = reply.mutable_register_session_reply();
        r->set_request_id(frame.register_session().request_id());
        fillLeader(r->mutable_leader());
        fillMembers(r);
        if (isLeader()) {
          r->set_status(wire::STATUS_OK);
          r->set_session_id(5);
          r->set_timeout_ms(30000);
        } else {
          r->set_status(wire::STATUS_NOT_LEADER);
        }
        break;
      }
      case wire::Frame::kKeepAlive: {
        wire::KeepAliveReply* r = reply.mutable_keep_alive_reply();
        r->set_request_id(frame.keep_alive().request_id());
        r->set_status(isLeader() ? wire::STATUS_OK : wire::STATUS_NOT_LEADER);
        fillLeader(r->mutable_leader());
        fillMembers(r);
        break;
      }
      case wire::Frame::kQuery: {
        ++queries;
        wire::OperationReply* r = reply.mutable_operation_reply();
        r->set_request_id(frame.query().request_id());
        r->set_status(wire::STATUS_OK);
        r->set_index(std::max<std::uint64_t>(frame.query().last_index(), 5));
        r->set_result(copycat::encodeObject(std::optional<std::string>(m_name)));
        fillLeader(r->mutable_leader());
        break;
      }
      case wire::Frame::kCloseSession: {
        wire::CloseSessionReply* r = reply.mutable_close_session_reply();
        r->set_request_id(frame.close_session().request_id());
        r->set_status(isLeader() ? wire::STATUS_OK : wire::STATUS_NOT_LEADER);
        fillLeader(r->mutable_leader());
        break;
      }
      default:
        return;
    }
    m_transport.send(conn, reply);
  }

  std::string m_name;
  std::uint64_t m_nodeId;
  copycat::testing::ScriptedServer m_transport;
};

/// A fake two-member cluster: `leader` and `follower`.
struct FakeCluster {
  FakeServer leader{"from-leader", 1};
  FakeServer follower{"from-follower", 2};

  FakeCluster() {
    for (FakeServer* server : {&leader, &follower}) {
      server->leader = &leader;
      server->members = {&leader, &follower};
    }
  }

  /// --cluster with the follower first: the client meets it first.
  QString clusterOption() const {
    return QStringLiteral("--cluster=%1,%2").arg(follower.address(), leader.address());
  }
};

QJsonObject jsonLine(const QByteArray& line) {
  return QJsonDocument::fromJson(line.trimmed()).object();
}

}  // namespace

class ClientCliTest : public QObject {
  Q_OBJECT

 private slots:
  void usageErrorsExitTwo_data() {
    QTest::addColumn<QStringList>("arguments");
    const QString cluster = QStringLiteral("--cluster=127.0.0.1:5001");
    QTest::newRow("no arguments") << QStringList{};
    QTest::newRow("no command") << QStringList{cluster};
    QTest::newRow("unknown command") << QStringList{cluster, QStringLiteral("frobnicate")};
    QTest::newRow("put without value")
        << QStringList{cluster, QStringLiteral("put"), QStringLiteral("k")};
    QTest::newRow("get with extra arguments")
        << QStringList{cluster, QStringLiteral("get"), QStringLiteral("k"),
                       QStringLiteral("sequential"), QStringLiteral("more")};
    QTest::newRow("cas without new value")
        << QStringList{cluster, QStringLiteral("cas"), QStringLiteral("k"), QStringLiteral("a")};
    QTest::newRow("invalid address") << QStringList{QStringLiteral("--cluster=nowhere"),
                                                    QStringLiteral("get"), QStringLiteral("k")};
    QTest::newRow("invalid port") << QStringList{QStringLiteral("--cluster=127.0.0.1:99999"),
                                                 QStringLiteral("get"), QStringLiteral("k")};
    QTest::newRow("missing cluster") << QStringList{QStringLiteral("get"), QStringLiteral("k")};
    QTest::newRow("bad timeout") << QStringList{cluster, QStringLiteral("--timeout-ms"),
                                                QStringLiteral("abc"), QStringLiteral("get"),
                                                QStringLiteral("k")};
    QTest::newRow("negative timeout") << QStringList{cluster, QStringLiteral("--timeout-ms=-5"),
                                                     QStringLiteral("get"), QStringLiteral("k")};
    QTest::newRow("bad consistency option")
        << QStringList{cluster, QStringLiteral("get"), QStringLiteral("k"),
                       QStringLiteral("--consistency"), QStringLiteral("eventual")};
    QTest::newRow("bad consistency word") << QStringList{
        cluster, QStringLiteral("get"), QStringLiteral("k"), QStringLiteral("eventual")};
    QTest::newRow("join invalid address")
        << QStringList{cluster, QStringLiteral("join"), QStringLiteral("host")};
    QTest::newRow("unknown option")
        << QStringList{cluster, QStringLiteral("--frob"), QStringLiteral("status")};
    QTest::newRow("bad connect-to")
        << QStringList{cluster, QStringLiteral("--connect-to"), QStringLiteral("follower"),
                       QStringLiteral("get"), QStringLiteral("k")};
    QTest::newRow("connect-to with put")
        << QStringList{cluster, QStringLiteral("--connect-to=followers"), QStringLiteral("put"),
                       QStringLiteral("k"), QStringLiteral("v")};
    QTest::newRow("connect-to with status")
        << QStringList{cluster, QStringLiteral("--connect-to=leader"), QStringLiteral("status")};
  }

  void usageErrorsExitTwo() {
    QFETCH(QStringList, arguments);
    const Run run = runCli(arguments);
    QCOMPARE(run.exitCode, 2);
    QVERIFY2(!run.err.trimmed().isEmpty(), "no error text on stderr");
    QVERIFY(run.out.isEmpty());
  }

  void helpExitsZero() {
    const Run run = runCli({QStringLiteral("--help")});
    QCOMPARE(run.exitCode, 0);
    QVERIFY(run.out.contains("shell"));
    QVERIFY(run.out.contains("--connect-to"));
  }

  // A bad --connect-to value is a usage error (exit 2, the accepted values
  // named) found before anything is sent: the cluster sees no connection.
  void connectToBadValueSendsNothing_data() {
    QTest::addColumn<QStringList>("arguments");
    QTest::newRow("get") << QStringList{
        QStringLiteral("--connect-to"),  QStringLiteral("nowhere"),
        QStringLiteral("get"),           QStringLiteral("k"),
        QStringLiteral("--consistency"), QStringLiteral("sequential")};
    QTest::newRow("case matters") << QStringList{QStringLiteral("--connect-to=Followers"),
                                                 QStringLiteral("get"), QStringLiteral("k")};
    QTest::newRow("empty") << QStringList{QStringLiteral("--connect-to="), QStringLiteral("get"),
                                          QStringLiteral("k")};
    QTest::newRow("shell") << QStringList{QStringLiteral("--connect-to=nowhere"),
                                          QStringLiteral("shell")};
  }

  void connectToBadValueSendsNothing() {
    QFETCH(QStringList, arguments);
    FakeCluster cluster;
    const Run run = runCli(QStringList{cluster.clusterOption()} + arguments, "get k\n");
    QCOMPARE(run.exitCode, 2);
    QVERIFY2(run.err.contains("bad --connect-to '"), run.err.constData());
    QVERIFY2(run.err.contains("(leader, any or followers)"), run.err.constData());
    QVERIFY(run.out.isEmpty());
    QTest::qWait(50);  // a connection attempt would have been accepted by now
    QCOMPARE(cluster.leader.connections + cluster.follower.connections, 0);
  }

  // `--connect-to followers get K --consistency sequential` is answered by a
  // follower; the default and `leader` by the leader, whose address the
  // client only learns from the follower's NOT_LEADER. Linearizable gets go
  // to the leader whatever --connect-to says.
  void connectToPicksTheAnsweringServer_data() {
    QTest::addColumn<QStringList>("options");
    QTest::addColumn<QString>("answeredBy");
    QTest::addColumn<QString>("connectTo");
    const QStringList sequential{QStringLiteral("--consistency"), QStringLiteral("sequential")};
    QTest::newRow("followers") << QStringList{QStringLiteral("--connect-to"),
                                              QStringLiteral("followers")} +
                                      sequential
                               << QStringLiteral("from-follower") << QStringLiteral("followers");
    QTest::newRow("default (any)") << sequential << QStringLiteral("from-leader") << QString();
    QTest::newRow("any") << QStringList{QStringLiteral("--connect-to=any")} + sequential
                         << QStringLiteral("from-leader") << QStringLiteral("any");
    QTest::newRow("leader") << QStringList{QStringLiteral("--connect-to=leader")} + sequential
                            << QStringLiteral("from-leader") << QStringLiteral("leader");
    QTest::newRow("followers, linearizable")
        << QStringList{QStringLiteral("--connect-to=followers"), QStringLiteral("--consistency"),
                       QStringLiteral("linearizable")}
        << QStringLiteral("from-leader") << QStringLiteral("followers");
  }

  void connectToPicksTheAnsweringServer() {
    QFETCH(QStringList, options);
    QFETCH(QString, answeredBy);
    QFETCH(QString, connectTo);
    FakeCluster cluster;
    const Run run =
        runCli(QStringList{cluster.clusterOption(), QStringLiteral("--timeout-ms=10000"),
                           QStringLiteral("get"), QStringLiteral("k")} +
               options);
    QVERIFY2(run.exitCode == 0, run.err.constData());
    const QJsonObject answer = jsonLine(run.out);
    QCOMPARE(answer.value(QStringLiteral("ok")).toBool(), true);
    QCOMPARE(answer.value(QStringLiteral("result")).toString(), answeredBy);
    QCOMPARE(answer.value(QStringLiteral("connect_to")).toString(), connectTo);
    FakeServer& answering =
        answeredBy == QLatin1String("from-leader") ? cluster.leader : cluster.follower;
    FakeServer& other = &answering == &cluster.leader ? cluster.follower : cluster.leader;
    QCOMPARE(answering.queries, 1);
    QCOMPARE(other.queries, 0);
  }

  // In the shell --connect-to is given before `shell` and holds for the
  // session; a line may repeat it, not change it, and a bad value on a line
  // gets the command line's message.
  void shellConnectTo() {
    FakeCluster cluster;
    const Run run = runCli({cluster.clusterOption(), QStringLiteral("--connect-to"),
                            QStringLiteral("followers"), QStringLiteral("shell")},
                           "get k --consistency sequential\n"
                           "get k --consistency=sequential --connect-to=followers\n"
                           "get k --consistency sequential --connect-to leader\n"
                           "get k --connect-to nowhere\n"
                           "put k v --connect-to followers\n"
                           "get k --consistency linearizable\n");
    QVERIFY2(run.exitCode == 0, run.err.constData());
    const QList<QByteArray> lines = run.out.trimmed().split('\n');
    QCOMPARE(lines.size(), 6);
    QCOMPARE(jsonLine(lines[0]).value(QStringLiteral("result")).toString(),
             QStringLiteral("from-follower"));
    QCOMPARE(jsonLine(lines[0]).value(QStringLiteral("connect_to")).toString(),
             QStringLiteral("followers"));
    QCOMPARE(jsonLine(lines[1]).value(QStringLiteral("result")).toString(),
             QStringLiteral("from-follower"));
    for (int i : {2, 3, 4}) {
      QCOMPARE(jsonLine(lines[i]).value(QStringLiteral("ok")).toBool(true), false);
    }
    QVERIFY(jsonLine(lines[2])
                .value(QStringLiteral("error"))
                .toString()
                .contains(QLatin1String("whole shell session")));
    QCOMPARE(jsonLine(lines[3]).value(QStringLiteral("error")).toString(),
             QStringLiteral("bad --connect-to 'nowhere' (leader, any or followers)"));
    QCOMPARE(jsonLine(lines[4]).value(QStringLiteral("error")).toString(),
             QStringLiteral("--connect-to applies to get only"));
    QCOMPARE(jsonLine(lines[5]).value(QStringLiteral("result")).toString(),
             QStringLiteral("from-leader"));
    QCOMPARE(cluster.follower.queries, 2);
    QCOMPARE(cluster.leader.queries, 1);
  }

  void unreachableClusterExitsThree_data() {
    QTest::addColumn<QStringList>("command");
    QTest::newRow("get") << QStringList{QStringLiteral("get"), QStringLiteral("k")};
    QTest::newRow("put") << QStringList{QStringLiteral("put"), QStringLiteral("k"),
                                        QStringLiteral("v")};
    QTest::newRow("status") << QStringList{QStringLiteral("status")};
    QTest::newRow("shell") << QStringList{QStringLiteral("shell")};
  }

  void unreachableClusterExitsThree() {
    QFETCH(QStringList, command);
    const QString address = closedAddress();
    QVERIFY(!address.isEmpty());
    const Run run = runCli(QStringList{QStringLiteral("--cluster"), address,
                                       QStringLiteral("--timeout-ms"), QStringLiteral("300")} +
                               command,
                           "get k\n");
    QCOMPARE(run.exitCode, 3);
    QVERIFY(!run.err.trimmed().isEmpty());
  }
};

QTEST_GUILESS_MAIN(ClientCliTest)
#include "client_cli_test.moc"
