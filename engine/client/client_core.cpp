#include "engine/client/client_core.h"

#include <algorithm>
#include <utility>

#include <QTimer>
#include <QUuid>

namespace copycat::client {

namespace {

/// Bounds on the time a connection may take to be accepted (TCP connect and
/// handshake), whatever the operation timeout.
constexpr int kMinHandshakeMs = 100;
constexpr int kMaxHandshakeMs = 5000;
/// Pause before retrying a request a server answered with UNAVAILABLE.
constexpr int kRetryUnavailableMs = 100;
/// Pause before the keep-alive that asks the server to resend missed events.
constexpr int kKeepAliveSoonMs = 20;
/// An operation held for its events asks for a resend after this long.
constexpr int kHeldResendMs = 500;
/// A command or query without a reply after this long is sent again, with
/// the same sequence number (the server answers a duplicate with the first
/// result).
constexpr std::chrono::milliseconds kReplyResend{1000};
/// Keep-alive period when the server names no session timeout.
constexpr std::chrono::milliseconds kDefaultSessionTimeout{5000};

QString text(const std::string& s) { return QString::fromStdString(s); }

QString statusName(wire::Status status) {
  return text(wire::Status_Name(status)).remove(QStringLiteral("STATUS_")).toLower();
}

/// The API error for a final (non-retried) status of an operation reply.
Error operationError(wire::Status status, const std::string& message) {
  switch (status) {
    case wire::STATUS_APPLICATION_ERROR:
      return Error{ErrorCode::ApplicationError, message};
    case wire::STATUS_UNKNOWN_OPERATION:
      return Error{ErrorCode::UnknownOperation, message};
    case wire::STATUS_BAD_REQUEST:
      return Error{ErrorCode::MalformedOperation, message};
    default:
      return Error{ErrorCode::InternalError, "unexpected status " + wire::Status_Name(status) +
                                                 (message.empty() ? "" : ": " + message)};
  }
}

wire::Consistency toWire(Consistency consistency) {
  switch (consistency) {
    case Consistency::Linearizable:
      return wire::CONSISTENCY_LINEARIZABLE;
    case Consistency::LinearizableLease:
      return wire::CONSISTENCY_LINEARIZABLE_LEASE;
    case Consistency::Sequential:
      return wire::CONSISTENCY_SEQUENTIAL;
  }
  return wire::CONSISTENCY_LINEARIZABLE;
}

QString roleName(wire::Role role) {
  switch (role) {
    case wire::ROLE_FOLLOWER:
      return QStringLiteral("follower");
    case wire::ROLE_PRE_CANDIDATE:
      return QStringLiteral("pre-candidate");
    case wire::ROLE_CANDIDATE:
      return QStringLiteral("candidate");
    case wire::ROLE_LEADER:
      return QStringLiteral("leader");
    default:
      return QStringLiteral("unknown");
  }
}

std::vector<MemberInfo> toMembers(const google::protobuf::RepeatedPtrField<wire::Member>& members) {
  std::vector<MemberInfo> out;
  out.reserve(static_cast<std::size_t>(members.size()));
  for (const wire::Member& member : members) {
    out.push_back(MemberInfo{member.node_id(), text(member.address()),
                             member.kind() != wire::MEMBER_KIND_LEARNER});
  }
  return out;
}

ServerStatus toStatus(const wire::StatusReply& reply) {
  ServerStatus status;
  status.id = reply.node_id();
  status.address = text(reply.address());
  status.role = roleName(reply.role());
  status.term = reply.term();
  status.leaderId = reply.leader().node_id();
  status.leaderAddress = text(reply.leader().address());
  status.commit = reply.commit();
  status.applied = reply.applied();
  status.lastIndex = reply.last_index();
  status.durable = reply.durable();
  status.snapshotIndex = reply.snapshot_index();
  status.logBytes = reply.log_bytes();
  status.storageSyncs = reply.storage_syncs();
  status.storageBatches = reply.storage_batches();
  status.storageEntries = reply.storage_entries();
  status.members = toMembers(reply.members());
  return status;
}

template <class T>
void fulfil(const PromisePtr<T>& promise, T value) {
  if (!promise) return;
  promise->addResult(std::move(value));
  promise->finish();
}

}  // namespace

ClientCore::ClientCore(ClientOptions options, QObject* parent)
    : QObject(parent), m_options(std::move(options)) {
  for (const QString& member : m_options.members) addMember(member);
  m_keepAliveTimer = new QTimer(this);
  connect(m_keepAliveTimer, &QTimer::timeout, this, &ClientCore::keepAliveTick);
  m_resendTimer = new QTimer(this);
  connect(m_resendTimer, &QTimer::timeout, this, &ClientCore::resendUnanswered);
  m_resendTimer->start(static_cast<int>(kReplyResend.count() / 4));
  m_expiryTimer = new QTimer(this);
  m_expiryTimer->setSingleShot(true);
  connect(m_expiryTimer, &QTimer::timeout, this, &ClientCore::expireOperations);
}

void ClientCore::resendUnanswered() {
  const Clock::time_point stale = Clock::now() - kReplyResend;
  bool any = false;
  for (auto& [sequence, command] : m_commands) {
    if (command.sentGeneration == m_generation && command.sentAt <= stale) {
      command.sentGeneration = 0;
      any = true;
    }
  }
  for (auto& [id, query] : m_queries) {
    if (query.sentConnection != 0 && query.sentAt <= stale) {
      query.sentConnection = 0;
      any = true;
    }
  }
  if (any) schedulePump();
}

ClientCore::~ClientCore() { shutdown(); }

// ---------------------------------------------------------------------------
// Connections
// ---------------------------------------------------------------------------

ClientCore::Connection* ClientCore::findConnection(std::uint64_t id) const {
  auto found = m_connections.find(id);
  return found == m_connections.end() ? nullptr : found->second.get();
}

ClientCore::Connection* ClientCore::connectionTo(const QString& address) {
  for (const auto& [id, connection] : m_connections) {
    if (connection->address() == address && connection->state() != Connection::State::Closed) {
      return connection.get();
    }
  }
  SharedConnection::Settings settings;
  settings.address = address;
  settings.clusterId = m_options.clusterId;
  settings.name = m_options.name;
  settings.handshakeTimeout = std::chrono::milliseconds(
      std::clamp(static_cast<int>(m_options.timeout.count()), kMinHandshakeMs, kMaxHandshakeMs));
  std::shared_ptr<Connection> connection = SharedConnection::acquire(settings, this);
  Connection* acquired = connection.get();
  m_connections.emplace(acquired->id(), std::move(connection));
  return acquired;
}

void ClientCore::connectionOpened(SharedConnection&) { schedulePump(); }

void ClientCore::connectionClosed(SharedConnection& connection, const QString& error) {
  forgetConnection(&connection, error);
}

void ClientCore::sessionEvent(const wire::SessionEvent& event) { onSessionEvent(event); }

void ClientCore::send(Connection* connection, wire::Frame& frame, ReplyHandler handler) {
  if (!connection->send(this, frame, std::move(handler))) {
    // Over the frame size limit: no server would accept it.
    const QString error = QStringLiteral("request too large to send");
    QTimer::singleShot(0, this, [handler = std::move(handler), error] { handler(nullptr, error); });
  }
}

void ClientCore::forgetConnection(Connection* connection, const QString& error) {
  const std::uint64_t id = connection->id();
  const QString address = connection->address();
  auto owned = m_connections.find(id);
  if (owned == m_connections.end()) return;
  // The object stays valid until the event loop runs again: callers up the
  // stack may still hold the pointer.
  if (m_graveyard.empty()) {
    QMetaObject::invokeMethod(
        this, [this] { m_graveyard.clear(); }, Qt::QueuedConnection);
  }
  m_graveyard.push_back(std::move(owned->second));
  m_connections.erase(owned);
  if (id == m_leaderConnection) {
    leaderFailed(error, nullptr);
  } else if (m_state != SessionState::Closed) {
    m_failedFollowers.insert(address);
  }
  schedulePump();
}

void ClientCore::closeConnection(Connection* connection, const QString& error) {
  forgetConnection(connection, error);  // keeps it alive in the graveyard
  connection->release(this, error);
}

// ---------------------------------------------------------------------------
// Leader discovery
// ---------------------------------------------------------------------------

bool ClientCore::needLeader() const {
  if (m_idle || m_state == SessionState::Closed) return false;
  if (m_state == SessionState::Registering || m_state == SessionState::Open ||
      m_state == SessionState::Closing) {
    return true;
  }
  return !m_membershipOps.empty();
}

ClientCore::Connection* ClientCore::leaderConnection() const {
  Connection* connection = findConnection(m_leaderConnection);
  return connection && connection->state() == Connection::State::Open ? connection : nullptr;
}

void ClientCore::ensureLeaderConnection() {
  if (findConnection(m_leaderConnection)) return;
  if (m_members.isEmpty()) return;
  if (m_leaderTarget.isEmpty()) m_leaderTarget = nextMember();
  Connection* connection = connectionTo(m_leaderTarget);
  m_leaderConnection = connection->id();
  ++m_generation;
  m_bound = false;
  m_bindingSent = false;
}

void ClientCore::leaderFailed(const QString& error, const wire::LeaderHint* hint) {
  if (m_state == SessionState::Closed) return;
  if (!error.isEmpty()) m_lastError = error;
  const QString previous = m_leaderTarget;
  m_leaderConnection = 0;
  ++m_generation;
  m_bound = false;
  m_bindingSent = false;
  m_leaderTarget.clear();
  if (hint && !hint->address().empty()) {
    const QString address = text(hint->address());
    addMember(address);
    m_knownLeaderAddress = address;
    if (address != previous) m_leaderTarget = address;
  } else if (m_knownLeaderAddress == previous) {
    m_knownLeaderAddress.clear();
  }
  if (!m_leaderTarget.isEmpty() && m_hintsFollowed < m_members.size()) {
    // A hint names a new leader: going there is progress, not a failed
    // attempt (unless hints keep going round, as during a hand-over).
    ++m_hintsFollowed;
    schedulePump();
    return;
  }
  if (m_leaderTarget.isEmpty()) {
    m_leaderTarget = nextMember();
    if (m_leaderTarget == previous && m_members.size() > 1) m_leaderTarget = nextMember();
  }
  ++m_failedAttempts;
  if (m_failedAttempts >= std::max<qsizetype>(1, m_members.size())) {
    m_failedAttempts = 0;
    ++m_round;
    const std::optional<std::chrono::milliseconds> delay =
        m_options.connection.delayAfterRound(m_round);
    if (!delay) {
      giveUp();
      return;
    }
    m_backingOff = true;
    QTimer::singleShot(static_cast<int>(delay->count()), this, [this] {
      m_backingOff = false;
      schedulePump();
    });
  }
  schedulePump();
}

void ClientCore::leaderSucceeded() {
  m_failedAttempts = 0;
  m_hintsFollowed = 0;
  m_round = 0;
  if (Connection* leader = leaderConnection()) {
    m_knownLeaderAddress = leader->address();
    m_leaderTarget = leader->address();
  }
}

void ClientCore::giveUp() {
  m_idle = true;
  m_round = 0;
  m_keepAliveDue = false;
  const Error error = unavailable(QStringLiteral("no leader could be reached"));
  if (m_state == SessionState::Registering) m_state = SessionState::None;
  for (auto& promise : std::exchange(m_connectPromises, {})) fulfil(promise, Expected<void>(error));
  for (auto& [sequence, command] : m_commands) {
    fulfil(std::exchange(command.promise, nullptr), OpResult(error));
  }
  for (auto& [id, query] : std::exchange(m_queries, {})) fulfil(query.promise, OpResult(error));
  for (auto& [id, op] : std::exchange(m_membershipOps, {})) {
    fulfil(op.promise, Expected<MembershipResult>(error));
  }
  if (m_state == SessionState::Closing) finishClose(Expected<void>(error));
}

QString ClientCore::nextMember() {
  if (m_members.isEmpty()) return QString();
  const QString member = m_members.at(m_memberCursor % m_members.size());
  m_memberCursor = (m_memberCursor + 1) % m_members.size();
  return member;
}

void ClientCore::addMember(const QString& address) {
  if (!address.isEmpty() && !m_members.contains(address)) m_members.append(address);
}

void ClientCore::learnMembers(const google::protobuf::RepeatedPtrField<wire::Member>& members) {
  for (const wire::Member& member : members) addMember(text(member.address()));
}

void ClientCore::learnLeader(const wire::LeaderHint& hint) {
  if (!hint.address().empty()) {
    addMember(text(hint.address()));
    m_knownLeaderAddress = text(hint.address());
  }
}

// ---------------------------------------------------------------------------
// The work loop
// ---------------------------------------------------------------------------

void ClientCore::schedulePump(int delayMs) {
  if (delayMs > 0) {
    QTimer::singleShot(delayMs, this, [this] { schedulePump(); });
    return;
  }
  if (m_pumpScheduled) return;
  m_pumpScheduled = true;
  QMetaObject::invokeMethod(
      this, [this] { pump(); }, Qt::QueuedConnection);
}

void ClientCore::pump() {
  m_pumpScheduled = false;
  if (m_state == SessionState::Closed) return;
  if (needLeader() && !m_backingOff) ensureLeaderConnection();
  Connection* leader = leaderConnection();
  const std::uint64_t generation = m_generation;
  if (leader) {
    if (m_state == SessionState::Registering && m_registrationConnection == 0) {
      sendRegistration(leader);
    }
    if (m_state == SessionState::Open && !m_bound && !m_bindingSent) sendKeepAlive(leader, true);
    for (auto& [id, op] : m_membershipOps) {
      if (op.sentConnection == 0 && !op.retryLater) sendMembership(leader, id);
    }
    if (m_state == SessionState::Closing && m_closeSentConnection == 0) sendClose(leader);
    if (m_state == SessionState::Open && m_bound) {
      for (auto& [sequence, command] : m_commands) {
        if (generation != m_generation || leaderConnection() != leader) break;
        if (command.sentGeneration != m_generation) sendCommand(leader, sequence);
      }
      if (m_keepAliveDue && generation == m_generation) sendKeepAlive(leader, false);
    }
  }
  if (m_state != SessionState::Open) return;
  std::vector<std::uint64_t> unsent;
  for (const auto& [id, query] : m_queries) {
    if (query.sentConnection == 0 && !query.retryLater) unsent.push_back(id);
  }
  for (std::uint64_t id : unsent) {
    auto query = m_queries.find(id);
    if (query == m_queries.end() || m_state != SessionState::Open) continue;
    const bool viaLeader = query->second.consistency != Consistency::Sequential ||
                           m_options.selection == ServerSelection::Leader;
    bool wait = false;
    Connection* target = viaLeader ? nullptr : routeSequential(wait);
    if (wait) continue;
    if (!target) {
      Connection* current = leaderConnection();
      if (!current || !m_bound) continue;
      target = current;
    }
    sendQuery(target, id);
  }
}

ClientCore::Connection* ClientCore::routeSequential(bool& wait) {
  wait = false;
  Connection* leader = leaderConnection();
  if (m_options.selection == ServerSelection::Any) {
    if (leader) return leader;
    for (const auto& [id, connection] : m_connections) {
      if (connection->state() == Connection::State::Open) return connection.get();
    }
    return nullptr;
  }
  const QString leaderAddress = leader ? leader->address() : m_knownLeaderAddress;
  const auto isLeader = [&](const Connection& connection) {
    return connection.id() == m_leaderConnection ||
           (!leaderAddress.isEmpty() &&
            (connection.address() == leaderAddress || connection.serverAddress() == leaderAddress));
  };
  for (const auto& [id, connection] : m_connections) {
    if (connection->state() == Connection::State::Open && !isLeader(*connection) &&
        !m_failedFollowers.count(connection->address())) {
      return connection.get();
    }
  }
  for (const auto& [id, connection] : m_connections) {
    if (connection->state() != Connection::State::Open && !isLeader(*connection) &&
        !m_failedFollowers.count(connection->address())) {
      wait = true;
      return nullptr;
    }
  }
  for (const QString& member : m_members) {
    if (member == leaderAddress || m_failedFollowers.count(member)) continue;
    if (Connection* existing = findConnection(m_leaderConnection);
        existing && existing->address() == member) {
      continue;
    }
    connectionTo(member);
    wait = true;
    return nullptr;
  }
  return nullptr;
}

void ClientCore::sendRegistration(Connection* connection) {
  wire::Frame frame;
  wire::RegisterSessionRequest* request = frame.mutable_register_session();
  request->set_client_id(
      (m_options.name + QLatin1Char('-') + QUuid::createUuid().toString(QUuid::WithoutBraces))
          .toStdString());
  request->set_timeout_ms(static_cast<std::uint64_t>(m_options.sessionTimeout.count()));
  const std::uint64_t connectionId = connection->id();
  m_registrationConnection = connectionId;
  send(connection, frame, [this, connectionId](const wire::Frame* reply, const QString&) {
    if (m_registrationConnection == connectionId) m_registrationConnection = 0;
    if (reply) onRegistered(connectionId, reply->register_session_reply());
    schedulePump();
  });
}

void ClientCore::sendKeepAlive(Connection* connection, bool binding) {
  wire::Frame frame;
  wire::KeepAliveRequest* request = frame.mutable_keep_alive();
  const SessionId session = m_sessionId.load();
  request->set_session_id(session);
  request->set_command_sequence(acknowledgedSequence());
  request->set_event_index(m_lastEvent);
  if (binding) m_bindingSent = true;
  m_keepAliveDue = false;
  const std::uint64_t connectionId = connection->id();
  const std::uint64_t generation = m_generation;
  send(
      connection, frame,
      [this, connectionId, generation, binding, session](const wire::Frame* reply, const QString&) {
        if (!reply) {
          if (binding && generation == m_generation) m_bindingSent = false;
          return;
        }
        if (session != m_sessionId.load()) return;
        onKeepAliveReply(connectionId, reply->keep_alive_reply(),
                         binding && generation == m_generation);
      });
}

void ClientCore::sendCommand(Connection* connection, std::uint64_t sequence) {
  Command& command = m_commands.at(sequence);
  command.sentGeneration = m_generation;
  command.sentAt = Clock::now();
  wire::Frame frame;
  wire::CommandRequest* request = frame.mutable_command();
  const SessionId session = m_sessionId.load();
  request->set_session_id(session);
  request->set_sequence(sequence);
  request->set_type_id(command.typeId);
  request->set_payload(command.payload);
  request->set_acknowledged_sequence(acknowledgedSequence());
  const std::uint64_t connectionId = connection->id();
  send(connection, frame,
       [this, connectionId, sequence, session](const wire::Frame* reply, const QString&) {
         if (!reply || session != m_sessionId.load()) return;
         onCommandReply(connectionId, sequence, reply->operation_reply());
       });
}

void ClientCore::sendQuery(Connection* connection, std::uint64_t id) {
  Query& query = m_queries.at(id);
  query.sentConnection = connection->id();
  query.sentAt = Clock::now();
  wire::Frame frame;
  wire::QueryRequest* request = frame.mutable_query();
  const SessionId session = m_sessionId.load();
  request->set_session_id(session);
  request->set_sequence(m_nextSequence - 1);
  request->set_last_index(m_lastIndex.load());
  request->set_consistency(toWire(query.consistency));
  request->set_type_id(query.typeId);
  request->set_payload(query.payload);
  const std::uint64_t connectionId = connection->id();
  send(connection, frame,
       [this, connectionId, id, session](const wire::Frame* reply, const QString&) {
         if (!reply) {
           auto found = m_queries.find(id);
           if (found != m_queries.end() && found->second.sentConnection == connectionId) {
             found->second.sentConnection = 0;
           }
           schedulePump();
           return;
         }
         if (session != m_sessionId.load()) {
           auto found = m_queries.find(id);
           if (found != m_queries.end()) found->second.sentConnection = 0;
           schedulePump();
           return;
         }
         onQueryReply(connectionId, id, reply->operation_reply());
       });
}

void ClientCore::sendMembership(Connection* connection, std::uint64_t id) {
  MembershipOp& op = m_membershipOps.at(id);
  op.sentConnection = connection->id();
  wire::Frame frame;
  const std::string address = op.address.toStdString();
  switch (op.change) {
    case MembershipChange::Join:
      frame.mutable_join()->set_address(address);
      break;
    case MembershipChange::Leave:
      frame.mutable_leave()->set_address(address);
      break;
    case MembershipChange::Promote:
      frame.mutable_promote()->set_address(address);
      break;
    case MembershipChange::Demote:
      frame.mutable_demote()->set_address(address);
      break;
  }
  const std::uint64_t connectionId = connection->id();
  send(connection, frame, [this, connectionId, id](const wire::Frame* reply, const QString&) {
    if (!reply) {
      auto found = m_membershipOps.find(id);
      if (found != m_membershipOps.end() && found->second.sentConnection == connectionId) {
        found->second.sentConnection = 0;
      }
      schedulePump();
      return;
    }
    onMembershipReply(connectionId, id, reply->membership_reply());
  });
}

void ClientCore::sendClose(Connection* connection) {
  wire::Frame frame;
  frame.mutable_close_session()->set_session_id(m_sessionId.load());
  const std::uint64_t connectionId = connection->id();
  m_closeSentConnection = connectionId;
  send(connection, frame, [this, connectionId](const wire::Frame* reply, const QString&) {
    if (m_closeSentConnection == connectionId) m_closeSentConnection = 0;
    if (reply) onCloseReply(connectionId, reply->close_session_reply());
    schedulePump();
  });
}

// ---------------------------------------------------------------------------
// Replies
// ---------------------------------------------------------------------------

void ClientCore::onRegistered(std::uint64_t connectionId, const wire::RegisterSessionReply& reply) {
  if (m_state != SessionState::Registering && m_state != SessionState::None) return;
  switch (reply.status()) {
    case wire::STATUS_OK: {
      if (reply.session_id() == 0) {
        if (connectionId == m_leaderConnection) {
          leaderFailed(QStringLiteral("registration answered without a session id"), nullptr);
        }
        return;
      }
      learnMembers(reply.members());
      learnLeader(reply.leader());
      m_sessionId = reply.session_id();
      Index seen = m_lastIndex.load();
      m_lastIndex = std::max(seen, reply.session_id());
      m_sessionTimeout = reply.timeout_ms() > 0 ? std::chrono::milliseconds(reply.timeout_ms())
                         : m_options.sessionTimeout.count() > 0 ? m_options.sessionTimeout
                                                                : kDefaultSessionTimeout;
      m_state = SessionState::Open;
      m_lastEvent = 0;
      m_keepAliveDue = false;
      if (connectionId == m_leaderConnection) {
        // Registering binds the session to this connection.
        m_bound = true;
        m_bindingSent = true;
        leaderSucceeded();
      }
      m_keepAliveTimer->start(
          static_cast<int>(std::max<std::int64_t>(10, m_sessionTimeout.count() / 3)));
      for (auto& promise : std::exchange(m_connectPromises, {})) fulfil(promise, Expected<void>());
      schedulePump();
      return;
    }
    case wire::STATUS_NOT_LEADER:
    case wire::STATUS_UNAVAILABLE:
    case wire::STATUS_SESSION_EXPIRED:
      leaderRefused(connectionId, reply.status(), reply.error(), reply.leader());
      return;
    default: {
      const Error error = operationError(reply.status(), reply.error());
      m_state = SessionState::None;
      for (auto& promise : std::exchange(m_connectPromises, {})) {
        fulfil(promise, Expected<void>(error));
      }
      for (auto& [sequence, command] : std::exchange(m_commands, {})) {
        fulfil(command.promise, OpResult(error));
      }
      for (auto& [id, query] : std::exchange(m_queries, {})) fulfil(query.promise, OpResult(error));
      m_nextSequence = 1;
      return;
    }
  }
}

void ClientCore::onKeepAliveReply(std::uint64_t connectionId, const wire::KeepAliveReply& reply,
                                  bool binding) {
  switch (reply.status()) {
    case wire::STATUS_OK:
      learnMembers(reply.members());
      if (binding && connectionId == m_leaderConnection) {
        m_bound = true;
        leaderSucceeded();
        schedulePump();
      }
      return;
    case wire::STATUS_SESSION_EXPIRED:
      sessionExpired(text(reply.error()));
      return;
    default:
      leaderRefused(connectionId, reply.status(), reply.error(), reply.leader());
      return;
  }
}

QString ClientCore::addressOf(std::uint64_t connectionId) const {
  const Connection* c = findConnection(connectionId);
  return c ? c->address() : QString();
}

QString ClientCore::describeAnswer(std::uint64_t connectionId, wire::Status status,
                                   const std::string& error) const {
  return QStringLiteral("%1 answered %2 %3")
      .arg(addressOf(connectionId), statusName(status), text(error));
}

void ClientCore::leaderRefused(std::uint64_t connectionId, wire::Status status,
                               const std::string& error, const wire::LeaderHint& hint) {
  if (connectionId == m_leaderConnection) {
    leaderFailed(describeAnswer(connectionId, status, error), &hint);
  }
}

void ClientCore::onCommandReply(std::uint64_t connectionId, std::uint64_t sequence,
                                const wire::OperationReply& reply) {
  auto found = m_commands.find(sequence);
  if (found == m_commands.end()) return;
  switch (reply.status()) {
    case wire::STATUS_OK:
    case wire::STATUS_APPLICATION_ERROR:
    case wire::STATUS_UNKNOWN_OPERATION:
    case wire::STATUS_BAD_REQUEST: {
      if (reply.index() > m_lastIndex.load()) m_lastIndex = reply.index();
      PromisePtr<OpResult> promise = std::move(found->second.promise);
      const Clock::time_point deadline = found->second.deadline;
      m_commands.erase(found);
      OpResult result = reply.status() == wire::STATUS_OK
                            ? OpResult(Indexed<std::string>{reply.result(), reply.index(),
                                                            addressOf(connectionId)})
                            : OpResult(operationError(reply.status(), reply.error()));
      complete(std::move(promise), std::move(result), reply.event_index(), deadline);
      return;
    }
    case wire::STATUS_SESSION_EXPIRED:
      sessionExpired(text(reply.error()));
      return;
    default:
      leaderRefused(connectionId, reply.status(), reply.error(), reply.leader());
      return;
  }
}

void ClientCore::onQueryReply(std::uint64_t connectionId, std::uint64_t id,
                              const wire::OperationReply& reply) {
  auto found = m_queries.find(id);
  if (found == m_queries.end()) return;
  Query& query = found->second;
  switch (reply.status()) {
    case wire::STATUS_OK:
    case wire::STATUS_APPLICATION_ERROR:
    case wire::STATUS_UNKNOWN_OPERATION:
    case wire::STATUS_BAD_REQUEST: {
      if (reply.index() > m_lastIndex.load()) m_lastIndex = reply.index();
      PromisePtr<OpResult> promise = std::move(query.promise);
      const Clock::time_point deadline = query.deadline;
      m_queries.erase(found);
      OpResult result = reply.status() == wire::STATUS_OK
                            ? OpResult(Indexed<std::string>{reply.result(), reply.index(),
                                                            addressOf(connectionId)})
                            : OpResult(operationError(reply.status(), reply.error()));
      complete(std::move(promise), std::move(result), reply.event_index(), deadline);
      return;
    }
    case wire::STATUS_SESSION_EXPIRED:
      sessionExpired(text(reply.error()));
      return;
    default: {
      if (query.sentConnection != connectionId) return;
      query.sentConnection = 0;
      const QString error = describeAnswer(connectionId, reply.status(), reply.error());
      if (connectionId == m_leaderConnection && reply.status() == wire::STATUS_NOT_LEADER) {
        leaderFailed(error, &reply.leader());
        return;
      }
      if (const Connection* c = findConnection(connectionId);
          connectionId != m_leaderConnection && c) {
        m_failedFollowers.insert(c->address());
      }
      m_lastError = error;
      query.retryLater = true;
      QTimer::singleShot(kRetryUnavailableMs, this, [this, id] {
        auto again = m_queries.find(id);
        if (again != m_queries.end()) again->second.retryLater = false;
        schedulePump();
      });
      return;
    }
  }
}

void ClientCore::onMembershipReply(std::uint64_t connectionId, std::uint64_t id,
                                   const wire::MembershipReply& reply) {
  auto found = m_membershipOps.find(id);
  if (found == m_membershipOps.end()) return;
  MembershipOp& op = found->second;
  switch (reply.status()) {
    case wire::STATUS_OK: {
      learnMembers(reply.members());
      PromisePtr<Expected<MembershipResult>> promise = std::move(op.promise);
      m_membershipOps.erase(found);
      fulfil(promise, Expected<MembershipResult>(MembershipResult{reply.index(), reply.node_id(),
                                                                  toMembers(reply.members())}));
      return;
    }
    case wire::STATUS_NOT_LEADER:
    case wire::STATUS_UNAVAILABLE: {
      if (op.sentConnection != connectionId) return;
      op.sentConnection = 0;
      const QString error = describeAnswer(connectionId, reply.status(), reply.error());
      if (reply.status() == wire::STATUS_NOT_LEADER && connectionId == m_leaderConnection) {
        leaderFailed(error, &reply.leader());
        return;
      }
      m_lastError = error;
      op.retryLater = true;
      QTimer::singleShot(kRetryUnavailableMs * 2, this, [this, id] {
        auto again = m_membershipOps.find(id);
        if (again != m_membershipOps.end()) again->second.retryLater = false;
        schedulePump();
      });
      return;
    }
    default: {
      PromisePtr<Expected<MembershipResult>> promise = std::move(op.promise);
      m_membershipOps.erase(found);
      fulfil(promise, Expected<MembershipResult>(operationError(
                          reply.status() == wire::STATUS_UNSPECIFIED ? wire::STATUS_BAD_REQUEST
                                                                     : reply.status(),
                          reply.error())));
      return;
    }
  }
}

void ClientCore::onCloseReply(std::uint64_t connectionId, const wire::CloseSessionReply& reply) {
  if (m_state != SessionState::Closing) return;
  switch (reply.status()) {
    case wire::STATUS_OK:
    case wire::STATUS_SESSION_EXPIRED:
      finishClose(Expected<void>());
      return;
    case wire::STATUS_NOT_LEADER:
    case wire::STATUS_UNAVAILABLE:
      leaderRefused(connectionId, reply.status(), reply.error(), reply.leader());
      return;
    default:
      finishClose(Expected<void>(operationError(reply.status(), reply.error())));
      return;
  }
}

void ClientCore::onSessionEvent(const wire::SessionEvent& event) {
  if (m_state != SessionState::Open || event.session_id() != m_sessionId.load()) return;
  if (event.event_index() <= m_lastEvent) return;  // a duplicate
  if (event.previous_index() != m_lastEvent) {
    // Missed events: ignore this one and ask for a resend.
    keepAliveSoon();
    return;
  }
  m_lastEvent = event.event_index();
  std::vector<Client::EventHandler> handlers;
  {
    std::lock_guard lock(m_handlersMutex);
    auto [first, last] = m_handlers.equal_range(event.name());
    for (auto it = first; it != last; ++it) handlers.push_back(it->second);
  }
  for (const Client::EventHandler& handler : handlers) {
    try {
      handler(event.payload());
    } catch (...) {
      // A throwing handler must not take the client's thread down.
    }
  }
  releaseHeld();
}

// ---------------------------------------------------------------------------
// Session
// ---------------------------------------------------------------------------

void ClientCore::startRegistration() {
  if (m_state != SessionState::None) return;
  m_state = SessionState::Registering;
  m_registrationConnection = 0;
  m_idle = false;
  schedulePump();
}

void ClientCore::sessionExpired(const QString& error) {
  if (m_state == SessionState::Closing) {
    finishClose(Expected<void>());
    return;
  }
  if (m_state != SessionState::Open) return;
  const Error expired{ErrorCode::SessionExpired,
                      "session " + std::to_string(m_sessionId.load()) + " expired" +
                          (error.isEmpty() ? std::string() : ": " + error.toStdString())};
  m_sessionId = 0;
  m_bound = false;
  m_bindingSent = false;
  m_keepAliveDue = false;
  m_keepAliveTimer->stop();
  for (auto& [sequence, command] : std::exchange(m_commands, {})) {
    fulfil(command.promise, OpResult(expired));
  }
  m_nextSequence = 1;
  // Results already received are known: hand them out.
  for (auto& [id, held] : std::exchange(m_held, {})) fulfil(held.promise, std::move(held.result));
  m_lastEvent = 0;
  if (m_options.recovery == RecoveryStrategy::Close) {
    m_state = SessionState::Expired;
    for (auto& [id, query] : std::exchange(m_queries, {})) fulfil(query.promise, OpResult(expired));
    return;
  }
  // Queries are reads: they are sent again within the new session.
  for (auto& [id, query] : m_queries) query.sentConnection = 0;
  m_state = SessionState::None;
  startRegistration();
}

void ClientCore::keepAliveTick() {
  if (m_state != SessionState::Open) return;
  m_idle = false;
  m_failedFollowers.clear();
  m_keepAliveDue = true;
  schedulePump();
}

void ClientCore::keepAliveSoon() {
  if (m_keepAliveSoon) return;
  m_keepAliveSoon = true;
  QTimer::singleShot(kKeepAliveSoonMs, this, [this] {
    m_keepAliveSoon = false;
    if (m_state != SessionState::Open) return;
    m_keepAliveDue = true;
    schedulePump();
  });
}

std::uint64_t ClientCore::acknowledgedSequence() const {
  return m_commands.empty() ? m_nextSequence - 1 : m_commands.begin()->first - 1;
}

void ClientCore::complete(PromisePtr<OpResult> promise, OpResult result, Index eventIndex,
                          Clock::time_point deadline) {
  if (!promise) return;
  if (eventIndex <= m_lastEvent || m_state != SessionState::Open) {
    fulfil(promise, std::move(result));
    return;
  }
  const std::uint64_t id = m_nextLocalId++;
  m_held.emplace(id, Held{std::move(promise), std::move(result), eventIndex});
  QTimer::singleShot(std::min(kHeldResendMs, remainingMs(deadline)), this, [this, id] {
    if (m_held.count(id)) keepAliveSoon();
  });
  QTimer::singleShot(remainingMs(deadline), this, [this, id] {
    // Never beyond the operation's timeout: the result is known.
    auto found = m_held.find(id);
    if (found == m_held.end()) return;
    Held held = std::move(found->second);
    m_held.erase(found);
    fulfil(held.promise, std::move(held.result));
  });
}

void ClientCore::releaseHeld() {
  for (auto it = m_held.begin(); it != m_held.end();) {
    if (it->second.eventIndex <= m_lastEvent) {
      Held held = std::move(it->second);
      it = m_held.erase(it);
      fulfil(held.promise, std::move(held.result));
    } else {
      ++it;
    }
  }
}

void ClientCore::failOperations(const Error& error) {
  for (auto& promise : std::exchange(m_connectPromises, {})) fulfil(promise, Expected<void>(error));
  for (auto& [sequence, command] : std::exchange(m_commands, {})) {
    fulfil(command.promise, OpResult(error));
  }
  for (auto& [id, query] : std::exchange(m_queries, {})) fulfil(query.promise, OpResult(error));
  for (auto& [id, held] : std::exchange(m_held, {})) fulfil(held.promise, OpResult(error));
  for (auto& [id, op] : std::exchange(m_membershipOps, {})) {
    fulfil(op.promise, Expected<MembershipResult>(error));
  }
}

void ClientCore::finishClose(Expected<void> result) {
  if (m_state == SessionState::Closed) return;
  m_state = SessionState::Closed;
  m_sessionId = 0;
  m_keepAliveTimer->stop();
  failOperations(Error{ErrorCode::Closed, "the client was closed"});
  std::vector<Connection*> connections;
  for (const auto& [id, connection] : m_connections) connections.push_back(connection.get());
  for (Connection* connection : connections) {
    closeConnection(connection, QStringLiteral("the client was closed"));
  }
  for (auto& weak : std::exchange(m_statusAttempts, {})) {
    std::shared_ptr<StatusAttempt> attempt = weak.lock();
    if (!attempt || attempt->done) continue;
    attempt->done = true;
    attempt->callback(Error{ErrorCode::Closed, "the client was closed"});
  }
  for (auto& promise : std::exchange(m_closePromises, {})) fulfil(promise, result);
}

// ---------------------------------------------------------------------------
// Entry points (posted by Client)
// ---------------------------------------------------------------------------

void ClientCore::connectSession(PromisePtr<Expected<void>> promise) {
  switch (m_state) {
    case SessionState::Closed:
    case SessionState::Closing:
      fulfil(promise, Expected<void>(Error{ErrorCode::Closed, "the client was closed"}));
      return;
    case SessionState::Expired:
      fulfil(promise,
             Expected<void>(Error{ErrorCode::SessionExpired, "the session expired (closed)"}));
      return;
    case SessionState::Open:
      fulfil(promise, Expected<void>());
      return;
    case SessionState::None:
    case SessionState::Registering:
      break;
  }
  m_connectPromises.push_back(promise);
  m_idle = false;
  startRegistration();
  schedulePump();
  QTimer::singleShot(static_cast<int>(m_options.timeout.count()), this, [this, promise] {
    auto found = std::find(m_connectPromises.begin(), m_connectPromises.end(), promise);
    if (found == m_connectPromises.end()) return;
    m_connectPromises.erase(found);
    fulfil(promise, Expected<void>(unavailable(QStringLiteral("no session registered"))));
  });
}

void ClientCore::closeSession(PromisePtr<Expected<void>> promise) {
  if (m_state == SessionState::Closed) {
    fulfil(promise, Expected<void>());
    return;
  }
  m_closePromises.push_back(promise);
  if (m_state == SessionState::Closing) return;
  const Error closed{ErrorCode::Closed, "the client was closed"};
  failOperations(closed);
  if (m_state != SessionState::Open) {
    finishClose(Expected<void>());
    return;
  }
  m_state = SessionState::Closing;
  m_idle = false;
  m_closeSentConnection = 0;
  m_keepAliveTimer->stop();
  QTimer::singleShot(static_cast<int>(m_options.timeout.count()), this, [this] {
    if (m_state == SessionState::Closing) {
      finishClose(Expected<void>(unavailable(QStringLiteral("the session was not closed"))));
    }
  });
  schedulePump();
}

void ClientCore::submit(TypeId typeId, std::string bytes, OperationKind kind,
                        Consistency consistency, PromisePtr<OpResult> promise) {
  if (m_state == SessionState::Closed || m_state == SessionState::Closing) {
    fulfil(promise, OpResult(Error{ErrorCode::Closed, "the client was closed"}));
    return;
  }
  if (m_state == SessionState::Expired) {
    fulfil(promise, OpResult(Error{ErrorCode::SessionExpired, "the session expired"}));
    return;
  }
  m_idle = false;
  startRegistration();
  const Clock::time_point deadline = Clock::now() + m_options.timeout;
  if (kind == OperationKind::Command) {
    const std::uint64_t sequence = m_nextSequence++;
    m_commands.emplace(sequence,
                       Command{sequence, typeId, std::move(bytes), promise, 0, {}, deadline});
    m_expiries.push_back(Expiry{deadline, OperationKind::Command, sequence});
  } else {
    const std::uint64_t id = m_nextLocalId++;
    Query query;
    query.typeId = typeId;
    query.payload = std::move(bytes);
    query.consistency = consistency;
    query.promise = promise;
    query.deadline = deadline;
    m_queries.emplace(id, std::move(query));
    m_expiries.push_back(Expiry{deadline, OperationKind::Query, id});
  }
  if (!m_expiryTimer->isActive()) armExpiryTimer();
  schedulePump();
}

void ClientCore::armExpiryTimer() {
  if (m_expiries.empty()) return;
  // One millisecond late rather than early: remainingMs() rounds down.
  m_expiryTimer->start(remainingMs(m_expiries.front().deadline) + 1);
}

void ClientCore::expireOperations() {
  const Clock::time_point now = Clock::now();
  while (!m_expiries.empty() && m_expiries.front().deadline <= now) {
    const Expiry expiry = m_expiries.front();
    m_expiries.pop_front();
    if (expiry.kind == OperationKind::Command) {
      auto found = m_commands.find(expiry.key);
      // Sequences restart with a new session: the deadline tells this
      // command from a later one with the same sequence.
      if (found == m_commands.end() || found->second.deadline != expiry.deadline ||
          !found->second.promise) {
        continue;
      }
      // The caller gives up, but the command keeps its sequence number and is
      // still resent, so that later commands of the session are not held
      // behind a gap.
      PromisePtr<OpResult> expired = std::move(found->second.promise);
      found->second.promise.reset();
      fulfil(expired,
             OpResult(unavailable(QStringLiteral("no result for command %1").arg(expiry.key))));
    } else {
      auto found = m_queries.find(expiry.key);
      if (found == m_queries.end()) continue;
      PromisePtr<OpResult> expired = std::move(found->second.promise);
      m_queries.erase(found);
      fulfil(expired, OpResult(unavailable(QStringLiteral("no result for the query"))));
    }
  }
  armExpiryTimer();
}

void ClientCore::membership(MembershipChange change, QString address,
                            PromisePtr<Expected<MembershipResult>> promise) {
  if (m_state == SessionState::Closed || m_state == SessionState::Closing) {
    fulfil(promise, Expected<MembershipResult>(Error{ErrorCode::Closed, "the client was closed"}));
    return;
  }
  m_idle = false;
  const std::uint64_t id = m_nextLocalId++;
  MembershipOp op;
  op.change = change;
  op.address = std::move(address);
  op.promise = promise;
  m_membershipOps.emplace(id, std::move(op));
  QTimer::singleShot(static_cast<int>(m_options.timeout.count()), this, [this, id] {
    auto found = m_membershipOps.find(id);
    if (found == m_membershipOps.end()) return;
    PromisePtr<Expected<MembershipResult>> expired = std::move(found->second.promise);
    m_membershipOps.erase(found);
    fulfil(expired, Expected<MembershipResult>(
                        unavailable(QStringLiteral("the membership change was not committed"))));
  });
  schedulePump();
}

void ClientCore::status(QString address, PromisePtr<Expected<ServerStatus>> promise) {
  if (m_state == SessionState::Closed) {
    fulfil(promise, Expected<ServerStatus>(Error{ErrorCode::Closed, "the client was closed"}));
    return;
  }
  statusOf(address, Clock::now() + m_options.timeout, true,
           [promise](Expected<ServerStatus> result) { fulfil(promise, std::move(result)); });
}

void ClientCore::statusAll(PromisePtr<Expected<std::vector<ServerStatus>>> promise) {
  using Result = Expected<std::vector<ServerStatus>>;
  if (m_state == SessionState::Closed) {
    fulfil(promise, Result(Error{ErrorCode::Closed, "the client was closed"}));
    return;
  }
  struct State {
    PromisePtr<Result> promise;
    int pending = 0;
    bool listed = false;
    bool done = false;
    std::vector<MemberInfo> members;
    std::map<QString, ServerStatus> answers;  // by dialed and advertised address
    std::vector<std::optional<ServerStatus>> entries;
    int entriesPending = 0;
    QString lastError;
  };
  auto state = std::make_shared<State>();
  state->promise = promise;
  const Clock::time_point deadline = Clock::now() + m_options.timeout;

  const auto finishIfComplete = [state] {
    if (state->done || state->entriesPending > 0) return;
    state->done = true;
    std::vector<ServerStatus> out;
    for (auto& entry : state->entries) out.push_back(std::move(*entry));
    fulfil(state->promise, Result(std::move(out)));
  };
  const auto list = [this, state, deadline, finishIfComplete](const ServerStatus& first) {
    state->listed = true;
    state->members = first.members;
    if (state->members.empty()) state->members.push_back(MemberInfo{first.id, first.address, true});
    state->entries.resize(state->members.size());
    state->entriesPending = static_cast<int>(state->members.size());
    for (std::size_t i = 0; i < state->members.size(); ++i) {
      const MemberInfo& member = state->members[i];
      auto known = state->answers.find(member.address);
      if (known != state->answers.end()) {
        state->entries[i] = known->second;
        --state->entriesPending;
        continue;
      }
      if (member.address.isEmpty()) {
        ServerStatus missing;
        missing.id = member.id;
        missing.error = QStringLiteral("address unknown");
        state->entries[i] = std::move(missing);
        --state->entriesPending;
        continue;
      }
      statusOf(member.address, deadline, false,
               [state, i, member, finishIfComplete](Expected<ServerStatus> result) {
                 if (state->done) return;
                 if (result) {
                   state->entries[i] = std::move(*result);
                 } else {
                   ServerStatus missing;
                   missing.id = member.id;
                   missing.address = member.address;
                   missing.error = QString::fromStdString(result.error().message);
                   state->entries[i] = std::move(missing);
                 }
                 --state->entriesPending;
                 finishIfComplete();
               });
    }
    finishIfComplete();
  };

  state->pending = static_cast<int>(m_members.size());
  for (const QString& member : m_members) {
    statusOf(member, deadline, true, [state, member, list](Expected<ServerStatus> result) {
      --state->pending;
      if (state->done || state->listed) return;
      if (result) {
        state->answers[member] = *result;
        state->answers[result->address] = *result;
        list(*result);
        return;
      }
      state->lastError = QString::fromStdString(result.error().message);
      if (state->pending == 0) {
        state->done = true;
        fulfil(state->promise,
               Result(Error{ErrorCode::Unavailable,
                            "no member answered: " + state->lastError.toStdString()}));
      }
    });
  }
}

void ClientCore::statusOf(const QString& address, Clock::time_point deadline, bool retry,
                          StatusCallback callback) {
  auto attempt = std::make_shared<StatusAttempt>();
  attempt->address = address;
  attempt->deadline = deadline;
  attempt->retry = retry;
  attempt->callback = std::move(callback);
  std::erase_if(m_statusAttempts, [](const std::weak_ptr<StatusAttempt>& weak) {
    const std::shared_ptr<StatusAttempt> other = weak.lock();
    return !other || other->done;
  });
  m_statusAttempts.push_back(attempt);
  QTimer::singleShot(remainingMs(deadline), this, [this, attempt] {
    if (attempt->done) return;
    attempt->done = true;
    QString why = QStringLiteral("no status from %1 within %2 ms")
                      .arg(attempt->address)
                      .arg(m_options.timeout.count());
    if (!attempt->lastError.isEmpty()) why += QStringLiteral(": ") + attempt->lastError;
    attempt->callback(Error{ErrorCode::Unavailable, why.toStdString()});
  });
  tryStatus(attempt);
}

void ClientCore::tryStatus(std::shared_ptr<StatusAttempt> attempt) {
  if (attempt->done || m_state == SessionState::Closed) return;
  ++attempt->round;
  const auto failed = [this, attempt](const QString& error) {
    if (attempt->done) return;
    attempt->lastError = error;
    const std::optional<std::chrono::milliseconds> delay =
        attempt->retry ? m_options.connection.delayAfterRound(attempt->round) : std::nullopt;
    if (!delay) {
      attempt->done = true;
      attempt->callback(Error{ErrorCode::Unavailable, error.toStdString()});
      return;
    }
    QTimer::singleShot(static_cast<int>(delay->count()), this,
                       [this, attempt] { tryStatus(attempt); });
  };
  const auto ask = [this, attempt, failed](Connection* connection) {
    wire::Frame frame;
    frame.mutable_status();
    send(connection, frame, [attempt, failed](const wire::Frame* reply, const QString& error) {
      if (attempt->done) return;
      if (!reply) {
        failed(error);
        return;
      }
      attempt->done = true;
      attempt->callback(toStatus(reply->status_reply()));
    });
  };
  connectionTo(attempt->address)
      ->whenOpen(this, [ask, failed](Connection* opened, const QString& error) {
        if (opened) {
          ask(opened);
        } else {
          failed(error);
        }
      });
}

void ClientCore::shutdown() {
  if (m_state != SessionState::Closed) {
    m_state = SessionState::Closing;
    finishClose(Expected<void>());
  }
  m_connections.clear();
  m_graveyard.clear();
}

void ClientCore::addEventHandler(std::string name, Client::EventHandler handler) {
  std::lock_guard lock(m_handlersMutex);
  m_handlers.emplace(std::move(name), std::move(handler));
}

Error ClientCore::unavailable(const QString& what) const {
  QString message = QStringLiteral("%1 within %2 ms").arg(what).arg(m_options.timeout.count());
  if (!m_lastError.isEmpty()) message += QStringLiteral(" (last error: %1)").arg(m_lastError);
  return Error{ErrorCode::Unavailable, message.toStdString()};
}

int ClientCore::remainingMs(Clock::time_point deadline) const {
  const auto left =
      std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return static_cast<int>(std::max<std::int64_t>(0, left));
}

}  // namespace copycat::client
