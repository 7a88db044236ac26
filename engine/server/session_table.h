#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <string>
#include <vector>

#include "engine/api/result.h"
#include "engine/api/state_machine.h"

namespace copycat::serverlog {
class ExecutorSnapshot;
}

namespace copycat::server {

/// The outcome of one operation as a client sees it: the result (or error),
/// the log index it was applied at (a query: the applied index it was served
/// at), and the index of the last event published to its session by then.
struct Outcome {
  Expected<std::string> result{std::string()};
  Index index = 0;
  Index eventIndex = 0;
};

/// A session event kept until its client acknowledges it. Events of one
/// session are numbered 1, 2, 3... in the order the state machine published
/// them.
struct StoredEvent {
  Index index = 0;
  std::string name;
  std::string payload;
};

/// The replicated client sessions of chapter 6 of the Raft dissertation.
/// Every replica feeds it the same log entries in the same order (on the
/// state machine executor's thread) and therefore reaches the same decisions:
/// which sessions exist, which command sequence numbers were applied, which
/// results and events are kept. Time is log time (milliseconds of the
/// leader's stamps), never the local clock. Not thread-safe.
class SessionTable {
 public:
  /// What to do with a command of a session.
  enum class Admission : std::uint8_t {
    Apply,      // the next sequence number: apply it
    Duplicate,  // applied before: answer with the cached response
    Forgotten,  // applied before and acknowledged: the response is gone
    Gap,        // an earlier sequence number has not been applied yet
    Unknown,    // no such session (never opened, expired or closed)
  };

  /// Removes the sessions whose last activity is older than their timeout
  /// at `nowMs`; returns their ids.
  std::vector<SessionId> expire(std::uint64_t nowMs);

  /// Opens session `id` (the index of its registration entry).
  void open(SessionId id, std::string clientId, std::uint64_t timeoutMs, std::uint64_t nowMs);
  /// Refreshes a session and forgets the responses up to `commandSequence`
  /// and the events up to `eventIndex`. False when the session is unknown.
  bool keepAlive(SessionId id, std::uint64_t commandSequence, Index eventIndex,
                 std::uint64_t nowMs);
  /// Forgets the responses of `id` up to `commandSequence` (the client has
  /// them), without refreshing the session.
  void acknowledge(SessionId id, std::uint64_t commandSequence);
  /// False when the session is unknown.
  bool close(SessionId id);

  /// Decides about command `sequence` of session `id`; on Duplicate,
  /// `cached` receives the first response. A command also refreshes its
  /// session.
  Admission admit(SessionId id, std::uint64_t sequence, std::uint64_t nowMs,
                  Outcome* cached = nullptr);
  /// Records the response of the command `sequence` just applied (the
  /// sequence becomes the session's highest applied one).
  void record(SessionId id, std::uint64_t sequence, const Outcome& outcome);

  /// Stores an event for session `id`; returns its index (0 when the session
  /// is unknown and the event is dropped).
  Index publish(SessionId id, std::string name, std::string payload);
  /// The kept events of `id` above `after`, in order.
  std::vector<StoredEvent> eventsAfter(SessionId id, Index after) const;

  bool contains(SessionId id) const { return m_sessions.count(id) != 0; }
  /// Highest applied command sequence of `id` (0 when unknown).
  std::uint64_t sequenceOf(SessionId id) const;
  /// Index of the last event published to `id` (0 when unknown).
  Index eventIndexOf(SessionId id) const;
  std::size_t size() const { return m_sessions.size(); }

  void save(serverlog::ExecutorSnapshot& snapshot) const;
  /// Replaces the table; false (and the table empty) on inconsistent data.
  bool load(const serverlog::ExecutorSnapshot& snapshot);

 private:
  struct Session {
    std::string clientId;
    std::uint64_t timeoutMs = 0;
    std::uint64_t lastActiveMs = 0;
    std::uint64_t commandSequence = 0;
    std::map<std::uint64_t, Outcome> responses;
    Index eventIndex = 0;
    std::deque<StoredEvent> events;
  };

  static void forgetResponses(Session& session, std::uint64_t commandSequence);

  std::map<SessionId, Session> m_sessions;
};

}  // namespace copycat::server
