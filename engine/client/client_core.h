#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <QObject>
#include <QPromise>
#include <QString>
#include <QStringList>

#include "engine/client/client.h"
#include "engine/client/shared_connection.h"
#include "engine/protocol/framing.h"

class QTimer;

namespace copycat::client {

template <class T>
using PromisePtr = std::shared_ptr<QPromise<T>>;

/// The settings a Client::Builder collected, as the core uses them.
struct ClientOptions {
  QStringList members;
  ConnectionStrategy connection;
  RecoveryStrategy recovery = RecoveryStrategy::Recover;
  ServerSelection selection = ServerSelection::Any;
  std::chrono::milliseconds sessionTimeout{0};
  std::chrono::milliseconds timeout{10000};
  std::string clusterId;
  QString name;
};

/// Everything of a Client that runs on the client's thread: connections,
/// leader discovery, the session, command sequencing and resending, queries,
/// events and administration requests. Every method except the thread-safe
/// ones noted below must be called on the core's thread (Client posts them).
class ClientCore : public QObject, private SharedConnection::User {
  Q_OBJECT

 public:
  using OpResult = Expected<Indexed<std::string>>;

  explicit ClientCore(ClientOptions options, QObject* parent = nullptr);
  ~ClientCore() override;

  void connectSession(PromisePtr<Expected<void>> promise);
  void closeSession(PromisePtr<Expected<void>> promise);
  void submit(TypeId typeId, std::string bytes, OperationKind kind, Consistency consistency,
              PromisePtr<OpResult> promise);
  void status(QString address, PromisePtr<Expected<ServerStatus>> promise);
  void statusAll(PromisePtr<Expected<std::vector<ServerStatus>>> promise);
  void membership(MembershipChange change, QString address,
                  PromisePtr<Expected<MembershipResult>> promise);
  /// Fails everything pending with Closed and drops every connection.
  void shutdown();

  /// Thread-safe.
  void addEventHandler(std::string name, Client::EventHandler handler);
  SessionId session() const { return m_sessionId.load(); }
  Index lastIndex() const { return m_lastIndex.load(); }

 private:
  using Connection = SharedConnection;
  using ReplyHandler = SharedConnection::ReplyHandler;
  using Clock = std::chrono::steady_clock;

  enum class SessionState : std::uint8_t { None, Registering, Open, Expired, Closing, Closed };

  struct Command {
    std::uint64_t sequence = 0;
    TypeId typeId = 0;
    std::string payload;
    PromisePtr<OpResult> promise;  // null once its caller gave up (timeout)
    std::uint64_t sentGeneration = 0;
    Clock::time_point sentAt;
    Clock::time_point deadline;
  };
  struct Query {
    TypeId typeId = 0;
    std::string payload;
    Consistency consistency = Consistency::Linearizable;
    PromisePtr<OpResult> promise;
    std::uint64_t sentConnection = 0;  // 0: not sent (or to be sent again)
    bool retryLater = false;
    Clock::time_point sentAt;
    Clock::time_point deadline;
  };
  struct Held {
    PromisePtr<OpResult> promise;
    OpResult result;
    Index eventIndex = 0;
  };
  struct MembershipOp {
    MembershipChange change = MembershipChange::Join;
    QString address;
    PromisePtr<Expected<MembershipResult>> promise;
    std::uint64_t sentConnection = 0;
    bool retryLater = false;
  };
  using StatusCallback = std::function<void(Expected<ServerStatus>)>;
  /// One status() request: attempts on one address until it answers, the
  /// strategy gives up or the deadline passes; the callback runs once.
  struct StatusAttempt {
    QString address;
    Clock::time_point deadline;
    bool retry = true;
    int round = 0;
    bool done = false;
    QString lastError;
    StatusCallback callback;
  };

  // Connections.
  Connection* connectionTo(const QString& address);
  Connection* findConnection(std::uint64_t id) const;
  void connectionOpened(SharedConnection& connection) override;
  void connectionClosed(SharedConnection& connection, const QString& error) override;
  void sessionEvent(const wire::SessionEvent& event) override;
  /// Stops tracking `connection` (the leader channel fails over when it was
  /// the leader's).
  void forgetConnection(Connection* connection, const QString& error);
  /// This client stops using `connection`; its requests on it fail.
  void closeConnection(Connection* connection, const QString& error);
  void send(Connection* connection, wire::Frame& frame, ReplyHandler handler);

  // Leader discovery.
  bool needLeader() const;
  Connection* leaderConnection() const;
  void ensureLeaderConnection();
  void leaderFailed(const QString& error, const wire::LeaderHint* hint);
  void leaderSucceeded();
  /// The address of a connection ("" when it is gone).
  QString addressOf(std::uint64_t connectionId) const;
  /// "ADDRESS answered STATUS ERROR", for a reply on `connectionId`.
  QString describeAnswer(std::uint64_t connectionId, wire::Status status,
                         const std::string& error) const;
  /// A leader-bound request was refused: fail over when the refusal came
  /// from the connection believed to reach the leader.
  void leaderRefused(std::uint64_t connectionId, wire::Status status, const std::string& error,
                     const wire::LeaderHint& hint);
  void giveUp();
  QString nextMember();
  void learnMembers(const google::protobuf::RepeatedPtrField<wire::Member>& members);
  void learnLeader(const wire::LeaderHint& hint);
  void addMember(const QString& address);

