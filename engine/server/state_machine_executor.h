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

#include <QFuture>
#include <QPromise>
#include <QString>
#include <QThread>

#include "engine/api/serializer.h"
#include "engine/api/state_machine.h"
#include "engine/raft/types.h"

namespace copycat::server {

/// What a proposer (or a reader) eventually receives: the operation's encoded
/// result or its error; the future fails with ServerError when the outcome
/// is unknown (leadership lost, entry replaced, server stopped).
using ResultPromise = QPromise<Expected<std::string>>;

/// Encodes the payload of a Normal entry (server_log.proto).
std::string encodeLogOperation(std::int64_t timestampMs, SessionId session, TypeId typeId,
                               std::string_view bytes);

/// Runs the user's StateMachine on a thread of its own. The runtime feeds it
/// committed entries in log order through enqueueEntry() and never waits for
/// it, so a slow state machine delays no heartbeat. Every enqueue* function
/// may be called from any thread; the tasks run in the order they were
/// enqueued. After stop() every enqueue is ignored.
class StateMachineExecutor : public QThread {
 public:
  /// Receives a snapshot taken at applied index `index` (on this thread).
  using SnapshotSink = std::function<void(Index index, std::string data)>;

  StateMachineExecutor(std::unique_ptr<StateMachine> machine,
                       std::shared_ptr<const Serializer> serializer, std::uint64_t snapshotEntries,
                       SnapshotSink snapshotSink);
  ~StateMachineExecutor() override;

  /// A committed entry: Normal entries carry an operation (applyCommand),
  /// the others only advance the index (tick at the current log time).
  void enqueueEntry(const raft::Entry& entry);
  /// Replaces the state with a snapshot (from the leader, or at restart).
  void enqueueInstall(Index index, std::string data);
  /// Commit tracking: `promise` gets the result of the entry applied at
  /// `index` if its term is `term`, and fails otherwise.
  void enqueueWaiter(Index index, raft::Term term, std::shared_ptr<ResultPromise> promise);
  /// Fails every waiter still pending: their outcome is unknown.
  void enqueueLeadershipLost();
  /// Serves a query with applyQuery once the applied index reaches `index`.
  void enqueueRead(Index index, TypeId typeId, std::string bytes,
                   std::shared_ptr<ResultPromise> promise);

  /// Stops the thread after the task in progress and fails what is pending.
  void stop();

  /// Last applied index and log time, readable from any thread.
  Index appliedIndex() const { return m_applied.load(); }
  std::int64_t appliedTimeMs() const { return m_timeMs.load(); }
  /// Number of snapshots taken by this executor.
  std::uint64_t snapshotsTaken() const { return m_snapshots.load(); }
  /// Set when the state machine cannot go on (a snapshot it rejected).
  QString failure() const;

 protected:
  void run() override;

 private:
  struct Waiter {
    raft::Term term = 0;
    std::shared_ptr<ResultPromise> promise;
  };
  struct Read {
    TypeId typeId = 0;
    std::string bytes;
    std::shared_ptr<ResultPromise> promise;
  };

  void post(std::function<void()> task);
  void apply(const raft::Entry& entry);
  void install(Index index, const std::string& data);
  void serveReads();
  void failAll(const QString& message);
  void setFailure(const QString& message);

  std::unique_ptr<StateMachine> m_machine;
  std::shared_ptr<const Serializer> m_serializer;
  std::uint64_t m_snapshotEntries;
  SnapshotSink m_snapshotSink;

  mutable std::mutex m_mutex;
  std::condition_variable m_wake;
  std::deque<std::function<void()>> m_tasks;
  bool m_stopping = false;
  QString m_failure;

  // Executor thread only.
  std::map<Index, Waiter> m_waiters;
  std::multimap<Index, Read> m_reads;
  std::uint64_t m_sinceSnapshot = 0;
  bool m_broken = false;

  std::atomic<Index> m_applied{0};
  std::atomic<std::int64_t> m_timeMs{0};
  std::atomic<std::uint64_t> m_snapshots{0};
};

}  // namespace copycat::server
