// The client library (engine/client) against a scripted fake server that
// speaks copycat.proto over real loopback TCP: handshakes, leader redirects,
// resending after a lost connection, keep-alives, events, failover, timeouts
// and session expiry. Bounds are generous; nothing depends on tight timing.

#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <QAbstractEventDispatcher>
#include <QCoreApplication>
#include <QDeadlineTimer>
#include <QElapsedTimer>
#include <QTcpServer>
#include <QTcpSocket>
#include <QTest>
#include <QThread>

#include "engine/api/codec.h"
#include "engine/client/client.h"
#include "engine/client/event_loop.h"
#include "engine/kv/map_state_machine.h"
#include "engine/protocol/framing.h"
#include "tests/fake_server.h"

namespace wire = copycat::wire;
using copycat::ErrorCode;
using copycat::Expected;
using copycat::client::Client;
using copycat::client::ConnectionStrategy;
using copycat::client::RecoveryStrategy;
using copycat::kv::GetQuery;
using copycat::kv::PutCommand;
using namespace std::chrono_literals;

namespace {

constexpr int kWaitMs = 30000;

QString codeName(ErrorCode code) { return QString::fromUtf8(copycat::toString(code)); }

/// A scripted Copycat server: accepts client connections, records every
/// frame, answers with sensible defaults unless a test hook handles the
/// frame first.
class FakeServer {
 public:
  using Conn = copycat::testing::ScriptedServer::Connection;
  struct Received {
    int conn = 0;
    wire::Frame frame;
  };
  /// Returns true when it answered (or deliberately ignored) the frame.
  using Hook = std::function<bool(Conn&, const wire::Frame&)>;

  explicit FakeServer(std::string clusterId = {}, std::uint64_t nodeId = 1)
      : m_clusterId(std::move(clusterId)), m_nodeId(nodeId) {
    m_transport.onFrame([this](Conn& conn, const wire::Frame& frame) { handle(conn, frame); });
  }

  QString address() const { return m_transport.address(); }

  std::uint64_t sessionId = 7;
  std::uint64_t sessionTimeoutMs = 30000;
  Hook hook;
  std::vector<Received> received;

  std::vector<wire::Frame> framesOf(wire::Frame::BodyCase body) const {
    std::vector<wire::Frame> out;
    for (const Received& r : received) {
      if (r.frame.body_case() == body) out.push_back(r.frame);
    }
    return out;
  }
  int count(wire::Frame::BodyCase body) const { return static_cast<int>(framesOf(body).size()); }

  void sendFrame(Conn& conn, const wire::Frame& frame) { m_transport.send(conn, frame); }
  /// Connections accepted so far, open or not.
  std::size_t connectionCount() const { return m_transport.connections().size(); }

  void pushEvent(std::uint64_t previous, std::uint64_t index, const std::string& payload,
                 const std::string& name = "ev") {
    Conn* conn = lastOpen();
    QVERIFY(conn);
    wire::Frame frame;
    wire::SessionEvent* event = frame.mutable_session_event();
    event->set_session_id(sessionId);
    event->set_previous_index(previous);
    event->set_event_index(index);
    event->set_name(name);
    event->set_payload(payload);
    sendFrame(*conn, frame);
  }

  Conn* lastOpen() {
    const auto& conns = m_transport.connections();
    for (auto it = conns.rbegin(); it != conns.rend(); ++it) {
      if ((*it)->socket->state() == QAbstractSocket::ConnectedState) return it->get();
    }
    return nullptr;
  }

  void dropAll() {
    for (const auto& conn : m_transport.connections()) conn->socket->abort();
  }

