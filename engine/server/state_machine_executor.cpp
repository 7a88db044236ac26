#include "engine/server/state_machine_executor.h"

#include <algorithm>
#include <chrono>
#include <utility>
#include <vector>

#include "engine/protocol/bytes_field.h"
#include "engine/server/logging.h"
#include "engine/server/raft_runtime.h"
#include "engine/server/server_log.pb.h"

namespace copycat::server {

namespace {

QString toQString(const std::string& text) { return QString::fromStdString(text); }

constexpr std::uint32_t kMachineField = serverlog::ExecutorSnapshot::kMachineFieldNumber;

Outcome makeFailure(ErrorCode code, const QString& message, Index index = 0) {
  Outcome outcome;
  outcome.result = Error{code, message.toStdString()};
  outcome.index = index;
  return outcome;
}

}  // namespace

std::string encodeLogOperation(std::int64_t timestampMs, SessionId session, std::uint64_t sequence,
                               TypeId typeId, std::string_view bytes,
                               std::uint64_t acknowledgedSequence) {
  serverlog::LogEntry entry;
  entry.set_timestamp_ms(static_cast<std::uint64_t>(std::max<std::int64_t>(timestampMs, 0)));
  serverlog::LogOperation* operation = entry.mutable_operation();
  operation->set_session(session);
  operation->set_sequence(sequence);
  operation->set_type_id(typeId);
  operation->set_operation(std::string(bytes));
  operation->set_acknowledged_sequence(acknowledgedSequence);
  return entry.SerializeAsString();
}

StateMachineExecutor::StateMachineExecutor(std::unique_ptr<StateMachine> machine,
                                           std::shared_ptr<const Serializer> serializer,
                                           std::uint64_t snapshotEntries, SnapshotSink snapshotSink,
                                           EventSink eventSink)
    : m_machine(std::move(machine)),
      m_serializer(std::move(serializer)),
      m_snapshotEntries(snapshotEntries),
      m_snapshotSink(std::move(snapshotSink)),
      m_eventSink(std::move(eventSink)) {
  setObjectName(QStringLiteral("copycat-state-machine"));
}

StateMachineExecutor::~StateMachineExecutor() { stop(); }

void StateMachineExecutor::post(std::function<void()> task, bool wake) {
  {
    std::lock_guard lock(m_mutex);
    if (m_stopping) return;
    m_tasks.push_back(std::move(task));
  }
  if (wake) m_wake.notify_one();
}

void StateMachineExecutor::enqueueEntries(std::vector<raft::Entry>&& entries) {
  post([this, entries = std::move(entries)] {
    for (const raft::Entry& entry : entries) {
      // A restart may hand over a whole log at once: stop() need not wait for it.
      if (m_stopping.load(std::memory_order_relaxed)) return;
      apply(entry);
    }
  });
}

void StateMachineExecutor::enqueueInstall(Index index, storage::SharedBytes data) {
  post([this, index, data = std::move(data)] { install(index, data.view()); });
}

void StateMachineExecutor::enqueueWaiter(Index index, raft::Term term, OutcomeCallback done) {
  // Queued without waking the executor: the entry it waits for is applied
  // by a later task, which wakes it (one thread switch less per command).
  postQuietly([this, index, term, done = std::move(done)]() mutable {
    if (m_broken) {
      done(makeFailure(
          ErrorCode::Closed,
          QStringLiteral("the state machine stopped: %1").arg(StateMachineExecutor::failure())));
      return;
    }
    if (index <= m_machine->lastIndex()) {
      done(makeFailure(
          ErrorCode::Unavailable,
          QStringLiteral("entry %1 was superseded before it was applied here").arg(index)));
      return;
    }
    auto [it, inserted] = m_waiters.try_emplace(index, Waiter{term, done});
    if (!inserted) {
      // A newer proposal at the same index (after a leadership change)
      // replaces the older one, whose entry can no longer be applied there.
      it->second.done(makeFailure(
          ErrorCode::Unavailable,
          QStringLiteral("entry %1 was replaced by another leader's entry").arg(index)));
      it->second = Waiter{term, std::move(done)};
    }
  });
}

void StateMachineExecutor::enqueueLeadershipLost() {
  post([this] {
    auto waiters = std::move(m_waiters);
    m_waiters.clear();
    for (auto& [index, waiter] : waiters) {
      waiter.done(makeFailure(ErrorCode::Unavailable,
                              QStringLiteral("leadership lost before entry %1 was applied; its "
                                             "outcome is unknown")
                                  .arg(index)));
    }
  });
}

void StateMachineExecutor::enqueueRead(Index index, SessionId session, std::uint64_t sequence,
                                       TypeId typeId, std::string bytes, OutcomeCallback done) {
  post([this, read = Read{index, session, sequence, typeId, std::move(bytes),
                          std::move(done)}]() mutable {
    m_reads.push_back(std::move(read));
    serveReads();
  });
}

void StateMachineExecutor::enqueueEventsAfter(SessionId session, Index after,
                                              std::function<void(std::vector<StoredEvent>)> done) {
  post([this, session, after, done = std::move(done)] {
    done(m_sessions.eventsAfter(session, after));
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
  dropped.clear();
  failAll(ErrorCode::Closed, QStringLiteral("the server shut down"));
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
  std::deque<std::function<void()>> batch;
  for (;;) {
    {
      std::unique_lock lock(m_mutex);
      m_wake.wait(lock, [this] { return m_stopping || !m_tasks.empty(); });
      if (m_stopping) return;
      // Everything queued so far, under one lock: a Ready batch of entries
      // arrives as many tasks at once.
      batch.swap(m_tasks);
    }
    while (!batch.empty()) {
      std::function<void()> task = std::move(batch.front());
      batch.pop_front();
      task();
      if (m_stopping.load(std::memory_order_relaxed)) return;
    }
  }
}

void StateMachineExecutor::apply(const raft::Entry& entry) {
  if (m_broken) {
    failAll(ErrorCode::Closed, QStringLiteral("the state machine stopped: %1").arg(failure()));
    return;
  }
  if (entry.index <= m_machine->lastIndex()) return;  // covered by a snapshot

  std::optional<Outcome> outcome;
  if (entry.type == raft::EntryType::Normal && !entry.data.empty()) {
    outcome = applyLogEntry(entry, entry.data);
  }
  if (m_machine->lastIndex() < entry.index) {
    // No operation was applied (noop, membership or session change, a
    // refused command): advance the index.
    const Status ticked = m_machine->tick(entry.index, m_machine->time());
    if (!ticked) {
      setFailure(QStringLiteral("cannot apply entry %1: %2")
                     .arg(entry.index)
                     .arg(toQString(ticked.error().message)));
      failAll(ErrorCode::Closed, StateMachineExecutor::failure());
      return;
    }
  }
  deliverEvents();
  for (const Error& error : m_machine->takeCallbackErrors()) {
    qCWarning(lcServer) << "scheduled callback failed:" << toQString(error.message);
  }
  publishCounters();

  // Waiters below this index belong to entries that can no longer be applied.
  while (!m_waiters.empty() && m_waiters.begin()->first <= entry.index) {
    auto node = m_waiters.extract(m_waiters.begin());
    Waiter& waiter = node.mapped();
    if (node.key() == entry.index && waiter.term == entry.term) {
      waiter.done(
          outcome ? std::move(*outcome)
                  : makeFailure(ErrorCode::InternalError,
                                QStringLiteral("entry %1 carried no operation").arg(entry.index),
                                entry.index));
    } else {
      waiter.done(makeFailure(
          ErrorCode::Unavailable,
          QStringLiteral("entry %1 was replaced by another leader's entry").arg(node.key())));
    }
  }
  serveReads();
  ++m_sinceSnapshot;
  maybeSnapshot();
}

Outcome StateMachineExecutor::applyLogEntry(const raft::Entry& entry, const std::string& data) {
  serverlog::LogEntry logEntry;
  if (!logEntry.ParseFromString(data)) {
    return makeFailure(ErrorCode::MalformedOperation,
                       QStringLiteral("log entry %1 does not hold a LogEntry").arg(entry.index),
                       entry.index);
  }
  const std::uint64_t nowMs = logEntry.timestamp_ms();
  const LogTime time{std::chrono::milliseconds(static_cast<std::int64_t>(nowMs))};
  for (SessionId expired : m_sessions.expire(nowMs)) {
    qCInfo(lcServer) << "session" << expired << "expired at log index" << entry.index;
  }
  Outcome outcome;
  outcome.index = entry.index;
  switch (logEntry.body_case()) {
    case serverlog::LogEntry::kOperation:
      return applyOperation(entry.index, time, logEntry.operation());
    case serverlog::LogEntry::kRegisterSession:
      m_sessions.open(entry.index, logEntry.register_session().client_id(),
                      logEntry.register_session().timeout_ms(), nowMs);
      return outcome;
    case serverlog::LogEntry::kKeepAlive: {
      const serverlog::KeepAlive& keepAlive = logEntry.keep_alive();
      if (!m_sessions.keepAlive(keepAlive.session(), keepAlive.command_sequence(),
                                keepAlive.event_index(), nowMs)) {
        return makeFailure(ErrorCode::SessionExpired,
                           QStringLiteral("session %1 is not open").arg(keepAlive.session()),
                           entry.index);
      }
      outcome.eventIndex = m_sessions.eventIndexOf(keepAlive.session());
      return outcome;
    }
    case serverlog::LogEntry::kCloseSession:
      if (!m_sessions.close(logEntry.close_session().session())) {
        return makeFailure(
            ErrorCode::SessionExpired,
            QStringLiteral("session %1 is not open").arg(logEntry.close_session().session()),
            entry.index);
      }
      return outcome;
    case serverlog::LogEntry::BODY_NOT_SET:
      break;
  }
  return makeFailure(ErrorCode::MalformedOperation,
                     QStringLiteral("log entry %1 holds no known body").arg(entry.index),
                     entry.index);
}

Outcome StateMachineExecutor::applyOperation(Index index, LogTime time,
                                             const serverlog::LogOperation& operation) {
  const SessionId session = operation.session();
  if (session != 0) {
    Outcome cached;
    const std::uint64_t nowMs = static_cast<std::uint64_t>(time.time_since_epoch().count());
    if (operation.sequence() > 0) {
      m_sessions.acknowledge(session,
                             std::min(operation.acknowledged_sequence(), operation.sequence() - 1));
    }
    switch (m_sessions.admit(session, operation.sequence(), nowMs, &cached)) {
      case SessionTable::Admission::Apply:
        break;
      case SessionTable::Admission::Duplicate:
        return cached;
      case SessionTable::Admission::Forgotten:
        return makeFailure(ErrorCode::IllegalState,
                           QStringLiteral("command %1 of session %2 was applied and acknowledged "
                                          "before")
                               .arg(operation.sequence())
                               .arg(session),
                           index);
      case SessionTable::Admission::Gap:
        return makeFailure(ErrorCode::Unavailable,
                           QStringLiteral("command %1 of session %2 arrived before command %3")
                               .arg(operation.sequence())
                               .arg(session)
                               .arg(m_sessions.sequenceOf(session) + 1),
                           index);
      case SessionTable::Admission::Unknown:
        return makeFailure(
            ErrorCode::SessionExpired,
            QStringLiteral("session %1 is not open (expired or closed)").arg(session), index);
    }
  }
  Outcome outcome;
  outcome.result = m_machine->applyCommand(*m_serializer, index, time, session, operation.type_id(),
                                           operation.operation());
  outcome.index = index;
  if (session != 0) {
    deliverEvents();
    outcome.eventIndex = m_sessions.eventIndexOf(session);
    m_sessions.record(session, operation.sequence(), outcome);
  }
  return outcome;
}

void StateMachineExecutor::deliverEvents() {
  std::vector<SessionEvent> published = m_machine->takeEvents();
  if (published.empty()) return;
  std::map<SessionId, std::vector<StoredEvent>> bySession;
  for (SessionEvent& event : published) {
    const Index index = m_sessions.publish(event.session, event.name, event.payload);
    if (index == 0) continue;  // no such session: dropped
    bySession[event.session].push_back(
        StoredEvent{index, std::move(event.name), std::move(event.payload)});
  }
  if (!m_eventSink) return;
  for (auto& [session, events] : bySession) m_eventSink(session, std::move(events));
}

void StateMachineExecutor::maybeSnapshot() {
  if (m_snapshotEntries == 0 || m_sinceSnapshot < m_snapshotEntries ||
      !m_machine->snapshottable()) {
    return;
  }
  m_sinceSnapshot = 0;
  Expected<std::string> machine = m_machine->takeSnapshot();
  if (!machine) {
    qCWarning(lcServer) << "cannot snapshot the state machine at" << m_machine->lastIndex() << ":"
                        << toQString(machine.error().message);
    return;
  }
  // The session table, then the machine's bytes appended as the last field:
  // the bytes SerializeAsString() would give, with one copy of the state.
  serverlog::ExecutorSnapshot snapshot;
  m_sessions.save(snapshot);
  std::string bytes;
  bytes.reserve(snapshot.ByteSizeLong() + protocol::bytesFieldSize(kMachineField, machine->size()));
  snapshot.AppendToString(&bytes);
  protocol::appendBytesField(bytes, kMachineField, *machine);
  ++m_snapshots;
  if (m_snapshotSink) m_snapshotSink(m_machine->lastIndex(), std::move(bytes));
}

void StateMachineExecutor::install(Index index, std::string_view data) {
  if (m_broken) return;
  if (index <= m_machine->lastIndex()) return;  // already there (a local snapshot)
  // The machine's bytes are read in place; only the session table is parsed.
  serverlog::ExecutorSnapshot snapshot;
  std::string sessions;
  std::string_view machine;
  Status installed = Error{ErrorCode::MalformedSnapshot, "not an executor snapshot"};
  if (protocol::splitBytesField(data, kMachineField, sessions, machine) &&
      snapshot.ParseFromString(sessions)) {
    if (!m_sessions.load(snapshot)) {
      installed = Error{ErrorCode::MalformedSnapshot, "inconsistent session table"};
    } else {
      installed = m_machine->installSnapshot(machine);
    }
  }
  if (!installed) {
    setFailure(QStringLiteral("cannot install the snapshot at %1: %2")
                   .arg(index)
                   .arg(toQString(installed.error().message)));
    failAll(ErrorCode::Closed, StateMachineExecutor::failure());
    return;
  }
  m_sinceSnapshot = 0;
  publishCounters();
  while (!m_waiters.empty() && m_waiters.begin()->first <= m_machine->lastIndex()) {
    auto node = m_waiters.extract(m_waiters.begin());
    node.mapped().done(
        makeFailure(ErrorCode::Unavailable,
                    QStringLiteral("entry %1 was superseded by a snapshot").arg(node.key())));
  }
  serveReads();
}

void StateMachineExecutor::publishCounters() {
  m_applied.store(m_machine->lastIndex());
  m_timeMs.store(m_machine->time().time_since_epoch().count());
  m_sessionCount.store(m_sessions.size());
}

void StateMachineExecutor::serveReads() {
  const Index applied = m_machine->lastIndex();
  std::vector<Read> waiting;
  std::vector<Read> reads;
  reads.swap(m_reads);
  for (Read& read : reads) {
    if (m_broken) {
      read.done(makeFailure(ErrorCode::Closed,
                            QStringLiteral("the state machine stopped: %1").arg(failure())));
      continue;
    }
    const bool sessionKnown = read.session == 0 || m_sessions.contains(read.session);
    if (read.index > applied || (sessionKnown && read.session != 0 &&
                                 m_sessions.sequenceOf(read.session) < read.sequence)) {
      waiting.push_back(std::move(read));
      continue;
    }
    if (!sessionKnown) {
      read.done(makeFailure(
          ErrorCode::SessionExpired,
          QStringLiteral("session %1 is not open (expired or closed)").arg(read.session), applied));
      continue;
    }
    Outcome outcome;
    outcome.result =
        m_machine->applyQuery(*m_serializer, applied, read.session, read.typeId, read.bytes);
    outcome.index = applied;
    outcome.eventIndex = m_sessions.eventIndexOf(read.session);
    read.done(std::move(outcome));
  }
  // Reads enqueued while serving (none today) are kept after the waiting ones.
  for (Read& read : m_reads) waiting.push_back(std::move(read));
  m_reads = std::move(waiting);
}

void StateMachineExecutor::failAll(ErrorCode code, const QString& message) {
  auto waiters = std::move(m_waiters);
  m_waiters.clear();
  for (auto& [index, waiter] : waiters) waiter.done(makeFailure(code, message));
  auto reads = std::move(m_reads);
  m_reads.clear();
  for (Read& read : reads) read.done(makeFailure(code, message));
}

}  // namespace copycat::server
