#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <QFuture>
#include <QString>
#include <QStringList>

#include "engine/api/codec.h"
#include "engine/api/operation.h"
#include "engine/api/result.h"
#include "engine/api/serializer.h"

class QThread;

namespace copycat::client {

class ClientCore;

/// Which server a Sequential query goes to. Linearizable queries, commands
/// and session traffic always go to the leader.
enum class ServerSelection : std::uint8_t {
  Any,        // whatever connection is open (the leader's when there is one)
  Leader,     // the leader
  Followers,  // a non-leader member when one is reachable, else the leader
};

/// What the client does when the cluster reports its session expired.
enum class RecoveryStrategy : std::uint8_t {
  Close,    // fail everything pending and every later submit with SessionExpired
  Recover,  // register a new session; commands pending on the old one fail with SessionExpired
};

/// How attempts to reach a server (or the leader) are repeated. A round is
/// one attempt per known member; after a failed round the client waits
/// delayAfterRound(round) and tries again, or gives up when it returns
/// nothing (the pending requests then fail with Unavailable). Independently
/// of the strategy, every request fails with Unavailable at its timeout.
struct ConnectionStrategy {
  /// Tries each member once, then gives up.
  static ConnectionStrategy once();
  /// Retries rounds forever, waiting `initial`, then twice as long each
  /// round, up to `max`.
  /// The defaults keep a failover short: while a new leader is elected the
  /// client polls every member at least every 100 ms (a round costs a
  /// request per member; the wait is what a write sees on top of the
  /// election).
  static ConnectionStrategy exponentialBackoff(
      std::chrono::milliseconds initial = std::chrono::milliseconds(25),
      std::chrono::milliseconds max = std::chrono::milliseconds(100));

  /// The pause after failed round number `round` (1-based); nothing: give up.
  std::optional<std::chrono::milliseconds> delayAfterRound(int round) const;

  bool retry = true;
  std::chrono::milliseconds initialDelay{25};
  std::chrono::milliseconds maxDelay{100};
};

/// A membership change a client can ask the leader for.
enum class MembershipChange : std::uint8_t {
  Join,     // add a server as a passive member, promoted once caught up
  Leave,    // remove a server
  Promote,  // make a caught-up passive member active
  Demote,   // make an active member passive
};

/// One member of the cluster as a server reported it.
struct MemberInfo {
  quint64 id = 0;
  QString address;
  bool voter = true;
};

/// One server's state (StatusReply). When the server could not be asked,
/// only `address` (and `id` when known) and `error` are set.
struct ServerStatus {
  quint64 id = 0;
  QString address;
  QString role;  // "follower", "pre-candidate", "candidate", "leader"
  quint64 term = 0;
  quint64 leaderId = 0;
  QString leaderAddress;
  quint64 commit = 0;
  quint64 applied = 0;
  quint64 lastIndex = 0;
  /// The last index known durable (a leader's unsynced tail ends at lastIndex).
  quint64 durable = 0;
  quint64 snapshotIndex = 0;
  quint64 logBytes = 0;
  /// Storage work since the server started: syncs, batches, entries.
  quint64 storageSyncs = 0;
  quint64 storageBatches = 0;
  quint64 storageEntries = 0;
  std::vector<MemberInfo> members;
  QString error;  // empty when the server answered
};

/// The outcome of a committed membership change (MembershipReply).
struct MembershipResult {
  quint64 index = 0;   // log index of the committed change
  quint64 nodeId = 0;  // the server that joined or left
  std::vector<MemberInfo> members;
};

/// An operation's result with the log index of its reply
/// (OperationReply.index: where a command was applied, or the applied index
/// a query was served at).
template <class T>
struct Indexed {
  T value;
  Index index = 0;
  /// The member that answered ("host:port").
  QString server;
};

/// True when `address` is "host:port" with an IPv4 literal, "[IPv6]" or
/// "localhost" and a port in 1..65535 (the addresses servers accept).
bool isValidAddress(const QString& address);

/// A thread with an event loop that several clients can share (see
/// Client::Builder::withEventThread), so that a process with many sessions
/// does not run a thread per session. It stops when the last client using
/// it and the last copy of its pointer are gone.
class ClientThread {
 public:
  ClientThread();
  ~ClientThread();
  ClientThread(const ClientThread&) = delete;
  ClientThread& operator=(const ClientThread&) = delete;