  // The work loop.
  void schedulePump(int delayMs = 0);
  void pump();
  void sendRegistration(Connection* connection);
  void sendKeepAlive(Connection* connection, bool binding);
  void sendCommand(Connection* connection, std::uint64_t sequence);
  void sendQuery(Connection* connection, std::uint64_t id);
  void sendMembership(Connection* connection, std::uint64_t id);
  void sendClose(Connection* connection);
  Connection* routeSequential(bool& wait);

  // Replies.
  void onRegistered(std::uint64_t connectionId, const wire::RegisterSessionReply& reply);
  void onKeepAliveReply(std::uint64_t connectionId, const wire::KeepAliveReply& reply,
                        bool binding);
  void onCommandReply(std::uint64_t connectionId, std::uint64_t sequence,
                      const wire::OperationReply& reply);
  void onQueryReply(std::uint64_t connectionId, std::uint64_t id,
                    const wire::OperationReply& reply);
  void onMembershipReply(std::uint64_t connectionId, std::uint64_t id,
                         const wire::MembershipReply& reply);
  void onCloseReply(std::uint64_t connectionId, const wire::CloseSessionReply& reply);
  void onSessionEvent(const wire::SessionEvent& event);

  // Session.
  void startRegistration();
  void sessionExpired(const QString& error);
  void keepAliveTick();
  /// Marks commands and queries unanswered for too long to be sent again
  /// (their reply may have been lost on a connection that stayed up).
  void resendUnanswered();
  void keepAliveSoon();
  std::uint64_t acknowledgedSequence() const;
  void complete(PromisePtr<OpResult> promise, OpResult result, Index eventIndex,
                Clock::time_point deadline);
  void releaseHeld();
  void finishClose(Expected<void> result);
  void failOperations(const Error& error);

  // Administration.
  void statusOf(const QString& address, Clock::time_point deadline, bool retry,
                StatusCallback callback);
  void tryStatus(std::shared_ptr<StatusAttempt> attempt);

  Error unavailable(const QString& what) const;
  int remainingMs(Clock::time_point deadline) const;
  /// Times out the operations whose deadline passed, then re-arms.
  void expireOperations();
  void armExpiryTimer();

  ClientOptions m_options;
  /// The connections this client uses, by id (shared with the other clients
  /// of its thread).
  std::map<std::uint64_t, std::shared_ptr<Connection>> m_connections;
  /// Closed connections, deleted once the event loop runs again (callers up
  /// the stack may still hold them).
  std::vector<std::shared_ptr<Connection>> m_graveyard;
  std::vector<std::weak_ptr<StatusAttempt>> m_statusAttempts;
  QStringList m_members;
  int m_memberCursor = 0;

  // The leader channel: the connection believed to reach the leader.
  std::uint64_t m_leaderConnection = 0;
  std::uint64_t m_generation = 1;  // changes with every new leader connection
  bool m_bound = false;            // the session is bound to the leader connection
  bool m_bindingSent = false;
  QString m_leaderTarget;         // the next address to try as leader
  qsizetype m_hintsFollowed = 0;  // leader hints followed since the last success
  QString m_knownLeaderAddress;   // the leader as far as the servers told
  int m_failedAttempts = 0;
  int m_round = 0;
  bool m_backingOff = false;
  bool m_idle = false;  // gave up a round: wait for new work before trying again
  QString m_lastError;
  std::set<QString> m_failedFollowers;

  // The session.
  SessionState m_state = SessionState::None;
  std::atomic<SessionId> m_sessionId{0};
  std::atomic<Index> m_lastIndex{0};
  std::chrono::milliseconds m_sessionTimeout{0};
  std::uint64_t m_registrationConnection = 0;  // where the registration is outstanding
  std::vector<PromisePtr<Expected<void>>> m_connectPromises;
  std::uint64_t m_nextSequence = 1;
  std::map<std::uint64_t, Command> m_commands;  // by sequence; results not received yet
  std::map<std::uint64_t, Query> m_queries;     // by local id
  std::map<std::uint64_t, Held> m_held;         // by local id; waiting for events
  std::map<std::uint64_t, MembershipOp> m_membershipOps;
  std::uint64_t m_nextLocalId = 1;
  Index m_lastEvent = 0;
  bool m_keepAliveDue = false;
  bool m_keepAliveSoon = false;
  QTimer* m_keepAliveTimer = nullptr;
  QTimer* m_resendTimer = nullptr;
  /// An operation's deadline: its caller gets a timeout then unless it was
  /// answered. Every operation has the same timeout, so they are in deadline
  /// order; one timer serves them all (a timer per operation made Qt's timer
  /// list grow by thousands per second under load).
  struct Expiry {
    Clock::time_point deadline;
    OperationKind kind = OperationKind::Command;
    std::uint64_t key = 0;  // Command: sequence; Query: local id
  };
  std::deque<Expiry> m_expiries;
  QTimer* m_expiryTimer = nullptr;
  bool m_pumpScheduled = false;

  // close().
  std::vector<PromisePtr<Expected<void>>> m_closePromises;
  std::uint64_t m_closeSentConnection = 0;

  mutable std::mutex m_handlersMutex;
  std::multimap<std::string, Client::EventHandler> m_handlers;
};

}  // namespace copycat::client
