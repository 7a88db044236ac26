#include "engine/api/state_machine.h"

#include <algorithm>

namespace copycat {

namespace {

constexpr std::uint8_t kSnapshotFormat = 1;

// Restores the previous context when a scope ends, exceptions included.
template <class T>
class Restore {
 public:
  Restore(T& slot, T value) : m_slot(slot), m_saved(slot) { slot = value; }
  ~Restore() { m_slot = m_saved; }
  Restore(const Restore&) = delete;
  Restore& operator=(const Restore&) = delete;

 private:
  T& m_slot;
  T m_saved;
};

}  // namespace

void Session::publishRaw(std::string name, std::string payload) const {
  if (!m_machine) throw std::logic_error("publish on a detached session");
  m_machine->publishRaw(m_id, std::move(name), std::move(payload));
}

Expected<std::string> StateMachine::applyCommand(const Serializer& serializer, Index index,
                                                 LogTime time, SessionId session, TypeId typeId,
                                                 std::string_view bytes) {
  if (Status ticked = tick(index, time); !ticked) return ticked.error();
  auto operation = serializer.decode(typeId, bytes);
  if (!operation) return operation.error();
  const Context context =
      operation->kind() == OperationKind::Command ? Context::Command : Context::Query;
  return dispatch(serializer, *operation, index, session, context);
}

Expected<std::string> StateMachine::applyQuery(const Serializer& serializer, Index index,
                                               SessionId session, TypeId typeId,
                                               std::string_view bytes) {
  auto operation = serializer.decode(typeId, bytes);
  if (!operation) return operation.error();
  if (operation->kind() != OperationKind::Query) {
    return Error{ErrorCode::IllegalState,
                 serializer.info(typeId)->name + " is a command: commands go through the log"};
  }
  return dispatch(serializer, *operation, index, session, Context::Query);
}

Expected<std::string> StateMachine::dispatch(const Serializer& serializer,
                                             const AnyOperation& operation, Index index,
                                             SessionId session, Context context) {
  const auto handler = m_handlers.find(operation.type());
  if (handler == m_handlers.end()) {
    return Error{ErrorCode::UnknownOperation, "the state machine has no handler for " +
                                                  serializer.info(operation.typeId())->name +
                                                  " (type id " +
                                                  std::to_string(operation.typeId()) + ")"};
  }
  Restore<Context> scope(m_context, context);
  return handler->second.call(serializer, operation, index, m_time, Session(session, this));
}

Status StateMachine::tick(Index index, LogTime time) {
  if (index <= m_index) {
    return Error{ErrorCode::IllegalState, "tick at index " + std::to_string(index) + " but index " +
                                              std::to_string(m_index) + " is already applied"};
  }
  m_index = index;
  advanceTo(time);
  return {};
}

void StateMachine::advanceTo(LogTime time) {
  const LogTime target = std::max(m_time, time);
  while (!m_timers.empty() && m_timers.begin()->first.first <= target) {
    auto node = m_timers.extract(m_timers.begin());
    const LogTime deadline = node.key().first;
    Timer timer = std::move(node.mapped());
    m_timerDeadlines.erase(timer.id);
    m_time = std::max(m_time, deadline);
    m_runningTimer = timer.id;
    m_runningTimerCancelled = false;
    {
      Restore<Context> context(m_context, Context::Callback);
      try {
        timer.callback();
      } catch (const std::exception& e) {
        m_callbackErrors.push_back(Error{ErrorCode::ApplicationError,
                                         "callback " + std::to_string(timer.id) + ": " + e.what()});
      } catch (...) {
        m_callbackErrors.push_back(
            Error{ErrorCode::ApplicationError,
                  "callback " + std::to_string(timer.id) + ": non-standard exception"});
      }
    }
    m_runningTimer = 0;
    if (timer.interval.count() > 0 && !m_runningTimerCancelled) {
      const LogTime next = deadline + timer.interval;
      m_timerDeadlines.emplace(timer.id, next);
      m_timers.emplace(TimerKey{next, timer.id}, std::move(timer));
    }
  }
  m_time = target;
}

void StateMachine::requireContext(bool allowed, const char* what) const {
  if (!allowed) {
    throw std::logic_error(std::string(what) +
                           (m_context == Context::Query
                                ? " is not allowed in a query: queries run on one server only"
                                : " is not allowed here"));
  }
}

TimerId StateMachine::schedule(std::chrono::milliseconds delay, std::function<void()> callback) {
  return addTimer(m_time + std::max(delay, std::chrono::milliseconds(0)),
                  std::chrono::milliseconds(0), std::move(callback));
}

TimerId StateMachine::scheduleAt(LogTime deadline, std::function<void()> callback) {
  return addTimer(deadline, std::chrono::milliseconds(0), std::move(callback));
}

TimerId StateMachine::scheduleRepeating(std::chrono::milliseconds initialDelay,
                                        std::chrono::milliseconds interval,
                                        std::function<void()> callback) {
  if (interval.count() <= 0) throw std::invalid_argument("scheduleRepeating: interval must be > 0");
  return addTimer(m_time + std::max(initialDelay, std::chrono::milliseconds(0)), interval,
                  std::move(callback));
}

TimerId StateMachine::addTimer(LogTime deadline, std::chrono::milliseconds interval,
                               std::function<void()> callback) {
  requireContext(m_context != Context::Query, "scheduling a callback");
  if (!callback) throw std::invalid_argument("schedule: empty callback");
  const TimerId id = m_nextTimerId++;
  m_timerDeadlines.emplace(id, deadline);
  m_timers.emplace(TimerKey{deadline, id}, Timer{id, interval, std::move(callback)});
  return id;
}

bool StateMachine::cancel(TimerId id) {
  requireContext(m_context != Context::Query, "cancelling a callback");
  if (id != 0 && id == m_runningTimer) {
    const bool wasPending = !m_runningTimerCancelled;
    m_runningTimerCancelled = true;
    return wasPending;
  }
  const auto it = m_timerDeadlines.find(id);
  if (it == m_timerDeadlines.end()) return false;
  m_timers.erase(TimerKey{it->second, id});
  m_timerDeadlines.erase(it);
  return true;
}

void StateMachine::publishRaw(SessionId session, std::string name, std::string payload) {
  requireContext(m_context == Context::Command || m_context == Context::Callback,
                 "publishing a session event");
  m_events.push_back(SessionEvent{session, m_index, std::move(name), std::move(payload)});
}

std::vector<SessionEvent> StateMachine::takeEvents() { return std::exchange(m_events, {}); }

std::vector<Error> StateMachine::takeCallbackErrors() {
  return std::exchange(m_callbackErrors, {});
}

bool StateMachine::snapshottable() const {
  return dynamic_cast<const Snapshottable*>(this) != nullptr;
}

Expected<std::string> StateMachine::takeSnapshot() const {
  const auto* snapshottable = dynamic_cast<const Snapshottable*>(this);
  if (!snapshottable) {
    return Error{ErrorCode::IllegalState,
                 typeName(typeid(*this)) + " does not implement Snapshottable"};
  }
  try {
    SnapshotWriter writer(m_snapshotBytesHint + m_snapshotBytesHint / 8);
    writer.writeObject(kSnapshotFormat);
    writer.writeObject(m_index);
    writer.writeObject(static_cast<std::int64_t>(m_time.time_since_epoch().count()));
    snapshottable->snapshot(writer);
    std::string bytes = std::move(writer).bytes();
    m_snapshotBytesHint = bytes.size();
    return bytes;
  } catch (const std::exception& e) {
    return Error{ErrorCode::InternalError, std::string("snapshot failed: ") + e.what()};
  }
}

Status StateMachine::installSnapshot(std::string_view bytes) {
  auto* snapshottable = dynamic_cast<Snapshottable*>(this);
  if (!snapshottable) {
    return Error{ErrorCode::IllegalState,
                 typeName(typeid(*this)) + " does not implement Snapshottable"};
  }
  try {
    m_snapshotBytesHint = bytes.size();
    SnapshotReader reader(bytes);
    const auto format = reader.readObject<std::uint8_t>();
    if (format != kSnapshotFormat) {
      return Error{ErrorCode::MalformedSnapshot,
                   "unknown snapshot format " + std::to_string(format)};
    }
    const auto index = reader.readObject<Index>();
    const auto millis = reader.readObject<std::int64_t>();
    m_timers.clear();
    m_timerDeadlines.clear();
    m_index = index;
    m_time = LogTime(std::chrono::milliseconds(millis));
    {
      Restore<Context> context(m_context, Context::Install);
      snapshottable->install(reader);
    }
    if (!reader.atEnd()) {
      return Error{ErrorCode::MalformedSnapshot, "install() left snapshot bytes unread"};
    }
    return {};
  } catch (const std::exception& e) {
    return Error{ErrorCode::MalformedSnapshot, std::string("snapshot install failed: ") + e.what()};
  }
}

std::vector<std::string> StateMachine::missingRegistrations(const Serializer& serializer) const {
  std::vector<std::string> missing;
  for (const auto& [type, entry] : m_handlers) {
    if (!serializer.contains(type)) missing.push_back(entry.name);
  }
  std::sort(missing.begin(), missing.end());
  return missing;
}

}  // namespace copycat
