#pragma once

#include <string>
#include <utility>

#include "engine/api/codec.h"
#include "engine/api/operation.h"

namespace copycat {

class StateMachine;

/// The client session an operation was submitted on, as seen by a handler.
/// `publish` queues an event for that session's client; events reach the
/// client in the order they were published. Only commands (and callbacks
/// scheduled by them) may publish: a query runs on one server only, so an
/// event from it would not be replicated, and publish throws
/// std::logic_error there. A detached session (no state machine, as built by
/// tests) throws too.
class Session {
 public:
  explicit Session(SessionId id = 0) : m_id(id) {}

  SessionId id() const { return m_id; }

  /// Publishes `value` encoded with its cereal serialization.
  template <class T>
  void publish(std::string name, const T& value) const {
    publishRaw(std::move(name), encodeObject(value));
  }
  /// Publishes a payload the client decodes by itself.
  void publishRaw(std::string name, std::string payload) const;

 private:
  friend class StateMachine;
  Session(SessionId id, StateMachine* machine) : m_id(id), m_machine(machine) {}

  SessionId m_id = 0;
  StateMachine* m_machine = nullptr;
};

/// One operation as a handler receives it. For a command: the index of its
/// log entry and the entry's deterministic time. For a query: the index the
/// read is served at and the state machine's current time. Valid only for the
/// duration of the handler call.
template <Operation Op>
class Commit {
 public:
  Commit(Index index, LogTime time, Session session, const Op& operation)
      : m_index(index), m_time(time), m_session(std::move(session)), m_operation(&operation) {}

  Index index() const { return m_index; }
  LogTime time() const { return m_time; }
  const Session& session() const { return m_session; }
  const Op& operation() const { return *m_operation; }
  const Op* operator->() const { return m_operation; }

 private:
  Index m_index;
  LogTime m_time;
  Session m_session;
  const Op* m_operation;
};

/// An event published by the state machine, waiting in its outbox until the
/// server drains it (StateMachine::takeEvents) and delivers it to the
/// session's client. `index` is the log index of the command (or tick) being
/// applied when it was published.
struct SessionEvent {
  SessionId session = 0;
  Index index = 0;
  std::string name;
  std::string payload;

  friend bool operator==(const SessionEvent&, const SessionEvent&) = default;
};

}  // namespace copycat
