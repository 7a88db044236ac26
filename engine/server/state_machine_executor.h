#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include <QString>
#include <QThread>

#include "engine/api/serializer.h"
#include "engine/api/state_machine.h"
#include "engine/raft/types.h"
#include "engine/server/session_table.h"
#include "engine/storage/shared_bytes.h"

namespace copycat::serverlog {
class LogOperation;
}

namespace copycat::server {

/// Receives an operation's outcome, on the executor's thread. Besides the
/// state machine's own errors: Unavailable when the outcome is unknown
/// (leadership lost, the entry replaced or superseded by a snapshot) or a
/// session command arrived before an earlier one, SessionExpired for a
/// session that is not open, Closed when the server stopped.
using OutcomeCallback = std::function<void(Outcome)>;

/// Encodes the payload of a Normal entry carrying an operation
/// (server_log.proto).
std::string encodeLogOperation(std::int64_t timestampMs, SessionId session, std::uint64_t sequence,
                               TypeId typeId, std::string_view bytes,
                               std::uint64_t acknowledgedSequence = 0);

/// Runs the user's StateMachine and the replicated session table on a thread
/// of its own. The runtime feeds it committed entries in log order through
/// enqueueEntries() and never waits for it, so a slow state machine delays no
/// heartbeat. Every enqueue* function may be called from any thread; the
/// tasks run in the order they were enqueued. After stop() every enqueue is
/// ignored and every pending callback receives Closed.
class StateMachineExecutor : public QThread {
 public:
  /// Receives a snapshot taken at applied index `index` (on this thread).
  using SnapshotSink = std::function<void(Index index, std::string data)>;
  /// Receives the events an applied entry published to a session, in order
  /// (on this thread, before the outcome of that entry is delivered).
  using EventSink = std::function<void(SessionId session, std::vector<StoredEvent> events)>;

  StateMachineExecutor(std::unique_ptr<StateMachine> machine,
                       std::shared_ptr<const Serializer> serializer, std::uint64_t snapshotEntries,
                       SnapshotSink snapshotSink, EventSink eventSink = {});
  ~StateMachineExecutor() override;

  /// Committed entries, in log order: Normal entries carry a LogEntry (an
  /// operation or a session change); the others only advance the index (tick
  /// at the current log time). A batch is one task: one lock, one wake-up.
  void enqueueEntries(std::vector<raft::Entry>&& entries);
  /// Replaces the state with a snapshot (from the leader, or at restart).
  void enqueueInstall(Index index, storage::SharedBytes data);
  /// Commit tracking: `done` gets the outcome of the entry applied at `index`
  /// if its term is `term`, and Unavailable otherwise.
  void enqueueWaiter(Index index, raft::Term term, OutcomeCallback done);
  /// Every waiter still pending gets Unavailable: its outcome is unknown.
  void enqueueLeadershipLost();
  /// Serves a query with applyQuery once the applied index reaches `index`
  /// and, for a session, its command `sequence` was applied.
  void enqueueRead(Index index, SessionId session, std::uint64_t sequence, TypeId typeId,
                   std::string bytes, OutcomeCallback done);
  /// Hands the events kept for `session` above `after` to `done` (nothing
  /// for an unknown session).
  void enqueueEventsAfter(SessionId session, Index after,
                          std::function<void(std::vector<StoredEvent>)> done);

  /// Stops the thread after the task in progress and fails what is pending.
  void stop();

  /// Last applied index and log time, readable from any thread.
  Index appliedIndex() const { return m_applied.load(); }
  std::int64_t appliedTimeMs() const { return m_timeMs.load(); }
  /// Number of snapshots taken by this executor.
  std::uint64_t snapshotsTaken() const { return m_snapshots.load(); }
  /// Number of open client sessions.
  std::size_t sessionCount() const { return m_sessionCount.load(); }
  /// Set when the state machine cannot go on (a snapshot it rejected).
  QString failure() const;

 protected:
  void run() override;

 private:
  struct Waiter {
    raft::Term term = 0;
    OutcomeCallback done;
  };
  struct Read {
    Index index = 0;
    SessionId session = 0;
    std::uint64_t sequence = 0;
    TypeId typeId = 0;
    std::string bytes;
    OutcomeCallback done;
  };

  /// Queues a task for the executor thread; `wake` false leaves the thread
  /// asleep until a later task wakes it.
  void post(std::function<void()> task, bool wake = true);
  void postQuietly(std::function<void()> task) { post(std::move(task), false); }
  void apply(const raft::Entry& entry);
  Outcome applyLogEntry(const raft::Entry& entry, const std::string& data);
  Outcome applyOperation(Index index, LogTime time, const serverlog::LogOperation& operation);
  void deliverEvents();
  void install(Index index, std::string_view data);
  void maybeSnapshot();
  void serveReads();
  void failAll(ErrorCode code, const QString& message);
  void setFailure(const QString& message);
  void publishCounters();

  std::unique_ptr<StateMachine> m_machine;
  std::shared_ptr<const Serializer> m_serializer;
  std::uint64_t m_snapshotEntries;
  SnapshotSink m_snapshotSink;
  EventSink m_eventSink;

  mutable std::mutex m_mutex;
  std::condition_variable m_wake;
  std::deque<std::function<void()>> m_tasks;
  /// Set under m_mutex; read without it between the tasks of a batch.
  std::atomic<bool> m_stopping = false;
  QString m_failure;

  // Executor thread only.
  SessionTable m_sessions;
  std::map<Index, Waiter> m_waiters;
  std::vector<Read> m_reads;
  std::uint64_t m_sinceSnapshot = 0;
  bool m_broken = false;

  std::atomic<Index> m_applied{0};
  std::atomic<std::int64_t> m_timeMs{0};
  std::atomic<std::uint64_t> m_snapshots{0};
  std::atomic<std::size_t> m_sessionCount{0};
};

}  // namespace copycat::server
