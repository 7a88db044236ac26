#include "engine/server/session_table.h"

#include "engine/server/server_log.pb.h"

namespace copycat::server {

std::vector<SessionId> SessionTable::expire(std::uint64_t nowMs) {
  std::vector<SessionId> expired;
  for (auto it = m_sessions.begin(); it != m_sessions.end();) {
    const Session& session = it->second;
    if (nowMs > session.lastActiveMs && nowMs - session.lastActiveMs > session.timeoutMs) {
      expired.push_back(it->first);
      it = m_sessions.erase(it);
    } else {
      ++it;
    }
  }
  return expired;
}

void SessionTable::open(SessionId id, std::string clientId, std::uint64_t timeoutMs,
                        std::uint64_t nowMs) {
  Session& session = m_sessions[id];
  session = Session{};
  session.clientId = std::move(clientId);
  session.timeoutMs = timeoutMs;
  session.lastActiveMs = nowMs;
}

bool SessionTable::keepAlive(SessionId id, std::uint64_t commandSequence, Index eventIndex,
                             std::uint64_t nowMs) {
  auto found = m_sessions.find(id);
  if (found == m_sessions.end()) return false;
  Session& session = found->second;
  session.lastActiveMs = std::max(session.lastActiveMs, nowMs);
  forgetResponses(session, commandSequence);
  while (!session.events.empty() && session.events.front().index <= eventIndex) {
    session.events.pop_front();
  }
  return true;
}

void SessionTable::acknowledge(SessionId id, std::uint64_t commandSequence) {
  auto found = m_sessions.find(id);
  if (found != m_sessions.end()) forgetResponses(found->second, commandSequence);
}

void SessionTable::forgetResponses(Session& session, std::uint64_t commandSequence) {
  session.responses.erase(session.responses.begin(),
                          session.responses.upper_bound(commandSequence));
}

bool SessionTable::close(SessionId id) { return m_sessions.erase(id) != 0; }

SessionTable::Admission SessionTable::admit(SessionId id, std::uint64_t sequence,
                                            std::uint64_t nowMs, Outcome* cached) {
  auto found = m_sessions.find(id);
  if (found == m_sessions.end()) return Admission::Unknown;
  Session& session = found->second;
  session.lastActiveMs = std::max(session.lastActiveMs, nowMs);
  if (sequence == session.commandSequence + 1) return Admission::Apply;
  if (sequence > session.commandSequence) return Admission::Gap;
  auto response = session.responses.find(sequence);
  if (response == session.responses.end()) return Admission::Forgotten;
  if (cached) *cached = response->second;
  return Admission::Duplicate;
}

void SessionTable::record(SessionId id, std::uint64_t sequence, const Outcome& outcome) {
  auto found = m_sessions.find(id);
  if (found == m_sessions.end()) return;
  found->second.commandSequence = std::max(found->second.commandSequence, sequence);
  found->second.responses[sequence] = outcome;
}

Index SessionTable::publish(SessionId id, std::string name, std::string payload) {
  auto found = m_sessions.find(id);
  if (found == m_sessions.end()) return 0;
  Session& session = found->second;
  ++session.eventIndex;
  session.events.push_back(StoredEvent{session.eventIndex, std::move(name), std::move(payload)});
  return session.eventIndex;
}

std::vector<StoredEvent> SessionTable::eventsAfter(SessionId id, Index after) const {
  std::vector<StoredEvent> events;
  auto found = m_sessions.find(id);
  if (found == m_sessions.end()) return events;
  for (const StoredEvent& event : found->second.events) {
    if (event.index > after) events.push_back(event);
  }
  return events;
}

std::uint64_t SessionTable::sequenceOf(SessionId id) const {
  auto found = m_sessions.find(id);
  return found == m_sessions.end() ? 0 : found->second.commandSequence;
}

Index SessionTable::eventIndexOf(SessionId id) const {
  auto found = m_sessions.find(id);
  return found == m_sessions.end() ? 0 : found->second.eventIndex;
}

void SessionTable::save(serverlog::ExecutorSnapshot& snapshot) const {
  for (const auto& [id, session] : m_sessions) {
    serverlog::SessionRecord* record = snapshot.add_sessions();
    record->set_id(id);
    record->set_client_id(session.clientId);
    record->set_timeout_ms(session.timeoutMs);
    record->set_last_active_ms(session.lastActiveMs);
    record->set_command_sequence(session.commandSequence);
    record->set_event_index(session.eventIndex);
    for (const auto& [sequence, outcome] : session.responses) {
      serverlog::CachedResponse* response = record->add_responses();
      response->set_sequence(sequence);
      response->set_index(outcome.index);
      response->set_event_index(outcome.eventIndex);
      response->set_ok(outcome.result.ok());
      if (outcome.result.ok()) {
        response->set_result(*outcome.result);
      } else {
        response->set_error_code(static_cast<std::uint32_t>(outcome.result.error().code));
        response->set_error(outcome.result.error().message);
      }
    }
    for (const StoredEvent& event : session.events) {
      serverlog::StoredEvent* stored = record->add_events();
      stored->set_index(event.index);
      stored->set_name(event.name);
      stored->set_payload(event.payload);
    }
  }
}

bool SessionTable::load(const serverlog::ExecutorSnapshot& snapshot) {
  m_sessions.clear();
  constexpr auto kLastCode = static_cast<std::uint32_t>(ErrorCode::Closed);
  for (const serverlog::SessionRecord& record : snapshot.sessions()) {
    if (record.id() == 0 || m_sessions.count(record.id())) {
      m_sessions.clear();
      return false;
    }
    Session session;
    session.clientId = record.client_id();
    session.timeoutMs = record.timeout_ms();
    session.lastActiveMs = record.last_active_ms();
    session.commandSequence = record.command_sequence();
    session.eventIndex = record.event_index();
    for (const serverlog::CachedResponse& response : record.responses()) {
      if (response.error_code() > kLastCode || response.sequence() > session.commandSequence) {
        m_sessions.clear();
        return false;
      }
      Outcome outcome;
      outcome.index = response.index();
      outcome.eventIndex = response.event_index();
      if (response.ok()) {
        outcome.result = response.result();
      } else {
        outcome.result = Error{static_cast<ErrorCode>(response.error_code()), response.error()};
      }
      session.responses[response.sequence()] = std::move(outcome);
    }
    for (const serverlog::StoredEvent& event : record.events()) {
      if (event.index() == 0 || event.index() > session.eventIndex ||
          (!session.events.empty() && event.index() <= session.events.back().index)) {
        m_sessions.clear();
        return false;
      }
      session.events.push_back(StoredEvent{event.index(), event.name(), event.payload()});
    }
    m_sessions.emplace(record.id(), std::move(session));
  }
  return true;
}

}  // namespace copycat::server