  /// The default answer to `frame`.
  void answer(Conn& conn, const wire::Frame& frame) {
    wire::Frame reply;
    switch (frame.body_case()) {
      case wire::Frame::kRegisterSession: {
        wire::RegisterSessionReply* r = reply.mutable_register_session_reply();
        r->set_request_id(frame.register_session().request_id());
        r->set_status(wire::STATUS_OK);
        r->set_session_id(sessionId);
        r->set_timeout_ms(sessionTimeoutMs);
        r->mutable_leader()->set_node_id(m_nodeId);
        r->mutable_leader()->set_address(address().toStdString());
        wire::Member* member = r->add_members();
        member->set_node_id(m_nodeId);
        member->set_address(address().toStdString());
        member->set_kind(wire::MEMBER_KIND_VOTER);
        break;
      }
      case wire::Frame::kKeepAlive: {
        wire::KeepAliveReply* r = reply.mutable_keep_alive_reply();
        r->set_request_id(frame.keep_alive().request_id());
        r->set_status(frame.keep_alive().session_id() == sessionId ? wire::STATUS_OK
                                                                   : wire::STATUS_SESSION_EXPIRED);
        break;
      }
      case wire::Frame::kCommand: {
        wire::OperationReply* r = reply.mutable_operation_reply();
        r->set_request_id(frame.command().request_id());
        r->set_status(wire::STATUS_OK);
        r->set_index(100 + frame.command().sequence());
        r->set_result(copycat::encodeObject(
            std::optional<std::string>("r" + std::to_string(frame.command().sequence()))));
        break;
      }
      case wire::Frame::kQuery: {
        wire::OperationReply* r = reply.mutable_operation_reply();
        r->set_request_id(frame.query().request_id());
        r->set_status(wire::STATUS_OK);
        r->set_index(frame.query().last_index());
        r->set_result(copycat::encodeObject(std::optional<std::string>("v")));
        break;
      }
      case wire::Frame::kCloseSession: {
        wire::CloseSessionReply* r = reply.mutable_close_session_reply();
        r->set_request_id(frame.close_session().request_id());
        r->set_status(wire::STATUS_OK);
        break;
      }
      case wire::Frame::kStatus: {
        wire::StatusReply* r = reply.mutable_status_reply();
        r->set_request_id(frame.status().request_id());
        r->set_node_id(m_nodeId);
        r->set_address(address().toStdString());
        r->set_role(wire::ROLE_LEADER);
        r->set_term(3);
        r->mutable_leader()->set_node_id(m_nodeId);
        r->set_commit(10);
        r->set_applied(9);
        r->set_last_index(11);
        wire::Member* member = r->add_members();
        member->set_node_id(m_nodeId);
        member->set_address(address().toStdString());
        member->set_kind(wire::MEMBER_KIND_VOTER);
        break;
      }
      case wire::Frame::kJoin:
      case wire::Frame::kLeave: {
        wire::MembershipReply* r = reply.mutable_membership_reply();
        const bool join = frame.body_case() == wire::Frame::kJoin;
        r->set_request_id(join ? frame.join().request_id() : frame.leave().request_id());
        r->set_status(wire::STATUS_OK);
        r->set_index(50);
        r->set_node_id(42);
        wire::Member* member = r->add_members();
        member->set_node_id(42);
        member->set_address(join ? frame.join().address() : frame.leave().address());
        member->set_kind(wire::MEMBER_KIND_LEARNER);
        break;
      }
      default:
        return;
    }
    sendFrame(conn, reply);
  }

 private:
  void handle(Conn& conn, const wire::Frame& frame) {
    received.push_back(Received{conn.id, frame});
    if (frame.body_case() == wire::Frame::kHandshake) {
      wire::Frame reply;
      wire::HandshakeReply* r = reply.mutable_handshake_reply();
      r->set_request_id(frame.handshake().request_id());
      r->set_server_node_id(m_nodeId);
      r->set_protocol_version(copycat::protocol::kProtocolVersion);
      r->set_server_address(address().toStdString());
      const bool accepted = frame.handshake().cluster_id() == m_clusterId;
      r->set_accepted(accepted);
      if (!accepted) {
        r->set_error("wrong cluster id '" + frame.handshake().cluster_id() +
                     "' (this server belongs to '" + m_clusterId + "')");
      }
      sendFrame(conn, reply);
      if (!accepted) conn.socket->disconnectFromHost();
      return;
    }
    if (hook && hook(conn, frame)) return;
    answer(conn, frame);
  }

  copycat::testing::ScriptedServer m_transport;
  std::string m_clusterId;
  std::uint64_t m_nodeId;
};

/// Spins the test thread's event loop (which runs the fake servers) until
/// `done` holds or `ms` pass.
bool waitUntil(const std::function<bool()>& done, int ms = kWaitMs) {
  QDeadlineTimer deadline(ms);
  while (!done()) {
    if (deadline.hasExpired()) return false;
    QTest::qWait(5);
  }
  return true;
}

template <class T>
T await(QFuture<T> future) {
  if (!waitUntil([&] { return future.isFinished(); })) {
    qFatal("a client future did not finish within %d ms", kWaitMs);
  }
  return future.result();
}

Client::Builder builderFor(const QStringList& members) {
  return std::move(
      Client::builder(members)
          .withRegistration(copycat::kv::registerKvOperations)
          .withTimeout(20s)
          .withConnectionStrategy(ConnectionStrategy::exponentialBackoff(20ms, 200ms)));
}

/// An operation no serializer registers.
struct NotRegistered : copycat::Command<int> {
  template <class Archive>
  void serialize(Archive&) {}
};

}  // namespace

class ClientProtocolTest : public QObject {
  Q_OBJECT

 private slots:
  void handshakeAndRegistration() {
    FakeServer server("c1");
    auto client = builderFor({server.address()}).withClusterId("c1").withName("tester").build();
    const Expected<void> connected = await(client->connect());
    QVERIFY2(connected.ok(), connected.ok() ? "" : connected.error().message.c_str());
    QCOMPARE(client->session(), 7u);
    const auto handshakes = server.framesOf(wire::Frame::kHandshake);
    QCOMPARE(handshakes.size(), 1u);
    QCOMPARE(handshakes[0].handshake().kind(), wire::PEER_KIND_CLIENT);
    QCOMPARE(handshakes[0].handshake().protocol_version(), copycat::protocol::kProtocolVersion);
    QCOMPARE(handshakes[0].handshake().cluster_id(), std::string("c1"));
    QCOMPARE(handshakes[0].handshake().name(), std::string("tester"));
    QCOMPARE(server.count(wire::Frame::kRegisterSession), 1);
    // The handshake is the first frame of the connection.
    QCOMPARE(server.received.front().frame.body_case(), wire::Frame::kHandshake);
    // connect() again: the session is open.
    QVERIFY(await(client->connect()).ok());
    QCOMPARE(server.count(wire::Frame::kRegisterSession), 1);
    QVERIFY(await(client->close()).ok());
    QCOMPARE(server.count(wire::Frame::kCloseSession), 1);
    QCOMPARE(server.framesOf(wire::Frame::kCloseSession)[0].close_session().session_id(), 7u);
    const Expected<std::optional<std::string>> after = await(client->submit(PutCommand("k", "v")));
    QVERIFY(!after.ok());
    QCOMPARE(codeName(after.error().code), codeName(ErrorCode::Closed));
  }

