#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <QElapsedTimer>
#include <QObject>

#include "engine/api/serializer.h"
#include "engine/server/raft_runtime.h"
#include "engine/server/session_table.h"

namespace copycat::wire {
class Frame;
class LeaderHint;
class CommandRequest;
class OperationReply;
}  // namespace copycat::wire

namespace copycat::server {

class StateMachineExecutor;

/// Carries session events from the state machine executor's thread to the
/// client service on the runtime's thread. The executor is created before
/// the service and outlives it; the relay lets the service attach and
/// detach. Thread-safe.
class EventRelay {
 public:
  using Target = std::function<void(SessionId, std::vector<StoredEvent>)>;
  void attach(Target target);
  void detach();
  void deliver(SessionId session, std::vector<StoredEvent> events);

 private:
  std::mutex m_mutex;
  Target m_target;
};

/// Serves the client protocol of copycat.proto on one server: sessions
/// (register, keep-alive, close through the log), commands with sequence
/// numbers (held at the leader while an earlier one is missing), queries at
/// the three consistency levels, session events, status, and membership
/// changes (join as a learner, promotion once caught up, leave). Lives on
/// the runtime's thread and is called only there; outcomes computed on the
/// executor's thread are posted back to it.
class ClientService : public QObject, public ClientHandler {
  Q_OBJECT

 public:
  /// The leader's clock for the log entries it writes (milliseconds since
  /// the epoch, never going backwards).
  using Clock = std::function<std::int64_t()>;

  ClientService(RaftRuntime& runtime, StateMachineExecutor& executor,
                std::shared_ptr<const Serializer> serializer, Clock clock,
                std::shared_ptr<EventRelay> events);
  ~ClientService() override;

  void onClientFrame(quint64 connection, wire::Frame& frame) override;
  void onClientClosed(quint64 connection) override;
  void onRoleChanged(raft::Role role, raft::Term term, raft::NodeId leader) override;
  void onTick() override;

 private:
  struct HeldCommand {
    quint64 connection = 0;
    std::shared_ptr<wire::CommandRequest> request;
    qint64 deadlineMs = 0;
  };
  /// Per session, at this leader: the highest sequence proposed in this
  /// term and the commands waiting for an earlier one.
  struct SessionOrder {
    std::uint64_t highestProposed = 0;
    std::map<std::uint64_t, HeldCommand> held;
  };
  enum class ChangeKind : std::uint8_t { Join, Leave, Promote, Demote };
  struct PendingChange {
    ChangeKind kind = ChangeKind::Join;
    quint64 connection = 0;
    std::uint64_t requestId = 0;
    raft::NodeId node = raft::kNoNode;
    QString address;
    qint64 deadlineMs = 0;
  };

  bool isLeader() const;
  void fillLeader(wire::LeaderHint* hint) const;
  template <class Members>
  void fillMembers(Members* members) const;
  void send(quint64 connection, const wire::Frame& frame);

  void onRegister(quint64 connection, const wire::Frame& frame);
  void onKeepAlive(quint64 connection, const wire::Frame& frame);
  void onClose(quint64 connection, const wire::Frame& frame);
  void onCommand(quint64 connection, std::shared_ptr<wire::CommandRequest> request);
  void onQuery(quint64 connection, const wire::Frame& frame);
  void onStatus(quint64 connection, const wire::Frame& frame);
  void onMembership(quint64 connection, const wire::Frame& frame, ChangeKind kind);

  /// Proposes a LogEntry; `done` gets its outcome on this thread. Returns
  /// false (and sends nothing) when the proposal was refused.
  bool proposeEntry(std::string data, std::function<void(Outcome)> done);
  void proposeCommand(quint64 connection, const wire::CommandRequest& request);
  void replyOperation(quint64 connection, std::uint64_t requestId, const Outcome& outcome);
  void replyNotLeader(quint64 connection, std::uint64_t requestId);
  void pushEvents(SessionId session, const std::vector<StoredEvent>& events);
  void bind(SessionId session, quint64 connection);
  void advanceChanges();
  void finishChange(const PendingChange& change, int status, const std::string& error);
  /// Posts `task` to this object's thread (dropped if it is gone by then).
  void post(std::function<void()> task);

  RaftRuntime& m_runtime;
  StateMachineExecutor& m_executor;
  std::shared_ptr<const Serializer> m_serializer;
  Clock m_clock;
  std::shared_ptr<EventRelay> m_events;
  QElapsedTimer m_uptime;

  /// Which connection receives a session's events.
  std::map<SessionId, quint64> m_bindings;
  std::map<SessionId, SessionOrder> m_orders;
  std::map<raft::NodeId, PendingChange> m_changes;
};

}  // namespace copycat::server
