#include "engine/server/client_service.h"

#include <algorithm>
#include <utility>

#include "engine/protocol/convert.h"
#include "engine/protocol/copycat.pb.h"
#include "engine/server/logging.h"
#include "engine/server/server_log.pb.h"
#include "engine/server/state_machine_executor.h"

namespace copycat::server {

namespace {

/// A command waiting for an earlier sequence number is answered UNAVAILABLE
/// after this long (the client then resends its commands in order).
constexpr qint64 kHoldTimeoutMs = 2000;
/// A join or leave not done by then is answered UNAVAILABLE.
constexpr qint64 kChangeTimeoutMs = 60000;
/// Upper bound of a session timeout a client may ask for.
constexpr std::uint64_t kMaxSessionTimeoutMs = 24ull * 3600 * 1000;

wire::Status statusOf(const Outcome& outcome) {
  if (outcome.result.ok()) return wire::STATUS_OK;
  switch (outcome.result.error().code) {
    case ErrorCode::UnknownOperation:
      return wire::STATUS_UNKNOWN_OPERATION;
    case ErrorCode::MalformedOperation:
    case ErrorCode::IllegalState:
      return wire::STATUS_BAD_REQUEST;
    case ErrorCode::SessionExpired:
      return wire::STATUS_SESSION_EXPIRED;
    case ErrorCode::Unavailable:
    case ErrorCode::Closed:
      return wire::STATUS_UNAVAILABLE;
    case ErrorCode::ApplicationError:
    case ErrorCode::MalformedResult:
    case ErrorCode::MalformedSnapshot:
    case ErrorCode::InternalError:
      return wire::STATUS_APPLICATION_ERROR;
  }
  return wire::STATUS_APPLICATION_ERROR;
}

wire::Status statusOf(raft::ProposeResult result) {
  switch (result) {
    case raft::ProposeResult::Accepted:
      return wire::STATUS_OK;
    case raft::ProposeResult::NotLeader:
      return wire::STATUS_NOT_LEADER;
    case raft::ProposeResult::InvalidChange:
      return wire::STATUS_BAD_REQUEST;
    case raft::ProposeResult::TransferInProgress:
    case raft::ProposeResult::ChangeInProgress:
      return wire::STATUS_UNAVAILABLE;
  }
  return wire::STATUS_UNAVAILABLE;
}

}  // namespace

// --- EventRelay --------------------------------------------------------------

void EventRelay::attach(Target target) {
  std::lock_guard lock(m_mutex);
  m_target = std::move(target);
}

void EventRelay::detach() {
  std::lock_guard lock(m_mutex);
  m_target = nullptr;
}

void EventRelay::deliver(SessionId session, std::vector<StoredEvent> events) {
  std::lock_guard lock(m_mutex);
  if (m_target) m_target(session, std::move(events));
}

// --- ClientService -------------------------------------------------------------

ClientService::ClientService(RaftRuntime& runtime, StateMachineExecutor& executor,
                             std::shared_ptr<const Serializer> serializer, Clock clock,
                             std::shared_ptr<EventRelay> events)
    : m_runtime(runtime),
      m_executor(executor),
      m_serializer(std::move(serializer)),
      m_clock(std::move(clock)),
      m_events(std::move(events)) {
  m_uptime.start();
  if (m_events) {
    m_events->attach([this](SessionId session, std::vector<StoredEvent> published) {
      post([this, session, published = std::move(published)] { pushEvents(session, published); });
    });
  }
}

ClientService::~ClientService() {
  if (m_events) m_events->detach();
}

void ClientService::post(std::function<void()> task) {
  QMetaObject::invokeMethod(this, std::move(task), Qt::QueuedConnection);
}

bool ClientService::isLeader() const { return m_runtime.roleNow() == raft::Role::Leader; }

void ClientService::fillLeader(wire::LeaderHint* hint) const {
  const raft::NodeId leader = m_runtime.leaderNow();
  hint->set_node_id(leader);
  if (leader != raft::kNoNode) hint->set_address(m_runtime.addressOf(leader).toStdString());
}

template <class Members>
void ClientService::fillMembers(Members* members) const {
  const raft::Membership membership = m_runtime.statusNow().membership;
  auto add = [&](raft::NodeId id, wire::MemberKind kind) {
    wire::Member* member = members->Add();
    member->set_node_id(id);
    member->set_address(m_runtime.addressOf(id).toStdString());
    member->set_kind(kind);
  };
  for (raft::NodeId id : membership.voters) add(id, wire::MEMBER_KIND_VOTER);
  for (raft::NodeId id : membership.learners) add(id, wire::MEMBER_KIND_LEARNER);
}

void ClientService::send(quint64 connection, const wire::Frame& frame) {
  m_runtime.sendToClient(connection, frame);
}

void ClientService::bind(SessionId session, quint64 connection) {
  if (session != 0) m_bindings[session] = connection;
}

// --- Dispatch ----------------------------------------------------------------

void ClientService::onClientFrame(quint64 connection, wire::Frame& frame) {
  switch (frame.body_case()) {
    case wire::Frame::kRegisterSession:
      onRegister(connection, frame);
      break;
    case wire::Frame::kKeepAlive:
      onKeepAlive(connection, frame);
      break;
    case wire::Frame::kCloseSession:
      onClose(connection, frame);
      break;
    case wire::Frame::kCommand:
      onCommand(connection,
                std::make_shared<wire::CommandRequest>(std::move(*frame.mutable_command())));
      break;
    case wire::Frame::kQuery:
      onQuery(connection, frame);
      break;
    case wire::Frame::kStatus:
      onStatus(connection, frame);
      break;
    case wire::Frame::kJoin:
      onMembership(connection, frame, ChangeKind::Join);
      break;
    case wire::Frame::kLeave:
      onMembership(connection, frame, ChangeKind::Leave);
      break;
    case wire::Frame::kPromote:
      onMembership(connection, frame, ChangeKind::Promote);
      break;
    case wire::Frame::kDemote:
      onMembership(connection, frame, ChangeKind::Demote);
      break;
    default:
      break;  // PeerTransport lets only the bodies above through
  }
}

void ClientService::onClientClosed(quint64 connection) {
  for (auto it = m_bindings.begin(); it != m_bindings.end();) {
    it = it->second == connection ? m_bindings.erase(it) : std::next(it);
  }
  for (auto& [session, order] : m_orders) {
    for (auto it = order.held.begin(); it != order.held.end();) {
      it = it->second.connection == connection ? order.held.erase(it) : std::next(it);
    }
  }
}

void ClientService::onRoleChanged(raft::Role role, raft::Term, raft::NodeId) {
  if (role == raft::Role::Leader) return;
  // Held commands go back to the client, which resends them to the new
  // leader; the ordering state belongs to this leadership only.
  auto orders = std::move(m_orders);
  m_orders.clear();
  for (auto& [session, order] : orders) {
    for (auto& [sequence, held] : order.held) {
      replyNotLeader(held.connection, held.request->request_id());
    }
  }
  auto changes = std::move(m_changes);
  m_changes.clear();
  for (auto& [node, change] : changes) {
    finishChange(change, wire::STATUS_NOT_LEADER, "leadership lost");
  }
}

void ClientService::onTick() {
  const qint64 now = m_uptime.elapsed();
  for (auto& [session, order] : m_orders) {
    for (auto it = order.held.begin(); it != order.held.end();) {
      if (it->second.deadlineMs > now) {
        ++it;
        continue;
      }
      Outcome outcome;
      outcome.result =
          Error{ErrorCode::Unavailable,
                "command " + std::to_string(it->first) + " of session " + std::to_string(session) +
                    " waited too long for command " + std::to_string(order.highestProposed + 1)};
      replyOperation(it->second.connection, it->second.request->request_id(), outcome);
      it = order.held.erase(it);
    }
  }
  advanceChanges();
}

// --- Sessions ----------------------------------------------------------------

bool ClientService::proposeEntry(std::string data, std::function<void(Outcome)> done) {
  StateMachineExecutor* executor = &m_executor;
  const raft::ProposeResult result = m_runtime.proposeNow(
      std::move(data),
      [this, executor, done = std::move(done)](raft::Index index, raft::Term term) {
        executor->enqueueWaiter(index, term, [this, done](Outcome outcome) {
          post([done, outcome = std::move(outcome)] { done(outcome); });
        });
      });
  return result == raft::ProposeResult::Accepted;
}

void ClientService::replyNotLeader(quint64 connection, std::uint64_t requestId) {
  wire::Frame frame;
  wire::OperationReply* reply = frame.mutable_operation_reply();
  reply->set_request_id(requestId);
  reply->set_status(wire::STATUS_NOT_LEADER);
  reply->set_error("not the leader");
  fillLeader(reply->mutable_leader());
  send(connection, frame);
}

void ClientService::onRegister(quint64 connection, const wire::Frame& frame) {
  const wire::RegisterSessionRequest& request = frame.register_session();
  const std::uint64_t requestId = request.request_id();
  std::uint64_t timeout =
      request.timeout_ms() == 0 ? m_runtime.config().sessionTimeoutMs : request.timeout_ms();
  timeout = std::min(timeout, kMaxSessionTimeoutMs);
  auto reply = [this, connection, requestId, timeout](wire::Status status, const std::string& error,
                                                      SessionId session) {
    wire::Frame answer;
    wire::RegisterSessionReply* out = answer.mutable_register_session_reply();
    out->set_request_id(requestId);
    out->set_status(status);
    out->set_error(error);
    out->set_session_id(session);
    out->set_timeout_ms(timeout);
    fillLeader(out->mutable_leader());
    fillMembers(out->mutable_members());
    send(connection, answer);
  };
  if (!isLeader()) {
    reply(wire::STATUS_NOT_LEADER, "not the leader", 0);
    return;
  }
  serverlog::LogEntry entry;
  entry.set_timestamp_ms(static_cast<std::uint64_t>(m_clock()));
  entry.mutable_register_session()->set_client_id(request.client_id());
  entry.mutable_register_session()->set_timeout_ms(timeout);
  const bool proposed =
      proposeEntry(entry.SerializeAsString(), [this, connection, reply](const Outcome& outcome) {
        if (!outcome.result.ok()) {
          reply(statusOf(outcome), outcome.result.error().message, 0);
          return;
        }
        bind(outcome.index, connection);
        reply(wire::STATUS_OK, {}, outcome.index);
      });
  if (!proposed) reply(wire::STATUS_NOT_LEADER, "not the leader", 0);
}

void ClientService::onKeepAlive(quint64 connection, const wire::Frame& frame) {
  const wire::KeepAliveRequest& request = frame.keep_alive();
  const std::uint64_t requestId = request.request_id();
  const SessionId session = request.session_id();
  auto reply = [this, connection, requestId](wire::Status status, const std::string& error) {
    wire::Frame answer;
    wire::KeepAliveReply* out = answer.mutable_keep_alive_reply();
    out->set_request_id(requestId);
    out->set_status(status);
    out->set_error(error);
    fillLeader(out->mutable_leader());
    fillMembers(out->mutable_members());
    send(connection, answer);
  };
  if (!isLeader()) {
    reply(wire::STATUS_NOT_LEADER, "not the leader");
    return;
  }
  if (session == 0) {
    reply(wire::STATUS_SESSION_EXPIRED, "no session id");
    return;
  }
  // This connection now receives the session's events: first those the
  // client has not acknowledged.
  bind(session, connection);
  m_executor.enqueueEventsAfter(
      session, request.event_index(), [this, session](std::vector<StoredEvent> events) {
        post([this, session, events = std::move(events)] { pushEvents(session, events); });
      });
  serverlog::LogEntry entry;
  entry.set_timestamp_ms(static_cast<std::uint64_t>(m_clock()));
  serverlog::KeepAlive* keepAlive = entry.mutable_keep_alive();
  keepAlive->set_session(session);
  keepAlive->set_command_sequence(request.command_sequence());
  keepAlive->set_event_index(request.event_index());
  const bool proposed = proposeEntry(entry.SerializeAsString(), [reply](const Outcome& outcome) {
    if (outcome.result.ok()) {
      reply(wire::STATUS_OK, {});
    } else {
      reply(statusOf(outcome), outcome.result.error().message);
    }
  });
  if (!proposed) reply(wire::STATUS_NOT_LEADER, "not the leader");
}

void ClientService::onClose(quint64 connection, const wire::Frame& frame) {
  const wire::CloseSessionRequest& request = frame.close_session();
  const std::uint64_t requestId = request.request_id();
  const SessionId session = request.session_id();
  auto reply = [this, connection, requestId](wire::Status status, const std::string& error) {
    wire::Frame answer;
    wire::CloseSessionReply* out = answer.mutable_close_session_reply();
    out->set_request_id(requestId);
    out->set_status(status);
    out->set_error(error);
    fillLeader(out->mutable_leader());
    send(connection, answer);
  };
  if (!isLeader()) {
    reply(wire::STATUS_NOT_LEADER, "not the leader");
    return;
  }
  serverlog::LogEntry entry;
  entry.set_timestamp_ms(static_cast<std::uint64_t>(m_clock()));
  entry.mutable_close_session()->set_session(session);
  const bool proposed =
      proposeEntry(entry.SerializeAsString(), [this, reply, session](const Outcome& outcome) {
        m_bindings.erase(session);
        m_orders.erase(session);
        if (outcome.result.ok()) {
          reply(wire::STATUS_OK, {});
        } else {
          reply(statusOf(outcome), outcome.result.error().message);
        }
      });
  if (!proposed) reply(wire::STATUS_NOT_LEADER, "not the leader");
}

// --- Operations ----------------------------------------------------------------

void ClientService::replyOperation(quint64 connection, std::uint64_t requestId,
                                   const Outcome& outcome) {
  wire::Frame frame;
  wire::OperationReply* reply = frame.mutable_operation_reply();
  reply->set_request_id(requestId);
  reply->set_status(statusOf(outcome));
  if (outcome.result.ok()) {
    reply->set_result(*outcome.result);
  } else {
    reply->set_error(outcome.result.error().message);
  }
  reply->set_index(outcome.index);
  reply->set_event_index(outcome.eventIndex);
  fillLeader(reply->mutable_leader());
  send(connection, frame);
}

void ClientService::onCommand(quint64 connection, std::shared_ptr<wire::CommandRequest> request) {
  const std::uint64_t requestId = request->request_id();
  const SessionId session = request->session_id();
  auto refuse = [&](ErrorCode code, std::string message) {
    Outcome outcome;
    outcome.result = Error{code, std::move(message)};
    replyOperation(connection, requestId, outcome);
  };
  if (session == 0 || request->sequence() == 0) {
    refuse(ErrorCode::MalformedOperation,
           "a command needs a session id and a sequence number >= 1");
    return;
  }
  if (!m_serializer->contains(request->type_id())) {
    refuse(ErrorCode::UnknownOperation,
           "operation type id " + std::to_string(request->type_id()) + " is not registered");
    return;
  }
  if (!isLeader()) {
    replyNotLeader(connection, requestId);
    return;
  }
  bind(session, connection);
  SessionOrder& order = m_orders[session];
  const std::uint64_t sequence = request->sequence();
  if (order.highestProposed != 0 && sequence > order.highestProposed + 1) {
    // An earlier command has not arrived yet: hold this one.
    HeldCommand& held = order.held[sequence];
    if (held.request) {
      refuse(ErrorCode::Unavailable, "superseded by a retry of the same command");
      return;
    }
    held.connection = connection;
    held.request = std::move(request);
    held.deadlineMs = m_uptime.elapsed() + kHoldTimeoutMs;
    return;
  }
  proposeCommand(connection, *request);
  order.highestProposed = std::max(order.highestProposed, sequence);
  // Release the held commands that are next in line now.
  while (!order.held.empty() && order.held.begin()->first <= order.highestProposed + 1) {
    auto node = order.held.extract(order.held.begin());
    proposeCommand(node.mapped().connection, *node.mapped().request);
    order.highestProposed = std::max(order.highestProposed, node.key());
  }
}

void ClientService::proposeCommand(quint64 connection, const wire::CommandRequest& request) {
  const std::uint64_t requestId = request.request_id();
  std::string data =
      encodeLogOperation(m_clock(), request.session_id(), request.sequence(), request.type_id(),
                         request.payload(), request.acknowledged_sequence());
  const bool proposed =
      proposeEntry(std::move(data), [this, connection, requestId](const Outcome& outcome) {
        replyOperation(connection, requestId, outcome);
      });
  if (!proposed) replyNotLeader(connection, requestId);
}

void ClientService::onQuery(quint64 connection, const wire::Frame& frame) {
  const wire::QueryRequest& request = frame.query();
  const std::uint64_t requestId = request.request_id();
  auto refuse = [&](ErrorCode code, std::string message) {
    Outcome outcome;
    outcome.result = Error{code, std::move(message)};
    replyOperation(connection, requestId, outcome);
  };
  const wire::Consistency consistency = request.consistency();
  if (consistency != wire::CONSISTENCY_LINEARIZABLE &&
      consistency != wire::CONSISTENCY_LINEARIZABLE_LEASE &&
      consistency != wire::CONSISTENCY_SEQUENTIAL) {
    refuse(ErrorCode::MalformedOperation,
           "invalid consistency " + std::to_string(static_cast<int>(consistency)));
    return;
  }
  if (!m_serializer->contains(request.type_id())) {
    refuse(ErrorCode::UnknownOperation,
           "operation type id " + std::to_string(request.type_id()) + " is not registered");
    return;
  }
  const SessionId session = request.session_id();
  // Never older than what the client saw, its own session included.
  const Index minIndex = std::max<Index>(request.last_index(), session);
  auto serve = [this, connection, requestId, session, sequence = request.sequence(),
                typeId = request.type_id(), payload = request.payload()](Index index) mutable {
    m_executor.enqueueRead(index, session, sequence, typeId, std::move(payload),
                           [this, connection, requestId](Outcome outcome) {
                             post([this, connection, requestId, outcome = std::move(outcome)] {
                               replyOperation(connection, requestId, outcome);
                             });
                           });
  };
  if (consistency == wire::CONSISTENCY_SEQUENTIAL) {
    m_runtime.handOutHeldEntries();
    serve(minIndex);
    return;
  }
  if (!isLeader()) {
    replyNotLeader(connection, requestId);
    return;
  }
  const raft::ProposeResult result = m_runtime.readIndexNow(
      consistency == wire::CONSISTENCY_LINEARIZABLE_LEASE,
      [this, connection, requestId, minIndex, serve = std::move(serve)](
          std::optional<raft::Index> index, const QString& error) mutable {
        if (!index) {
          Outcome outcome;
          outcome.result = Error{ErrorCode::Unavailable, error.toStdString()};
          replyOperation(connection, requestId, outcome);
          return;
        }
        serve(std::max(*index, minIndex));
      });
  if (result != raft::ProposeResult::Accepted) replyNotLeader(connection, requestId);
}

void ClientService::pushEvents(SessionId session, const std::vector<StoredEvent>& events) {
  auto binding = m_bindings.find(session);
  if (binding == m_bindings.end()) return;
  for (const StoredEvent& event : events) {
    wire::Frame frame;
    wire::SessionEvent* out = frame.mutable_session_event();
    out->set_session_id(session);
    out->set_event_index(event.index);
    out->set_previous_index(event.index - 1);
    out->set_name(event.name);
    out->set_payload(event.payload);
    send(binding->second, frame);
  }
}

// --- Administration ------------------------------------------------------------

void ClientService::onStatus(quint64 connection, const wire::Frame& frame) {
  const raft::Status status = m_runtime.statusNow();
  wire::Frame answer;
  wire::StatusReply* out = answer.mutable_status_reply();
  out->set_request_id(frame.status().request_id());
  out->set_node_id(m_runtime.config().id);
  out->set_address(m_runtime.config().address.toStdString());
  out->set_role(protocol::toWire(status.role));
  out->set_term(status.term);
  fillLeader(out->mutable_leader());
  out->set_commit(status.commit);
  out->set_applied(m_executor.appliedIndex());
  out->set_last_index(status.lastIndex);
  out->set_durable(status.durable);
  out->set_snapshot_index(status.snapshotIndex);
  out->set_log_bytes(m_runtime.logBytesNow());
  fillMembers(out->mutable_members());
  const storage::StorageCounters counters = m_runtime.storageCountersNow();
  out->set_storage_syncs(counters.syncs);
  out->set_storage_batches(counters.batches);
  out->set_storage_entries(counters.entries);
  send(connection, answer);
}

void ClientService::onMembership(quint64 connection, const wire::Frame& frame, ChangeKind kind) {
  PendingChange change;
  change.kind = kind;
  change.connection = connection;
  std::uint64_t nodeId = 0;
  auto take = [&](const auto& request) {
    change.requestId = request.request_id();
    change.address = QString::fromStdString(request.address());
    nodeId = request.node_id();
  };
  switch (kind) {
    case ChangeKind::Join:
      take(frame.join());
      break;
    case ChangeKind::Leave:
      take(frame.leave());
      break;
    case ChangeKind::Promote:
      take(frame.promote());
      break;
    case ChangeKind::Demote:
      take(frame.demote());
      break;
  }
  if (!parseEndpoint(change.address)) {
    finishChange(change, wire::STATUS_BAD_REQUEST,
                 "invalid address '" + change.address.toStdString() + "' (expected host:port)");
    return;
  }
  change.node = nodeIdOf(change.address);
  if (nodeId != 0 && nodeId != change.node) {
    finishChange(change, wire::STATUS_BAD_REQUEST,
                 "node id " + std::to_string(nodeId) + " does not belong to address " +
                     change.address.toStdString());
    return;
  }
  if (!isLeader()) {
    finishChange(change, wire::STATUS_NOT_LEADER, "not the leader");
    return;
  }
  const raft::Status status = m_runtime.statusNow();
  if (kind == ChangeKind::Promote || kind == ChangeKind::Demote) {
    if (!status.membership.contains(change.node)) {
      finishChange(change, wire::STATUS_BAD_REQUEST,
                   change.address.toStdString() + " is not a member of the cluster");
      return;
    }
  }
  if ((kind == ChangeKind::Leave || kind == ChangeKind::Demote) &&
      change.node == m_runtime.config().id) {
    // The leader hands over leadership first; the client retries at the
    // new leader, which removes (or demotes) this server.
    raft::NodeId target = raft::kNoNode;
    for (const raft::PeerProgress& peer : status.progress) {
      if (peer.voter && peer.id != change.node && peer.caughtUp) target = peer.id;
    }
    if (target == raft::kNoNode) {
      finishChange(change, wire::STATUS_UNAVAILABLE,
                   "the leader cannot leave: no other caught-up voter to hand over to");
      return;
    }
    m_runtime.transferLeadershipNow(target);
    wire::Frame answer;
    wire::MembershipReply* out = answer.mutable_membership_reply();
    out->set_request_id(change.requestId);
    out->set_status(wire::STATUS_NOT_LEADER);
    out->set_error("handing leadership over before leaving");
    out->mutable_leader()->set_node_id(target);
    out->mutable_leader()->set_address(m_runtime.addressOf(target).toStdString());
    send(connection, answer);
    return;
  }
  change.deadlineMs = m_uptime.elapsed() + kChangeTimeoutMs;
  auto existing = m_changes.find(change.node);
  if (existing != m_changes.end()) {
    finishChange(existing->second, wire::STATUS_UNAVAILABLE,
                 "superseded by another request for the same server");
  }
  m_changes[change.node] = change;
  advanceChanges();
}

void ClientService::advanceChanges() {
  if (m_changes.empty()) return;
  const raft::Status status = m_runtime.statusNow();
  if (status.role != raft::Role::Leader) return;
  const qint64 now = m_uptime.elapsed();
  for (auto it = m_changes.begin(); it != m_changes.end();) {
    const PendingChange& change = it->second;
    const raft::NodeId node = change.node;
    const raft::Membership& members = status.membership;
    bool done = false;
    std::optional<raft::ConfigChange> next;
    auto promoteWhenCaughtUp = [&] {
      for (const raft::PeerProgress& peer : status.progress) {
        if (peer.id == node && peer.caughtUp) {
          next = raft::ConfigChange{raft::ConfigChange::Kind::Promote, node};
        }
      }
    };
    switch (change.kind) {
      case ChangeKind::Join:
      case ChangeKind::Promote:
        if (members.isVoter(node)) {
          done = true;
        } else if (members.isLearner(node)) {
          promoteWhenCaughtUp();
        } else if (change.kind == ChangeKind::Join) {
          next = raft::ConfigChange{raft::ConfigChange::Kind::AddLearner, node};
        } else {
          done = true;  // removed meanwhile: nothing left to promote
        }
        break;
      case ChangeKind::Leave:
        if (!members.contains(node)) {
          done = true;
        } else {
          next = raft::ConfigChange{raft::ConfigChange::Kind::Remove, node};
        }
        break;
      case ChangeKind::Demote:
        if (!members.isVoter(node)) {
          done = true;
        } else {
          next = raft::ConfigChange{raft::ConfigChange::Kind::Demote, node};
        }
        break;
    }
    if (done) {
      const PendingChange finished = change;
      it = m_changes.erase(it);
      finishChange(finished, wire::STATUS_OK, {});
      continue;
    }
    if (next) {
      const raft::ProposeResult result = m_runtime.proposeChangeNow(*next, change.address);
      if (result == raft::ProposeResult::InvalidChange ||
          result == raft::ProposeResult::NotLeader) {
        const PendingChange failed = change;
        it = m_changes.erase(it);
        finishChange(
            failed, statusOf(result),
            std::string("the cluster refused the change: ") + std::string(raft::toString(result)));
        continue;
      }
      if (result == raft::ProposeResult::Accepted) {
        qCInfo(lcServer) << "node" << m_runtime.config().id << "proposes"
                         << QString::fromUtf8(
                                raft::toString(next->kind).data(),
                                static_cast<qsizetype>(raft::toString(next->kind).size()))
                         << "of" << change.address;
      }
    }
    if (now >= change.deadlineMs) {
      const PendingChange failed = change;
      it = m_changes.erase(it);
      finishChange(failed, wire::STATUS_UNAVAILABLE, "the change did not complete in time");
      continue;
    }
    ++it;
  }
}

void ClientService::finishChange(const PendingChange& change, int status,
                                 const std::string& error) {
  wire::Frame answer;
  wire::MembershipReply* out = answer.mutable_membership_reply();
  out->set_request_id(change.requestId);
  out->set_status(static_cast<wire::Status>(status));
  out->set_error(error);
  out->set_node_id(change.node);
  const raft::Status current = m_runtime.statusNow();
  out->set_index(current.commit);
  fillLeader(out->mutable_leader());
  fillMembers(out->mutable_members());
  send(change.connection, answer);
}

}  // namespace copycat::server