  // Clients sharing one event thread work side by side, and one going away
  // leaves the other running on the thread.
  void clientsShareAnEventThread() {
    FakeServer server("c1");
    auto thread = std::make_shared<copycat::client::ClientThread>();
    auto first = builderFor({server.address()}).withClusterId("c1").withEventThread(thread).build();
    auto second =
        builderFor({server.address()}).withClusterId("c1").withEventThread(thread).build();
    QVERIFY(await(first->connect()).ok());
    QVERIFY(await(second->connect()).ok());
    QVERIFY(await(first->submit(PutCommand("a", "1"))).ok());
    QVERIFY(await(second->submit(PutCommand("b", "2"))).ok());
    first.reset();
    thread.reset();
    QVERIFY(await(second->submit(PutCommand("c", "3"))).ok());
    QVERIFY(await(second->close()).ok());
    QCOMPARE(server.count(wire::Frame::kRegisterSession), 2);
    QCOMPARE(server.count(wire::Frame::kCommand), 3);
  }

  // Clients on one event thread reach a server through one connection: each
  // gets its own replies and its own session's events, one leaving does not
  // disturb the other, and a client of another cluster gets its own
  // connection.
  void clientsOnOneThreadShareAConnection() {
    FakeServer server("c1");
    std::uint64_t nextSession = 7;
    server.hook = [&](FakeServer::Conn& conn, const wire::Frame& frame) {
      wire::Frame reply;
      switch (frame.body_case()) {
        case wire::Frame::kRegisterSession:
          server.sessionId = nextSession++;
          server.answer(conn, frame);
          return true;
        case wire::Frame::kKeepAlive: {
          wire::KeepAliveReply* r = reply.mutable_keep_alive_reply();
          r->set_request_id(frame.keep_alive().request_id());
          r->set_status(wire::STATUS_OK);
          break;
        }
        case wire::Frame::kCommand: {
          wire::OperationReply* r = reply.mutable_operation_reply();
          r->set_request_id(frame.command().request_id());
          r->set_status(wire::STATUS_OK);
          r->set_index(100 + frame.command().sequence());
          r->set_result(copycat::encodeObject(
              std::optional<std::string>("s" + std::to_string(frame.command().session_id()) + "-r" +
                                         std::to_string(frame.command().sequence()))));
          break;
        }
        default:
          return false;
      }
      server.sendFrame(conn, reply);
      return true;
    };
    auto thread = std::make_shared<copycat::client::ClientThread>();
    auto first = builderFor({server.address()}).withClusterId("c1").withEventThread(thread).build();
    auto second =
        builderFor({server.address()}).withClusterId("c1").withEventThread(thread).build();
    QVERIFY(await(first->connect()).ok());
    QVERIFY(await(second->connect()).ok());
    QCOMPARE(first->session(), 7u);
    QCOMPARE(second->session(), 8u);
    QCOMPARE(server.count(wire::Frame::kHandshake), 1);

    std::vector<QFuture<Expected<std::optional<std::string>>>> firstResults;
    std::vector<QFuture<Expected<std::optional<std::string>>>> secondResults;
    for (int i = 0; i < 20; ++i) {
      firstResults.push_back(first->submit(PutCommand("a", std::to_string(i))));
      secondResults.push_back(second->submit(PutCommand("b", std::to_string(i))));
    }
    for (int i = 0; i < 20; ++i) {
      const auto a = await(firstResults[static_cast<std::size_t>(i)]);
      const auto b = await(secondResults[static_cast<std::size_t>(i)]);
      QVERIFY(a.ok() && b.ok());
      QCOMPARE(a.value(), std::optional<std::string>("s7-r" + std::to_string(i + 1)));
      QCOMPARE(b.value(), std::optional<std::string>("s8-r" + std::to_string(i + 1)));
    }
    for (const wire::Frame& command : server.framesOf(wire::Frame::kCommand)) {
      QVERIFY(command.command().session_id() == 7 || command.command().session_id() == 8);
    }
    QCOMPARE(server.connectionCount(), 1u);

    std::mutex mutex;
    std::vector<std::string> firstEvents;
    std::vector<std::string> secondEvents;
    first->onEvent("ev", [&](const std::string& payload) {
      std::lock_guard lock(mutex);
      firstEvents.push_back(payload);
    });
    second->onEvent("ev", [&](const std::string& payload) {
      std::lock_guard lock(mutex);
      secondEvents.push_back(payload);
    });
    const auto pushTo = [&](std::uint64_t session, const std::string& payload) {
      wire::Frame frame;
      wire::SessionEvent* event = frame.mutable_session_event();
      event->set_session_id(session);
      event->set_previous_index(0);
      event->set_event_index(1);
      event->set_name("ev");
      event->set_payload(payload);
      server.sendFrame(*server.lastOpen(), frame);
    };
    pushTo(8, "for-second");
    pushTo(7, "for-first");
    QVERIFY(waitUntil([&] {
      std::lock_guard lock(mutex);
      return firstEvents.size() == 1 && secondEvents.size() == 1;
    }));
    {
      std::lock_guard lock(mutex);
      QCOMPARE(firstEvents, std::vector<std::string>{"for-first"});
      QCOMPARE(secondEvents, std::vector<std::string>{"for-second"});
    }

    // Another cluster id: a connection of its own, refused without harm to
    // the shared one.
    auto stranger = builderFor({server.address()})
                        .withClusterId("elsewhere")
                        .withEventThread(thread)
                        .withConnectionStrategy(ConnectionStrategy::once())
                        .build();
    const Expected<void> refused = await(stranger->connect());
    QVERIFY(!refused.ok());
    QVERIFY2(refused.error().message.find("rejected the handshake") != std::string::npos,
             refused.error().message.c_str());
    QCOMPARE(server.connectionCount(), 2u);

    first.reset();
    QCOMPARE(await(second->submit(PutCommand("b", "x"))).value(),
             std::optional<std::string>("s8-r21"));
    QCOMPARE(server.connectionCount(), 2u);
    QCOMPARE(server.count(wire::Frame::kHandshake), 2);

    // The server drops the shared connection: the remaining client
    // reconnects and goes on.
    server.dropAll();
    QCOMPARE(await(second->submit(PutCommand("b", "y"))).value(),
             std::optional<std::string>("s8-r22"));
    QCOMPARE(server.connectionCount(), 3u);
    QVERIFY(await(second->close()).ok());
  }