  QThread* thread() const { return m_thread.get(); }

 private:
  std::unique_ptr<QThread> m_thread;
};

/// A Copycat client (the Copycat API of DESIGN.md): opens a session with a
/// cluster, submits commands and queries within it, receives the session's
/// events in order, and offers administration requests that need no
/// session.
///
/// Guarantees: commands carry sequence numbers 1, 2, 3... of the session and
/// are resent with the same numbers, in order, after a lost connection, a
/// NOT_LEADER or an UNAVAILABLE answer, so each applies at most once; a
/// query never reads older state than this client already saw; events are
/// delivered in order, each once, and an operation completes only after the
/// events published up to it were delivered.
///
/// Threading: the client's sockets live on a thread with its own event
/// loop, its own or one it shares with other clients (withEventThread). Every public method is
/// thread-safe and may be called from any thread, including one without an event loop; callers may
/// block on future.result(). Futures complete, and event handlers run, on the client's thread; a
/// handler must not destroy the client.
///
/// Errors (Expected): Unavailable when no server (or no leader) answered
/// within the timeout; SessionExpired when the session was lost (strategy
/// Close) or a command's outcome was lost with it; Closed when the client
/// was closed first; ApplicationError, UnknownOperation and
/// MalformedOperation as the server reported them (an unregistered type is
/// reported at once, without a request).
class Client {
 public:
  using Registration = std::function<void(Serializer&)>;
  using EventHandler = std::function<void(const std::string& payload)>;

  /// Collects the client's settings; build() validates them.
  class Builder {
   public:
    /// `members`: "host:port" addresses of (some of) the servers.
    explicit Builder(QStringList members);

    Builder& withConnectionStrategy(ConnectionStrategy strategy);
    Builder& withRecoveryStrategy(RecoveryStrategy strategy);
    Builder& withServerSelection(ServerSelection selection);
    /// The session timeout asked for; 0 (the default) takes the server's.
    Builder& withSessionTimeout(std::chrono::milliseconds timeout);
    /// The time limit of each connect(), submit(), close() and
    /// administration call; default 10 s.
    Builder& withTimeout(std::chrono::milliseconds timeout);
    Builder& withSerializer(Serializer serializer);
    /// Registers operation types on the client's serializer (may be combined
    /// with withSerializer).
    Builder& withRegistration(Registration registration);
    Builder& withClusterId(std::string clusterId);
    /// Sent in the handshake and as the session's client id, for logs.
    Builder& withName(QString name);
    /// Runs the client on `thread`, shared with other clients, instead of a
    /// thread of its own.
    Builder& withEventThread(std::shared_ptr<ClientThread> thread);

    /// Creates the client (not connected). Throws std::invalid_argument when
    /// there is no member or a member address is invalid.
    std::unique_ptr<Client> build();

   private:
    friend class Client;
    QStringList m_members;
    ConnectionStrategy m_connection = ConnectionStrategy::exponentialBackoff();
    RecoveryStrategy m_recovery = RecoveryStrategy::Recover;
    ServerSelection m_selection = ServerSelection::Any;
    std::chrono::milliseconds m_sessionTimeout{0};
    std::chrono::milliseconds m_timeout{10000};
    Serializer m_serializer;
    std::vector<Registration> m_registrations;
    std::string m_clusterId;
    QString m_name = QStringLiteral("copycat-client");
    std::shared_ptr<ClientThread> m_thread;
  };

  static Builder builder(QStringList members) { return Builder(std::move(members)); }

  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  /// Registers a session through the leader. Succeeds at once when a
  /// session is open. submit() connects implicitly when needed.
  QFuture<Expected<void>> connect();
  /// Closes the session (CloseSessionRequest to the leader, best effort
  /// within the timeout) and every connection; pending operations fail with
  /// Closed, and so does everything submitted afterwards.
  QFuture<Expected<void>> close();

