#include "engine/server/state_machine_executor.h"

#include <algorithm>
#include <chrono>
#include <utility>
#include <vector>

#include "engine/server/logging.h"
#include "engine/server/raft_runtime.h"
#include "engine/server/server_log.pb.h"

namespace copycat::server {

namespace {

QString toQString(const std::string& text) { return QString::fromStdString(text); }

void failPromise(ResultPromise& promise, const QString& message) {
  promise.setException(ServerError(message));
  promise.finish();
}

void fulfil(ResultPromise& promise, Expected<std::string> result) {
  promise.addResult(std::move(result));
  promise.finish();
}

}  // namespace

std::string encodeLogOperation(std::int64_t timestampMs, SessionId session, TypeId typeId,
                               std::string_view bytes) {
  serverlog::LogOperation operation;
  operation.set_timestamp_ms(static_cast<std::uint64_t>(std::max<std::int64_t>(timestampMs, 0)));
  operation.set_session(session);
  operation.set_type_id(typeId);
  operation.set_operation(std::string(bytes));
  return operation.SerializeAsString();
}

StateMachineExecutor::StateMachineExecutor(std::unique_ptr<StateMachine> machine,
                                           std::shared_ptr<const Serializer> serializer,
                                           std::uint64_t snapshotEntries, SnapshotSink snapshotSink)
    : m_machine(std::move(machine)),
      m_serializer(std::move(serializer)),
      m_snapshotEntries(snapshotEntries),
      m_snapshotSink(std::move(snapshotSink)) {
  setObjectName(QStringLiteral("copycat-state-machine"));
}

StateMachineExecutor::~StateMachineExecutor() { stop(); }

void StateMachineExecutor::post(std::function<void()> task) {
  {
    std::lock_guard lock(m_mutex);
    if (m_stopping) return;
    m_tasks.push_back(std::move(task));
  }
  m_wake.notify_one();
}

void StateMachineExecutor::enqueueEntry(const raft::Entry& entry) {
  post([this, entry] { apply(entry); });
}

void StateMachineExecutor::enqueueInstall(Index index, std::string data) {
  post([this, index, data = std::move(data)] { install(index, data); });
}

void StateMachineExecutor::enqueueWaiter(Index index, raft::Term term,
                                         std::shared_ptr<ResultPromise> promise) {
  post([this, index, term, promise = std::move(promise)]() mutable {
    if (index <= m_machine->lastIndex()) {
      failPromise(*promise,
                  QStringLiteral("entry %1 was superseded before it was applied here").arg(index));
      return;
    }
    auto [it, inserted] = m_waiters.try_emplace(index, Waiter{term, promise});
    if (!inserted) {
      // A newer proposal at the same index (after a leadership change)
      // replaces the older one, whose entry can no longer be applied there.
      failPromise(*it->second.promise,
                  QStringLiteral("entry %1 was replaced by another leader's entry").arg(index));
      it->second = Waiter{term, std::move(promise)};
    }
  });
}

void StateMachineExecutor::enqueueLeadershipLost() {
  post([this] {
    auto waiters = std::move(m_waiters);
    m_waiters.clear();
    for (auto& [index, waiter] : waiters) {
      failPromise(*waiter.promise,
                  QStringLiteral("leadership lost before entry %1 was applied; its outcome is "
                                 "unknown")
                      .arg(index));
    }
  });
}

void StateMachineExecutor::enqueueRead(Index index, TypeId typeId, std::string bytes,
                                       std::shared_ptr<ResultPromise> promise) {
  post([this, index, typeId, bytes = std::move(bytes), promise = std::move(promise)]() mutable {
    m_reads.emplace(index, Read{typeId, std::move(bytes), std::move(promise)});
    serveReads();
  });
}

void StateMachineExecutor::stop() {
  {
    std::lock_guard lock(m_mutex);
    m_stopping = true;
  }
  m_wake.notify_one();
  if (isRunning()) wait();
  std::deque<std::function<void()>> dropped;
  {
    std::lock_guard lock(m_mutex);
    dropped.swap(m_tasks);
  }
  dropped.clear();  // promises captured there are cancelled
  failAll(QStringLiteral("the server shut down"));
}

QString StateMachineExecutor::failure() const {
  std::lock_guard lock(m_mutex);
  return m_failure;
}

void StateMachineExecutor::setFailure(const QString& message) {
  qCCritical(lcServer) << "state machine stops:" << message;
  m_broken = true;
  std::lock_guard lock(m_mutex);
  m_failure = message;
}

void StateMachineExecutor::run() {
  for (;;) {
    std::function<void()> task;
    {
      std::unique_lock lock(m_mutex);
      m_wake.wait(lock, [this] { return m_stopping || !m_tasks.empty(); });
      if (m_stopping) return;
      task = std::move(m_tasks.front());
      m_tasks.pop_front();
    }
    task();
  }
}

void StateMachineExecutor::apply(const raft::Entry& entry) {
  if (m_broken) {
    failAll(QStringLiteral("the state machine stopped: %1").arg(failure()));
    return;
  }
  if (entry.index <= m_machine->lastIndex()) return;  // covered by a snapshot

  std::optional<Expected<std::string>> result;
  serverlog::LogOperation operation;
  if (entry.type == raft::EntryType::Normal && !entry.data.empty()) {
    if (operation.ParseFromString(entry.data)) {
      const LogTime time{
          std::chrono::milliseconds(static_cast<std::int64_t>(operation.timestamp_ms()))};
      result.emplace(m_machine->applyCommand(*m_serializer, entry.index, time, operation.session(),
                                             operation.type_id(), operation.operation()));
    } else {
      result.emplace(
          Error{ErrorCode::MalformedOperation,
                "log entry " + std::to_string(entry.index) + " does not hold a LogOperation"});
    }
  }
  if (!result || m_machine->lastIndex() < entry.index) {
    // No operation (noop, membership change, bad payload): advance the index.
    const Status ticked = m_machine->tick(entry.index, m_machine->time());
    if (!ticked) {
      setFailure(QStringLiteral("cannot apply entry %1: %2")
                     .arg(entry.index)
                     .arg(toQString(ticked.error().message)));
      failAll(failure());
      return;
    }
  }
  m_machine->takeEvents();  // session events: delivered once sessions exist
  for (const Error& error : m_machine->takeCallbackErrors()) {
    qCWarning(lcServer) << "scheduled callback failed:" << toQString(error.message);
  }
  m_applied.store(m_machine->lastIndex());
  m_timeMs.store(m_machine->time().time_since_epoch().count());

  // Waiters below this index belong to entries that can no longer be applied.
  while (!m_waiters.empty() && m_waiters.begin()->first <= entry.index) {
    auto node = m_waiters.extract(m_waiters.begin());
    Waiter& waiter = node.mapped();
    if (node.key() == entry.index && waiter.term == entry.term) {
      fulfil(*waiter.promise, result ? std::move(*result)
                                     : Expected<std::string>(Error{ErrorCode::InternalError,
                                                                   "entry carried no operation"}));
    } else {
      failPromise(
          *waiter.promise,
          QStringLiteral("entry %1 was replaced by another leader's entry").arg(node.key()));
    }
  }
  serveReads();

  ++m_sinceSnapshot;
  if (m_snapshotEntries != 0 && m_sinceSnapshot >= m_snapshotEntries &&
      m_machine->snapshottable()) {
    m_sinceSnapshot = 0;
    Expected<std::string> snapshot = m_machine->takeSnapshot();
    if (!snapshot) {
      qCWarning(lcServer) << "cannot snapshot the state machine at" << entry.index << ":"
                          << toQString(snapshot.error().message);
      return;
    }
    ++m_snapshots;
    if (m_snapshotSink) m_snapshotSink(m_machine->lastIndex(), std::move(*snapshot));
  }
}

void StateMachineExecutor::install(Index index, const std::string& data) {
  if (m_broken) return;
  if (index <= m_machine->lastIndex()) return;  // already there (a local snapshot)
  const Status installed = m_machine->installSnapshot(data);
  if (!installed) {
    setFailure(QStringLiteral("cannot install the snapshot at %1: %2")
                   .arg(index)
                   .arg(toQString(installed.error().message)));
    failAll(failure());
    return;
  }
  m_sinceSnapshot = 0;
  m_applied.store(m_machine->lastIndex());
  m_timeMs.store(m_machine->time().time_since_epoch().count());
  while (!m_waiters.empty() && m_waiters.begin()->first <= m_machine->lastIndex()) {
    auto node = m_waiters.extract(m_waiters.begin());
    failPromise(*node.mapped().promise,
                QStringLiteral("entry %1 was superseded by a snapshot").arg(node.key()));
  }
  serveReads();
}

void StateMachineExecutor::serveReads() {
  while (!m_reads.empty() && m_reads.begin()->first <= m_machine->lastIndex()) {
    auto node = m_reads.extract(m_reads.begin());
    Read& read = node.mapped();
    if (m_broken) {
      failPromise(*read.promise, QStringLiteral("the state machine stopped: %1").arg(failure()));
      continue;
    }
    fulfil(*read.promise, m_machine->applyQuery(*m_serializer, m_machine->lastIndex(), 0,
                                                read.typeId, read.bytes));
  }
}

void StateMachineExecutor::failAll(const QString& message) {
  auto waiters = std::move(m_waiters);
  m_waiters.clear();
  for (auto& [index, waiter] : waiters) failPromise(*waiter.promise, message);
  auto reads = std::move(m_reads);
  m_reads.clear();
  for (auto& [index, read] : reads) failPromise(*read.promise, message);
}

}  // namespace copycat::server