  void wrongClusterIsRejectedWithAClearError() {
    FakeServer server("right");
    auto client = builderFor({server.address()})
                      .withClusterId("wrong")
                      .withConnectionStrategy(ConnectionStrategy::once())
                      .build();
    const Expected<void> connected = await(client->connect());
    QVERIFY(!connected.ok());
    QCOMPARE(codeName(connected.error().code), codeName(ErrorCode::Unavailable));
    QVERIFY2(connected.error().message.find("wrong cluster id") != std::string::npos,
             connected.error().message.c_str());
    QCOMPARE(server.count(wire::Frame::kRegisterSession), 0);
  }

  void notLeaderRedirectsToTheHint() {
    FakeServer follower({}, 1);
    FakeServer leader({}, 2);
    follower.hook = [&](FakeServer::Conn& conn, const wire::Frame& frame) {
      if (frame.body_case() != wire::Frame::kRegisterSession) return false;
      wire::Frame reply;
      wire::RegisterSessionReply* r = reply.mutable_register_session_reply();
      r->set_request_id(frame.register_session().request_id());
      r->set_status(wire::STATUS_NOT_LEADER);
      r->mutable_leader()->set_node_id(2);
      r->mutable_leader()->set_address(leader.address().toStdString());
      follower.sendFrame(conn, reply);
      return true;
    };
    leader.sessionId = 11;
    auto client = builderFor({follower.address()}).build();
    QVERIFY(await(client->connect()).ok());
    QCOMPARE(client->session(), 11u);
    QCOMPARE(follower.count(wire::Frame::kRegisterSession), 1);
    QCOMPARE(leader.count(wire::Frame::kRegisterSession), 1);
    const auto result = await(client->submit(PutCommand("k", "v")));
    QVERIFY(result.ok());
    QCOMPARE(**result, std::string("r1"));
    QCOMPARE(leader.count(wire::Frame::kCommand), 1);
    QCOMPARE(follower.count(wire::Frame::kCommand), 0);
  }

  void lostConnectionResendsCommandsInOrderWithTheSameSequence() {
    FakeServer server;
    bool answering = false;
    server.hook = [&](FakeServer::Conn&, const wire::Frame& frame) {
      return frame.body_case() == wire::Frame::kCommand && !answering;
    };
    auto client = builderFor({server.address()}).build();
    QVERIFY(await(client->connect()).ok());
    std::vector<QFuture<Expected<std::optional<std::string>>>> futures;
    for (int i = 1; i <= 3; ++i) {
      futures.push_back(client->submit(PutCommand("k" + std::to_string(i), "v")));
    }
    QVERIFY(waitUntil([&] { return server.count(wire::Frame::kCommand) == 3; }));
    const std::size_t before = server.received.size();
    answering = true;
    server.dropAll();
    for (int i = 0; i < 3; ++i) {
      const auto result = await(futures[static_cast<std::size_t>(i)]);
      QVERIFY2(result.ok(), result.ok() ? "" : result.error().message.c_str());
      QCOMPARE(**result, "r" + std::to_string(i + 1));
    }
    std::vector<std::uint64_t> firstRound;
    for (const auto& frame : server.framesOf(wire::Frame::kCommand)) {
      if (firstRound.size() < 3) firstRound.push_back(frame.command().sequence());
    }
    QCOMPARE(firstRound, (std::vector<std::uint64_t>{1, 2, 3}));
    // After the reconnect: handshake, a keep-alive binding the session, then
    // the same commands in sequence order.
    std::vector<wire::Frame::BodyCase> kinds;
    std::vector<std::uint64_t> resent;
    for (std::size_t i = before; i < server.received.size(); ++i) {
      const wire::Frame& frame = server.received[i].frame;
      if (frame.body_case() == wire::Frame::kCommand) {
        resent.push_back(frame.command().sequence());
        QCOMPARE(frame.command().session_id(), 7u);
      }
      if (kinds.size() < 2) kinds.push_back(frame.body_case());
    }
    QCOMPARE(resent, (std::vector<std::uint64_t>{1, 2, 3}));
    QCOMPARE(kinds, (std::vector<wire::Frame::BodyCase>{wire::Frame::kHandshake,
                                                        wire::Frame::kKeepAlive}));
    QCOMPARE(client->lastIndex(), 103u);
  }