  /// Submits an encoded operation of a type registered with this client's
  /// serializer (which tells a command from a query). `consistency` applies
  /// to queries; by default the type's registered default consistency.
  QFuture<Expected<std::string>> submit(TypeId typeId, std::string bytes,
                                        std::optional<Consistency> consistency = std::nullopt);
  /// Same, with the index of the reply.
  QFuture<Expected<Indexed<std::string>>> submitIndexed(
      TypeId typeId, std::string bytes, std::optional<Consistency> consistency = std::nullopt);

  /// Typed submit: encodes `operation` and decodes its result. An
  /// unregistered type gives UnknownOperation at once, never a crash.
  template <Operation Op>
  QFuture<Expected<typename Op::Result>> submit(
      const Op& operation, std::optional<Consistency> consistency = std::nullopt) {
    using R = typename Op::Result;
    return submitIndexed(operation, consistency)
        .then(QtFuture::Launch::Sync, [](Expected<Indexed<R>> result) -> Expected<R> {
          if (!result) return result.error();
          return std::move(result->value);
        });
  }

  /// Typed submit with the index of the reply.
  template <Operation Op>
  QFuture<Expected<Indexed<typename Op::Result>>> submitIndexed(
      const Op& operation, std::optional<Consistency> consistency = std::nullopt) {
    using R = typename Op::Result;
    EncodedOperation encoded;
    try {
      encoded = m_serializer->encode(operation);
    } catch (const std::exception& error) {
      return QtFuture::makeReadyFuture(
          Expected<Indexed<R>>(Error{ErrorCode::UnknownOperation, error.what()}));
    }
    std::shared_ptr<const Serializer> serializer = m_serializer;
    return submitIndexed(encoded.typeId, std::move(encoded.bytes), consistency)
        .then(QtFuture::Launch::Sync,
              [serializer](Expected<Indexed<std::string>> result) -> Expected<Indexed<R>> {
                if (!result) return result.error();
                Expected<R> decoded = serializer->template decodeResult<Op>(result->value);
                if (!decoded) return decoded.error();
                return Indexed<R>{std::move(*decoded), result->index, result->server};
              });
  }

  /// Calls `handler` with the payload of every event named `name` published
  /// to this client's session, in order, on the client's thread. Several
  /// handlers per name are called in registration order.
  void onEvent(std::string name, EventHandler handler);
  /// Same, decoding the payload with decodeObject<T> (codec.h); an event
  /// that does not decode is skipped.
  template <class T>
  void onEvent(std::string name, std::function<void(const T&)> handler) {
    onEvent(std::move(name), EventHandler([handler = std::move(handler)](const std::string& p) {
              try {
                handler(decodeObject<T>(p));
              } catch (const DecodeError&) {
              }
            }));
  }

  /// The current session id (0 when none).
  SessionId session() const;
  /// The highest log index seen in a reply (the session id counts: it is
  /// the index of the registration entry). Never decreases.
  Index lastIndex() const;

  /// One server's status; `address` need not be a known member.
  QFuture<Expected<ServerStatus>> status(QString address);
  /// Every member's status, in the order a server reported the members: the
  /// first member that answers names them, then each is asked. A member
  /// that cannot be asked gives an entry with `error` set; Unavailable when
  /// no member answered at all.
  QFuture<Expected<std::vector<ServerStatus>>> statusAll();
  /// Adds the server at `address` to the cluster (sent to the leader).
  QFuture<Expected<MembershipResult>> join(QString address);
  /// Removes the server at `address` from the cluster (sent to the leader).
  QFuture<Expected<MembershipResult>> leave(QString address);
  /// Makes the passive member at `address` active once it caught up.
  QFuture<Expected<MembershipResult>> promote(QString address);
  /// Makes the active member at `address` passive (a leader hands over first).
  QFuture<Expected<MembershipResult>> demote(QString address);
  /// Any of the four changes; finished once the change committed.
  QFuture<Expected<MembershipResult>> changeMembership(MembershipChange change, QString address);

  const Serializer& serializer() const { return *m_serializer; }

 private:
  explicit Client(Builder& builder);

  std::shared_ptr<const Serializer> m_serializer;
  std::shared_ptr<ClientThread> m_thread;
  ClientCore* m_core = nullptr;  // lives on m_thread
};

}  // namespace copycat::client