  void keepAliveCarriesAcknowledgedSequenceAndEventIndex() {
    FakeServer server;
    server.sessionTimeoutMs = 300;  // keep-alives every 100 ms
    bool holdThird = true;
    server.hook = [&](FakeServer::Conn&, const wire::Frame& frame) {
      return frame.body_case() == wire::Frame::kCommand && frame.command().sequence() == 3 &&
             holdThird;
    };
    auto client = builderFor({server.address()}).build();
    QVERIFY(await(client->connect()).ok());
    QVERIFY(await(client->submit(PutCommand("a", "1"))).ok());
    QVERIFY(await(client->submit(PutCommand("b", "2"))).ok());
    auto third = client->submit(PutCommand("c", "3"));
    server.pushEvent(0, 1, "e1");
    const auto hasKeepAlive = [&](std::uint64_t sequence, std::uint64_t event) {
      for (const auto& frame : server.framesOf(wire::Frame::kKeepAlive)) {
        if (frame.keep_alive().command_sequence() == sequence &&
            frame.keep_alive().event_index() == event && frame.keep_alive().session_id() == 7) {
          return true;
        }
      }
      return false;
    };
    // Command 3 has no result yet: only 1 and 2 are acknowledged.
    QVERIFY(waitUntil([&] { return hasKeepAlive(2, 1); }));
    for (const auto& frame : server.framesOf(wire::Frame::kKeepAlive)) {
      QVERIFY(frame.keep_alive().command_sequence() <= 2);
    }
    holdThird = false;
    server.dropAll();  // the reconnect resends command 3
    QVERIFY(await(third).ok());
    QVERIFY(waitUntil([&] { return hasKeepAlive(3, 1); }));
    // Every command also acknowledges the results its client already has.
    QVERIFY(await(client->submit(PutCommand("d", "4"))).ok());
    for (const auto& frame : server.framesOf(wire::Frame::kCommand)) {
      const std::uint64_t sequence = frame.command().sequence();
      QCOMPARE(frame.command().acknowledged_sequence(), sequence == 4 ? 3u : sequence - 1);
    }
  }

  void queryCarriesSequenceAndLastIndex() {
    FakeServer server;
    auto client = builderFor({server.address()}).build();
    QVERIFY(await(client->submit(PutCommand("a", "1"))).ok());
    QVERIFY(await(client->submit(PutCommand("b", "2"))).ok());
    const auto value = await(client->submit(GetQuery("a"), copycat::Consistency::Sequential));
    QVERIFY(value.ok());
    QCOMPARE(**value, std::string("v"));
    const auto queries = server.framesOf(wire::Frame::kQuery);
    QCOMPARE(queries.size(), 1u);
    QCOMPARE(queries[0].query().sequence(), 2u);
    QCOMPARE(queries[0].query().last_index(), 102u);
    QCOMPARE(queries[0].query().consistency(), wire::CONSISTENCY_SEQUENTIAL);
    QVERIFY(await(client->submit(GetQuery("a"))).ok());
    QCOMPARE(server.framesOf(wire::Frame::kQuery)[1].query().consistency(),
             wire::CONSISTENCY_LINEARIZABLE);
  }

  void sequentialQueriesGoToAFollowerWhenAskedTo() {
    FakeServer leader({}, 1);
    FakeServer follower({}, 2);
    auto client = builderFor({leader.address(), follower.address()})
                      .withServerSelection(copycat::client::ServerSelection::Followers)
                      .build();
    QVERIFY(await(client->submit(PutCommand("a", "1"))).ok());
    QVERIFY(await(client->submit(GetQuery("a"), copycat::Consistency::Sequential)).ok());
    QCOMPARE(follower.count(wire::Frame::kQuery), 1);
    QCOMPARE(leader.count(wire::Frame::kQuery), 0);
    QCOMPARE(follower.framesOf(wire::Frame::kQuery)[0].query().last_index(), 101u);
    // Linearizable reads still go to the leader.
    QVERIFY(await(client->submit(GetQuery("a"))).ok());
    QCOMPARE(leader.count(wire::Frame::kQuery), 1);
  }

  void eventsInOrderDuplicatesDroppedGapsResent() {
    FakeServer server;
    bool gapSent = false;
    bool resent = false;
    server.hook = [&](FakeServer::Conn&, const wire::Frame& frame) {
      if (frame.body_case() == wire::Frame::kKeepAlive && gapSent && !resent &&
          frame.keep_alive().event_index() == 1) {
        resent = true;
        server.answer(*server.lastOpen(), frame);
        server.pushEvent(1, 2, "b");
        server.pushEvent(2, 3, "c");
        return true;
      }
      return false;
    };
    auto client = builderFor({server.address()}).build();
    std::mutex mutex;
    std::vector<std::string> delivered;
    client->onEvent("ev", [&](const std::string& payload) {
      std::lock_guard lock(mutex);
      delivered.push_back(payload);
    });
    client->onEvent("other", [&](const std::string& payload) {
      std::lock_guard lock(mutex);
      delivered.push_back("other:" + payload);
    });
    QVERIFY(await(client->connect()).ok());
    const auto snapshot = [&] {
      std::lock_guard lock(mutex);
      return delivered;
    };
    server.pushEvent(0, 1, "a");
    server.pushEvent(0, 1, "a");  // duplicate
    QVERIFY(waitUntil([&] { return snapshot().size() == 1; }));
    const int keepAlivesBefore = server.count(wire::Frame::kKeepAlive);
    gapSent = true;
    server.pushEvent(2, 3, "c");  // event 2 is missing
    QVERIFY(waitUntil([&] { return snapshot().size() == 3; }));
    QVERIFY(server.count(wire::Frame::kKeepAlive) > keepAlivesBefore);
    QCOMPARE(snapshot(), (std::vector<std::string>{"a", "b", "c"}));
    server.pushEvent(3, 4, "x", "other");
    QVERIFY(waitUntil([&] { return snapshot().size() == 4; }));
    QCOMPARE(snapshot().back(), std::string("other:x"));
  }

  void operationWaitsForItsEvents() {
    FakeServer server;
    server.hook = [&](FakeServer::Conn& conn, const wire::Frame& frame) {
      if (frame.body_case() != wire::Frame::kCommand) return false;
      wire::Frame reply;
      wire::OperationReply* r = reply.mutable_operation_reply();
      r->set_request_id(frame.command().request_id());
      r->set_status(wire::STATUS_OK);
      r->set_index(101);
      r->set_event_index(1);
      r->set_result(copycat::encodeObject(std::optional<std::string>()));
      server.sendFrame(conn, reply);
      return true;
    };
    auto client = builderFor({server.address()}).build();
    std::mutex mutex;
    std::vector<std::string> order;
    client->onEvent("ev", [&](const std::string&) {
      std::lock_guard lock(mutex);
      order.push_back("event");
    });
    QVERIFY(await(client->connect()).ok());
    auto future =
        client->submit(PutCommand("k", "v"))
            .then(QtFuture::Launch::Sync, [&](Expected<std::optional<std::string>> result) {
              std::lock_guard lock(mutex);
              order.push_back("result");
              return result;
            });
    QVERIFY(waitUntil([&] { return server.count(wire::Frame::kCommand) == 1; }));
    QTest::qWait(300);
    QVERIFY(!future.isFinished());
    server.pushEvent(0, 1, "published");
    QVERIFY(await(future).ok());
    std::lock_guard lock(mutex);
    QCOMPARE(order, (std::vector<std::string>{"event", "result"}));
  }

  void garbageFrameFailsOverToAnotherMember() {
    FakeServer bad({}, 1);
    FakeServer good({}, 2);
    good.sessionId = 9;
    bad.hook = [&](FakeServer::Conn& conn, const wire::Frame&) {
      conn.socket->write(QByteArray("\x00\x00\x00\x00garbage", 11));  // a zero length is invalid
      return true;
    };
    auto client = builderFor({bad.address(), good.address()}).build();
    const Expected<void> connected = await(client->connect());
    QVERIFY2(connected.ok(), connected.ok() ? "" : connected.error().message.c_str());
    QCOMPARE(client->session(), 9u);
    QVERIFY(bad.count(wire::Frame::kRegisterSession) >= 1);
    // The client told the bad server why before closing.
    QVERIFY(waitUntil([&] { return bad.count(wire::Frame::kError) >= 1; }));
    QCOMPARE(bad.framesOf(wire::Frame::kError)[0].error().code(), wire::ERROR_CODE_MALFORMED_FRAME);
  }

  void unregisteredTypeFailsWithoutARequest() {
    FakeServer server;
    auto client = builderFor({server.address()}).build();
    QVERIFY(await(client->connect()).ok());
    const auto typed = await(client->submit(NotRegistered{}));
    QVERIFY(!typed.ok());
    QCOMPARE(codeName(typed.error().code), codeName(ErrorCode::UnknownOperation));
    const auto raw = await(client->submit(999, std::string("x")));
    QVERIFY(!raw.ok());
    QCOMPARE(codeName(raw.error().code), codeName(ErrorCode::UnknownOperation));
    QVERIFY(await(client->submit(PutCommand("k", "v"))).ok());
    QCOMPARE(server.count(wire::Frame::kCommand), 1);
  }

  void applicationErrorsAreReported() {
    FakeServer server;
    server.hook = [&](FakeServer::Conn& conn, const wire::Frame& frame) {
      if (frame.body_case() != wire::Frame::kCommand) return false;
      wire::Frame reply;
      wire::OperationReply* r = reply.mutable_operation_reply();
      r->set_request_id(frame.command().request_id());
      r->set_status(frame.command().sequence() == 1 ? wire::STATUS_APPLICATION_ERROR
                                                    : wire::STATUS_BAD_REQUEST);
      r->set_error("boom");
      server.sendFrame(conn, reply);
      return true;
    };
    auto client = builderFor({server.address()}).build();
    const auto first = await(client->submit(PutCommand("k", "v")));
    QVERIFY(!first.ok());
    QCOMPARE(codeName(first.error().code), codeName(ErrorCode::ApplicationError));
    QCOMPARE(first.error().message, std::string("boom"));
    const auto second = await(client->submit(PutCommand("k", "v")));
    QVERIFY(!second.ok());
    QCOMPARE(codeName(second.error().code), codeName(ErrorCode::MalformedOperation));
  }

  void timeoutGivesUnavailable() {
    FakeServer server;
    server.hook = [&](FakeServer::Conn&, const wire::Frame& frame) {
      return frame.body_case() == wire::Frame::kCommand;  // never answered
    };
    auto client = builderFor({server.address()}).withTimeout(500ms).build();
    QVERIFY(await(client->connect()).ok());
    const auto result = await(client->submit(PutCommand("k", "v")));
    QVERIFY(!result.ok());
    QCOMPARE(codeName(result.error().code), codeName(ErrorCode::Unavailable));

    // Each operation gets its own deadline, never earlier; queries too; an
    // answered query is not failed later.
    QVERIFY(await(client->submit(GetQuery("k"))).ok());
    QElapsedTimer clock;
    clock.start();
    auto first = client->submit(PutCommand("a", "1"));
    QTest::qWait(200);
    auto second = client->submit(PutCommand("b", "2"));
    const qint64 secondSent = clock.elapsed();
    auto answered = client->submit(GetQuery("k"));
    const auto firstResult = await(first);
    const qint64 firstDone = clock.elapsed();
    QVERIFY(!second.isFinished());
    const auto secondResult = await(second);
    const qint64 secondDone = clock.elapsed();
    QCOMPARE(codeName(firstResult.error().code), codeName(ErrorCode::Unavailable));
    QCOMPARE(codeName(secondResult.error().code), codeName(ErrorCode::Unavailable));
    QVERIFY2(firstDone >= 500, qPrintable(QString::number(firstDone)));
    QVERIFY2(secondDone - secondSent >= 500, qPrintable(QString::number(secondDone - secondSent)));
    QVERIFY(await(answered).ok());

    server.hook = [&](FakeServer::Conn&, const wire::Frame& frame) {
      return frame.body_case() == wire::Frame::kQuery;  // never answered
    };
    const auto query = await(client->submit(GetQuery("k")));
    QVERIFY(!query.ok());
    QCOMPARE(codeName(query.error().code), codeName(ErrorCode::Unavailable));
    QVERIFY2(query.error().message.find("no result for the query") != std::string::npos,
             query.error().message.c_str());
  }

  void unreachableClusterGivesUnavailable() {
    QTcpServer probe;
    QVERIFY(probe.listen(QHostAddress::LocalHost, 0));
    const QString address = QStringLiteral("127.0.0.1:%1").arg(probe.serverPort());
    probe.close();
    auto client = builderFor({address}).withTimeout(300ms).build();
    const Expected<void> connected = await(client->connect());
    QVERIFY(!connected.ok());
    QCOMPARE(codeName(connected.error().code), codeName(ErrorCode::Unavailable));
    const auto status = await(client->status(address));
    QVERIFY(!status.ok());
    QCOMPARE(codeName(status.error().code), codeName(ErrorCode::Unavailable));
  }

  void sessionExpiredWithClose() {
    FakeServer server;
    server.sessionTimeoutMs = 300;
    bool expired = false;
    server.hook = [&](FakeServer::Conn& conn, const wire::Frame& frame) {
      if (frame.body_case() == wire::Frame::kCommand) return true;  // held
      if (frame.body_case() == wire::Frame::kKeepAlive && expired) {
        wire::Frame reply;
        reply.mutable_keep_alive_reply()->set_request_id(frame.keep_alive().request_id());
        reply.mutable_keep_alive_reply()->set_status(wire::STATUS_SESSION_EXPIRED);
        server.sendFrame(conn, reply);
        return true;
      }
      return false;
    };
    auto client =
        builderFor({server.address()}).withRecoveryStrategy(RecoveryStrategy::Close).build();
    QVERIFY(await(client->connect()).ok());
    auto pending = client->submit(PutCommand("k", "v"));
    QVERIFY(waitUntil([&] { return server.count(wire::Frame::kCommand) == 1; }));
    expired = true;
    const auto result = await(pending);
    QVERIFY(!result.ok());
    QCOMPARE(codeName(result.error().code), codeName(ErrorCode::SessionExpired));
    const auto later = await(client->submit(PutCommand("k", "v")));
    QVERIFY(!later.ok());
    QCOMPARE(codeName(later.error().code), codeName(ErrorCode::SessionExpired));
    QCOMPARE(server.count(wire::Frame::kRegisterSession), 1);
  }

  void sessionExpiredWithRecover() {
    FakeServer server;
    server.sessionTimeoutMs = 300;
    bool expired = false;
    server.hook = [&](FakeServer::Conn& conn, const wire::Frame& frame) {
      if (frame.body_case() == wire::Frame::kCommand && frame.command().session_id() == 7) {
        return true;  // held
      }
      if (frame.body_case() == wire::Frame::kKeepAlive && expired &&
          frame.keep_alive().session_id() == 7) {
        wire::Frame reply;
        reply.mutable_keep_alive_reply()->set_request_id(frame.keep_alive().request_id());
        reply.mutable_keep_alive_reply()->set_status(wire::STATUS_SESSION_EXPIRED);
        server.sessionId = 8;  // the next registration gets session 8
        server.sendFrame(conn, reply);
        return true;
      }
      return false;
    };
    auto client =
        builderFor({server.address()}).withRecoveryStrategy(RecoveryStrategy::Recover).build();
    QVERIFY(await(client->connect()).ok());
    auto pending = client->submit(PutCommand("k", "v"));
    QVERIFY(waitUntil([&] { return server.count(wire::Frame::kCommand) == 1; }));
    expired = true;
    const auto result = await(pending);
    QVERIFY(!result.ok());
    QCOMPARE(codeName(result.error().code), codeName(ErrorCode::SessionExpired));
    QVERIFY(waitUntil([&] { return client->session() == 8; }));
    QCOMPARE(server.count(wire::Frame::kRegisterSession), 2);
    const auto later = await(client->submit(PutCommand("k2", "v2")));
    QVERIFY2(later.ok(), later.ok() ? "" : later.error().message.c_str());
    const auto commands = server.framesOf(wire::Frame::kCommand);
    QCOMPARE(commands.back().command().session_id(), 8u);
    QCOMPARE(commands.back().command().sequence(), 1u);
  }

  void administration() {
    FakeServer follower({}, 1);
    FakeServer leader({}, 2);
    follower.hook = [&](FakeServer::Conn& conn, const wire::Frame& frame) {
      if (frame.body_case() != wire::Frame::kJoin) return false;
      wire::Frame reply;
      wire::MembershipReply* r = reply.mutable_membership_reply();
      r->set_request_id(frame.join().request_id());
      r->set_status(wire::STATUS_NOT_LEADER);
      r->mutable_leader()->set_node_id(2);
      r->mutable_leader()->set_address(leader.address().toStdString());
      follower.sendFrame(conn, reply);
      return true;
    };
    auto client = builderFor({follower.address()}).build();
    const auto status = await(client->status(follower.address()));
    QVERIFY(status.ok());
    QCOMPARE(status->id, 1u);
    QCOMPARE(status->role, QStringLiteral("leader"));
    QCOMPARE(status->commit, 10u);
    QCOMPARE(status->members.size(), 1u);
    const auto joined = await(client->join(QStringLiteral("127.0.0.1:6000")));
    QVERIFY2(joined.ok(), joined.ok() ? "" : joined.error().message.c_str());
    QCOMPARE(joined->nodeId, 42u);
    QCOMPARE(joined->members.size(), 1u);
    QVERIFY(!joined->members[0].voter);
    QCOMPARE(leader.count(wire::Frame::kJoin), 1);
    QCOMPARE(leader.framesOf(wire::Frame::kJoin)[0].join().address(),
             std::string("127.0.0.1:6000"));
    QCOMPARE(leader.framesOf(wire::Frame::kJoin)[0].join().node_id(), 0u);
    const auto all = await(client->statusAll());
    QVERIFY(all.ok());
    QCOMPARE(all->size(), 1u);
    QCOMPARE(all->at(0).address, follower.address());
    const auto bad = await(client->join(QStringLiteral("not an address")));
    QVERIFY(!bad.ok());
  }

  // Runs last: it changes the environment of the threads started after it.
  void fastEventLoopIsUsedByLaterThreadsUnlessTheUserChose() {
    const QByteArray savedNoGlib = qgetenv("QT_NO_GLIB");
    const bool hadNoGlib = qEnvironmentVariableIsSet("QT_NO_GLIB");
    qputenv("QT_NO_GLIB", QByteArray());
    copycat::useFastEventLoop();
    QVERIFY(qEnvironmentVariableIsSet("QT_NO_GLIB"));
    QVERIFY(qEnvironmentVariableIsEmpty("QT_NO_GLIB"));  // an explicit choice of GLib stands

    qunsetenv("QT_NO_GLIB");
    qunsetenv("QT_NO_THREADED_GLIB");
    copycat::useFastEventLoop();
    QCOMPARE(qgetenv("QT_NO_GLIB"), QByteArray("1"));
    QByteArray dispatcher;
    std::unique_ptr<QThread> thread(QThread::create([&dispatcher] {
      dispatcher = QThread::currentThread()->eventDispatcher()->metaObject()->className();
    }));
    thread->start();
    QVERIFY(thread->wait(10000));
    QCOMPARE(dispatcher, QByteArray("QEventDispatcherUNIX"));

    if (hadNoGlib) {
      qputenv("QT_NO_GLIB", savedNoGlib);
    } else {
      qunsetenv("QT_NO_GLIB");
    }
  }
};

QTEST_GUILESS_MAIN(ClientProtocolTest)
#include "client_protocol_test.moc"
