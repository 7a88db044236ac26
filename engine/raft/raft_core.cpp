#include "engine/raft/raft_core.h"

#include <algorithm>
#include <stdexcept>
#include <string>

namespace copycat::raft {

std::uint64_t SeededRandom::next() {
  std::uint64_t z = (m_state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

namespace {

bool isLeaderMessage(MessageType type) {
  return type == MessageType::Append || type == MessageType::Heartbeat ||
         type == MessageType::InstallSnapshot;
}

Message reply(const Message& to, MessageType type) {
  Message message;
  message.type = type;
  message.to = to.from;
  return message;
}

}  // namespace

RaftCore::RaftCore(const Config& config, const LogStorage& storage, Membership initialMembership)
    : m_config(config),
      m_storage(storage),
      m_log(storage),
      m_random(config.seed ^ (config.id * 0xD1B54A32D192ED03ull)) {
  if (config.id == kNoNode) throw std::invalid_argument("raft::Config: id must not be 0");
  if (config.heartbeatTicks < 1 || config.electionTicks <= config.heartbeatTicks) {
    throw std::invalid_argument("raft::Config: need 1 <= heartbeatTicks < electionTicks");
  }
  if (config.leaseDriftTicks < 1 || config.leaseDriftTicks >= config.electionTicks) {
    throw std::invalid_argument("raft::Config: need 1 <= leaseDriftTicks < electionTicks");
  }
  if (config.maxInflightMessages < 1 || config.snapshotChunkBytes < 1 ||
      config.maxSnapshotChunksInFlight < 1) {
    throw std::invalid_argument("raft::Config: flow-control limits must be positive");
  }
  const HardState hardState = storage.hardState();
  const SnapshotMeta snapshot = storage.snapshotMeta();
  m_term = hardState.term;
  m_vote = hardState.vote;
  m_persistedHardState = hardState;
  m_durableLastIndex = storage.lastIndex();
  m_restarted = hardState.term > 0;
  m_membership = snapshot.membership;
  m_membershipHistory.push_back({snapshot.index, snapshot.membership});

  const bool empty = storage.lastIndex() == 0 && snapshot.isEmpty() && hardState.isEmpty();
  if (empty && !initialMembership.voters.empty()) {
    // Bootstrap: every founding member writes the same entries, so the
    // membership lives in the log like any later change.
    std::vector<Entry> founding;
    auto add = [&](ConfigChange::Kind kind, NodeId node) {
      Entry entry;
      entry.term = 1;
      entry.index = founding.size() + 1;
      entry.type = EntryType::ConfigChange;
      entry.change = {kind, node};
      founding.push_back(std::move(entry));
    };
    for (NodeId voter : initialMembership.voters) add(ConfigChange::Kind::AddVoter, voter);
    for (NodeId learner : initialMembership.learners) add(ConfigChange::Kind::AddLearner, learner);
    trackChanges(founding, 0);
    const Index last = founding.size();
    m_log.append(std::move(founding));
    m_term = 1;
    commitTo(last);
  } else {
    // Replay the membership changes after the snapshot: committed ones apply
    // now, the rest wait for their commit.
    if (storage.lastIndex() > snapshot.index) {
      for (const Entry& entry :
           storage.entries(snapshot.index + 1, storage.lastIndex() + 1, SIZE_MAX)) {
        if (entry.type == EntryType::ConfigChange) m_uncommittedChanges[entry.index] = entry.change;
      }
    }
    onCommitAdvanced(snapshot.index);
  }
  const Index applied = std::max(config.applied, snapshot.index);
  if (applied > m_log.committed()) {
    throw std::invalid_argument("raft::Config: applied index " + std::to_string(applied) +
                                " is beyond the commit index " + std::to_string(m_log.committed()));
  }
  m_log.setApplied(applied);
  becomeFollower(m_term, kNoNode);
}

// ----- roles -----

void RaftCore::reset(Term term) {
  if (term != m_term) {
    m_term = term;
    m_vote = kNoNode;
    publish(CoreEvent::Kind::TermChanged);
  }
  m_leader = kNoNode;
  m_electionElapsed = 0;
  m_heartbeatElapsed = 0;
  resetRandomizedTimeout();
  if (m_transferee != kNoNode) publish(CoreEvent::Kind::LeaderTransfer, m_transferee, 0, "aborted");
  m_transferee = kNoNode;
  m_transferElapsed = 0;
  m_votes.clear();
  m_progress.clear();
  m_pendingReads.clear();
  m_readsAwaitingTermCommit.clear();
  m_roundSentAt.clear();
  m_leaseKnown = false;
  m_broadcastPending = false;
  m_commitBroadcastPending = false;
  m_heartbeatPending = false;
}

void RaftCore::setRole(Role role) {
  const bool changed = role != m_role;
  m_role = role;
  if (changed) publish(CoreEvent::Kind::RoleChanged, m_leader);
}

void RaftCore::becomeFollower(Term term, NodeId leader) {
  reset(term);
  m_leader = leader;
  if (m_role == Role::Follower && leader != kNoNode) {
    publish(CoreEvent::Kind::RoleChanged, leader, 0, "leader known");
  }
  setRole(Role::Follower);
}

void RaftCore::becomePreCandidate() {
  m_votes.clear();
  m_leader = kNoNode;
  setRole(Role::PreCandidate);
}

void RaftCore::becomeCandidate() {
  reset(m_term + 1);
  m_vote = m_config.id;
  setRole(Role::Candidate);
}

void RaftCore::becomeLeader() {
  reset(m_term);
  m_leader = m_config.id;
  const Index last = m_log.lastIndex();
  syncProgressWithMembership();
  m_pendingChangeIndex = last;
  setRole(Role::Leader);
  Entry noop;
  noop.type = EntryType::Noop;
  appendEntries({std::move(noop)});
}

bool RaftCore::promotable() const {
  return m_membership.isVoter(m_config.id) && !m_log.unstableSnapshot();
}

void RaftCore::resetRandomizedTimeout() {
  const int base = m_config.electionTicks;
  m_randomizedTimeout = base + static_cast<int>(m_random.below(static_cast<std::uint64_t>(base)));
}

void RaftCore::campaign() {
  if (m_role == Role::Leader || !promotable()) return;
  startElection(m_config.preVote, false);
}

void RaftCore::startElection(bool preVote, bool transfer) {
  if (preVote) {
    becomePreCandidate();
  } else {
    becomeCandidate();
  }
  const Term voteTerm = preVote ? m_term + 1 : m_term;
  m_votes[m_config.id] = true;
  if (m_votes.size() >= quorumSize()) {
    if (preVote) {
      startElection(false, transfer);
    } else {
      becomeLeader();
    }
    return;
  }
  for (NodeId voter : m_membership.voters) {
    if (voter == m_config.id) continue;
    Message message;
    message.type = preVote ? MessageType::PreVote : MessageType::Vote;
    message.to = voter;
    message.term = voteTerm;
    message.index = m_log.lastIndex();
    message.logTerm = m_log.lastTerm();
    message.context = transfer ? 1 : 0;
    send(std::move(message));
  }
}

// ----- input -----

void RaftCore::tick() {
  ++m_ticks;
  ++m_ticksSinceStart;
  if (m_role != Role::Leader) {
    ++m_electionElapsed;
    if (promotable() && m_electionElapsed >= m_randomizedTimeout) {
      m_electionElapsed = 0;
      startElection(m_config.preVote, false);
    }
    return;
  }
  ++m_heartbeatElapsed;
  ++m_electionElapsed;
  if (m_electionElapsed >= m_config.electionTicks) {
    m_electionElapsed = 0;
    if (m_config.checkQuorum && !quorumActive()) {
      publish(CoreEvent::Kind::RoleChanged, kNoNode, 0, "lost contact with a majority");
      becomeFollower(m_term, kNoNode);
      return;
    }
  }
  if (m_transferee != kNoNode && ++m_transferElapsed >= m_config.electionTicks) {
    publish(CoreEvent::Kind::LeaderTransfer, m_transferee, 0, "timed out");
    m_transferee = kNoNode;
    m_transferElapsed = 0;
  }
  if (m_heartbeatElapsed >= m_config.heartbeatTicks) {
    m_heartbeatElapsed = 0;
    broadcastHeartbeat();
  }
  for (auto& [peer, progress] : m_progress) {
    if (progress.state != Progress::State::Snapshot) continue;
    if (++progress.snapshotIdleTicks >= m_config.electionTicks) {
      // Chunks or their answers were lost: resend from the last one acked.
      progress.snapshotIdleTicks = 0;
      progress.snapshotSendOffset = progress.snapshotAckedOffset;
      progress.snapshotChunksInFlight = 0;
      progress.snapshotLastSent = false;
      sendSnapshotChunks(peer, progress);
    }
  }
}

void RaftCore::step(const Message& message) {
  if (message.to != m_config.id) {
    publish(CoreEvent::Kind::MessageIgnored, message.from, 0, "addressed to another node");
    return;
  }
  const MessageType type = message.type;
  if (message.term > m_term) {
    if (type == MessageType::Vote || type == MessageType::PreVote) {
      const bool transfer = message.context != 0;
      const bool inLease =
          m_config.checkQuorum && m_electionElapsed < m_config.electionTicks &&
          (m_leader != kNoNode ||
           (m_restarted && m_ticksSinceStart < std::uint64_t(m_config.electionTicks)));
      if (!transfer && inLease) {
        publish(CoreEvent::Kind::MessageIgnored, message.from, 0,
                std::string(toString(type)) + " while a leader is current");
        return;
      }
      if (!transfer && !m_membership.voters.empty() && !m_membership.isVoter(message.from)) {
        publish(CoreEvent::Kind::MessageIgnored, message.from, 0,
                std::string(toString(type)) + " from a non-voter");
        return;
      }
    }
    if (type == MessageType::PreVote || (type == MessageType::PreVoteResponse && !message.reject)) {
      // A pre-vote never changes terms.
    } else if (isLeaderMessage(type)) {
      becomeFollower(message.term, message.from);
    } else {
      becomeFollower(message.term, kNoNode);
    }
  } else if (message.term < m_term) {
    if ((m_config.checkQuorum || m_config.preVote) &&
        (type == MessageType::Append || type == MessageType::Heartbeat)) {
      // Tell a deposed leader about the newer term so it steps down.
      send(reply(message, MessageType::AppendResponse));
    } else if (type == MessageType::PreVote) {
      Message response = reply(message, MessageType::PreVoteResponse);
      response.term = m_term;
      response.reject = true;
      send(std::move(response));
    } else {
      publish(CoreEvent::Kind::MessageIgnored, message.from, 0,
              std::string(toString(type)) + " from stale term " + std::to_string(message.term));
    }
    return;
  }

  if (type == MessageType::Vote || type == MessageType::PreVote) {
    handleVoteRequest(message);
    return;
  }
  switch (m_role) {
    case Role::Leader:
      stepLeader(message);
      break;
    case Role::PreCandidate:
    case Role::Candidate:
      stepCandidate(message);
      break;
    case Role::Follower:
      stepFollower(message);
      break;
  }
}

void RaftCore::handleVoteRequest(const Message& message) {
  const bool pre = message.type == MessageType::PreVote;
  const bool canVote = m_vote == message.from || (m_vote == kNoNode && m_leader == kNoNode) ||
                       (pre && message.term > m_term);
  Message response = reply(message, pre ? MessageType::PreVoteResponse : MessageType::VoteResponse);
  if (canVote && m_log.isUpToDate(message.index, message.logTerm)) {
    response.term = pre ? message.term : m_term;
    if (!pre) {
      m_electionElapsed = 0;
      m_vote = message.from;
      publish(CoreEvent::Kind::VoteCast, message.from);
    }
  } else {
    response.term = m_term;
    response.reject = true;
    publish(CoreEvent::Kind::MessageRejected, message.from, 0,
            std::string(toString(message.type)) +
                (canVote ? ": candidate log is behind" : ": already voted or leader known"));
  }
  send(std::move(response));
}

void RaftCore::stepFollower(const Message& message) {
  switch (message.type) {
    case MessageType::Append:
    case MessageType::Heartbeat:
    case MessageType::InstallSnapshot:
      m_electionElapsed = 0;
      if (m_leader != message.from) {
        m_leader = message.from;
        publish(CoreEvent::Kind::RoleChanged, message.from, 0, "leader known");
      }
      if (message.type == MessageType::Append) {
        handleAppend(message);
      } else if (message.type == MessageType::Heartbeat) {
        handleHeartbeat(message);
      } else {
        handleSnapshotChunk(message);
      }
      break;
    case MessageType::TimeoutNow:
      if (promotable()) {
        publish(CoreEvent::Kind::LeaderTransfer, message.from, 0, "campaigning on TimeoutNow");
        startElection(false, true);
      }
      break;
    default:
      break;
  }
}

void RaftCore::stepCandidate(const Message& message) {
  switch (message.type) {
    case MessageType::Append:
    case MessageType::Heartbeat:
    case MessageType::InstallSnapshot:
      becomeFollower(m_term, message.from);
      stepFollower(message);
      break;
    case MessageType::PreVoteResponse:
      if (m_role == Role::PreCandidate) tallyVote(message);
      break;
    case MessageType::VoteResponse:
      if (m_role == Role::Candidate) tallyVote(message);
      break;
    default:
      break;
  }
}

void RaftCore::tallyVote(const Message& message) {
  if (!m_membership.isVoter(message.from)) return;
  m_votes.emplace(message.from, !message.reject);
  std::size_t granted = 0;
  std::size_t rejected = 0;
  for (const auto& [voter, yes] : m_votes) (yes ? granted : rejected) += 1;
  if (granted >= quorumSize()) {
    if (m_role == Role::PreCandidate) {
      startElection(false, false);
    } else {
      becomeLeader();
    }
  } else if (rejected > m_membership.voters.size() - quorumSize()) {
    becomeFollower(m_term, kNoNode);
  }
}

void RaftCore::handleAppend(const Message& message) {
  Message response = reply(message, MessageType::AppendResponse);
  if (message.index < m_log.committed()) {
    response.index = m_log.committed();
    send(std::move(response));
    return;
  }
  Index truncatedFrom = 0;
  const std::optional<Index> lastNew =
      m_log.maybeAppend(message.index, message.logTerm, message.entries, truncatedFrom);
  if (lastNew) {
    trackChanges(message.entries, truncatedFrom);
    commitTo(std::min(message.commit, *lastNew));
    if (message.entries.empty() && message.context == 1) return;
    response.index = *lastNew;
  } else {
    const Index hint =
        m_log.findConflictByTerm(std::min(message.index, m_log.lastIndex()), message.logTerm);
    response.reject = true;
    response.index = message.index;
    response.hintIndex = hint;
    response.hintTerm = m_log.term(hint).value_or(0);
    publish(CoreEvent::Kind::MessageRejected, message.from, message.index,
            "Append: no entry " + std::to_string(message.index) + " of term " +
                std::to_string(message.logTerm));
  }
  send(std::move(response));
}

void RaftCore::handleHeartbeat(const Message& message) {
  commitTo(std::min(message.commit, m_log.lastIndex()));
  Message response = reply(message, MessageType::HeartbeatResponse);
  response.context = message.context;
  send(std::move(response));
}

void RaftCore::handleSnapshotChunk(const Message& message) {
  const SnapshotMeta& meta = message.snapshot;
  Message response = reply(message, MessageType::InstallSnapshotResponse);
  response.snapshot = meta;
  if (meta.index <= m_log.committed() ||
      (message.offset == 0 && m_log.matchTerm(meta.index, meta.term))) {
    // We already hold everything the snapshot covers.
    commitTo(meta.index);
    if (m_incomingSnapshot && m_incomingSnapshot->meta.index <= meta.index) {
      m_incomingSnapshot.reset();
    }
    response.done = true;
    response.offset = meta.size;
    send(std::move(response));
    return;
  }
  if (m_log.unstableSnapshot()) {
    // The previous snapshot is not persisted yet; its chunks and this one
    // must not mix in the runtime. The leader resends after a pause.
    publish(CoreEvent::Kind::MessageIgnored, message.from, meta.index,
            "InstallSnapshot while the previous snapshot is being persisted");
    return;
  }
  if (message.offset == 0) {
    m_incomingSnapshot = IncomingSnapshot{meta, 0};
  } else if (!m_incomingSnapshot || !(m_incomingSnapshot->meta == meta) ||
             m_incomingSnapshot->received != message.offset) {
    response.reject = true;
    response.offset =
        (m_incomingSnapshot && m_incomingSnapshot->meta == meta) ? m_incomingSnapshot->received : 0;
    send(std::move(response));
    return;
  }
  IncomingSnapshot& incoming = *m_incomingSnapshot;
  m_snapshotChunks.push_back({meta, message.offset, message.data, message.done});
  incoming.received += message.data.size();
  if (message.done || incoming.received >= meta.size) {
    if (incoming.received != meta.size || !message.done) {
      publish(CoreEvent::Kind::MessageRejected, message.from, meta.index,
              "InstallSnapshot: size mismatch, restarting the transfer");
      m_incomingSnapshot.reset();
      response.reject = true;
      response.offset = 0;
      send(std::move(response));
      return;
    }
    m_log.restore(meta);
    m_membership = meta.membership;
    m_membershipHistory = {{meta.index, meta.membership}};
    m_uncommittedChanges.clear();
    m_incomingSnapshot.reset();
    publish(CoreEvent::Kind::SnapshotInstalled, message.from, meta.index);
    response.done = true;
    response.offset = meta.size;
  } else {
    response.offset = incoming.received;
  }
  send(std::move(response));
}

// ----- leader -----

void RaftCore::stepLeader(const Message& message) {
  auto it = m_progress.find(message.from);
  if (it == m_progress.end()) {
    publish(CoreEvent::Kind::MessageIgnored, message.from, 0, "from a node outside the membership");
    return;
  }
  it->second.recentActive = true;
  switch (message.type) {
    case MessageType::AppendResponse:
      handleAppendResponse(message, it->second);
      break;
    case MessageType::HeartbeatResponse:
      handleHeartbeatResponse(message, it->second);
      break;
    case MessageType::InstallSnapshotResponse:
      handleSnapshotResponse(message, it->second);
      break;
    default:
      break;
  }
}

void RaftCore::handleAppendResponse(const Message& message, Progress& progress) {
  const NodeId from = message.from;
  if (message.reject) {
    Index hint = message.hintIndex;
    if (message.hintTerm > 0) hint = m_log.findConflictByTerm(message.hintIndex, message.hintTerm);
    if (progress.maybeDecreaseTo(message.index, hint)) {
      if (progress.state == Progress::State::Replicate) progress.becomeProbe();
      sendAppend(from, true);
    }
    return;
  }
  const bool probeAnswered =
      progress.state == Progress::State::Probe && progress.match == message.index;
  if (!progress.maybeUpdate(message.index) && !probeAnswered) {
    if (progress.state == Progress::State::Replicate) progress.freeInflightTo(message.index);
    return;
  }
  switch (progress.state) {
    case Progress::State::Probe:
      progress.becomeReplicate();
      break;
    case Progress::State::Snapshot:
      if (progress.match >= progress.pendingSnapshot) progress.becomeProbe();
      break;
    case Progress::State::Replicate:
      progress.freeInflightTo(message.index);
      break;
  }
  if (maybeCommit()) m_commitBroadcastPending = true;
  // Committing may have changed the membership or our role.
  if (m_role != Role::Leader || !m_progress.contains(from)) return;
  while (sendAppend(from, false)) {
  }
  if (from == m_transferee && m_progress[from].match == m_log.lastIndex()) sendTimeoutNow(from);
}

void RaftCore::handleHeartbeatResponse(const Message& message, Progress& progress) {
  progress.probeSent = false;
  // Appends or their answers may be lost: free one slot so replication
  // resumes; a gap makes the follower reject and the leader probe again.
  if (progress.state == Progress::State::Replicate &&
      progress.inflight.size() >= m_config.maxInflightMessages) {
    progress.inflight.pop_front();
  }
  if (m_membership.isVoter(message.from) && message.context > progress.ackedRound) {
    progress.ackedRound = message.context;
    releaseReads();
  }
  if (progress.match < m_log.lastIndex()) sendAppend(message.from, true);
}

void RaftCore::handleSnapshotResponse(const Message& message, Progress& progress) {
  if (progress.state != Progress::State::Snapshot ||
      message.snapshot.index != progress.pendingSnapshot) {
    return;
  }
  progress.snapshotIdleTicks = 0;
  if (message.done) {
    progress.maybeUpdate(message.snapshot.index);
    progress.becomeProbe();
    sendAppend(message.from, true);
    return;
  }
  if (message.reject) {
    progress.snapshotSendOffset = message.offset;
    progress.snapshotAckedOffset = message.offset;
    progress.snapshotChunksInFlight = 0;
    progress.snapshotLastSent = false;
  } else {
    progress.snapshotAckedOffset = std::max(progress.snapshotAckedOffset, message.offset);
    if (progress.snapshotChunksInFlight > 0) --progress.snapshotChunksInFlight;
  }
  sendSnapshotChunks(message.from, progress);
}

void RaftCore::send(Message message) {
  message.from = m_config.id;
  if (message.type != MessageType::PreVote && message.type != MessageType::PreVoteResponse) {
    message.term = m_term;
  }
  m_messages.push_back(std::move(message));
}

bool RaftCore::sendAppend(NodeId to, bool sendIfEmpty, bool commitNotice) {
  auto it = m_progress.find(to);
  if (it == m_progress.end() || to == m_config.id) return false;
  Progress& progress = it->second;
  if (progress.isPaused(m_config.maxInflightMessages)) return false;
  const Index previous = progress.next - 1;
  const std::optional<Term> previousTerm = m_log.term(previous);
  std::optional<std::vector<Entry>> entries;
  if (previousTerm) {
    entries = m_log.entriesFrom(progress.next, m_config.maxEntriesPerMessage,
                                m_config.maxBytesPerMessage);
  }
  if (!previousTerm || !entries) {
    startSnapshot(to, progress);
    return false;
  }
  if (entries->empty() && !sendIfEmpty) return false;
  Message message;
  message.type = MessageType::Append;
  message.to = to;
  message.index = previous;
  message.logTerm = *previousTerm;
  message.commit = m_log.committed();
  if (!entries->empty()) {
    const Index last = entries->back().index;
    if (progress.state == Progress::State::Replicate) {
      progress.next = last + 1;
      progress.inflight.push_back(last);
    } else {
      progress.probeSent = true;
    }
  } else if (progress.state == Progress::State::Probe) {
    progress.probeSent = true;
  } else if (commitNotice && progress.state == Progress::State::Replicate) {
    message.context = 1;
  }
  message.entries = std::move(*entries);
  send(std::move(message));
  return true;
}

void RaftCore::startSnapshot(NodeId to, Progress& progress) {
  const SnapshotMeta meta = m_storage.snapshotMeta();
  if (meta.isEmpty()) {
    publish(CoreEvent::Kind::MessageRejected, to, 0, "log compacted without a snapshot");
    return;
  }
  progress.becomeSnapshot(meta.index);
  publish(CoreEvent::Kind::SnapshotSending, to, meta.index);
  sendSnapshotChunks(to, progress);
}

void RaftCore::sendSnapshotChunks(NodeId to, Progress& progress) {
  const SnapshotMeta meta = m_storage.snapshotMeta();
  if (meta.index != progress.pendingSnapshot) {
    // A newer snapshot replaced the one being sent: start over with it.
    progress.becomeSnapshot(meta.index);
  }
  while (!progress.snapshotLastSent &&
         progress.snapshotChunksInFlight < m_config.maxSnapshotChunksInFlight) {
    Message message;
    message.type = MessageType::InstallSnapshot;
    message.to = to;
    message.snapshot = meta;
    message.offset = progress.snapshotSendOffset;
    message.data = m_storage.snapshotChunk(message.offset, m_config.snapshotChunkBytes);
    if (message.data.empty() && message.offset < meta.size) {
      publish(CoreEvent::Kind::MessageRejected, to, meta.index, "snapshot data unavailable");
      return;
    }
    message.done = message.offset + message.data.size() >= meta.size;
    progress.snapshotSendOffset += message.data.size();
    ++progress.snapshotChunksInFlight;
    progress.snapshotLastSent = message.done;
    send(std::move(message));
  }
}

void RaftCore::broadcastAppend() {
  for (const auto& [peer, progress] : m_progress) {
    if (peer == m_config.id) continue;
    if (m_commitBroadcastPending) {
      sendAppend(peer, true, true);
    } else {
      while (sendAppend(peer, false)) {
      }
    }
  }
}

void RaftCore::flushBroadcasts() {
  if (m_role == Role::Leader) {
    if (m_broadcastPending || m_commitBroadcastPending) broadcastAppend();
    if (m_heartbeatPending) broadcastHeartbeat();
  }
  m_broadcastPending = false;
  m_commitBroadcastPending = false;
  m_heartbeatPending = false;
}

void RaftCore::broadcastHeartbeat() {
  m_heartbeatPending = false;
  ++m_readRound;
  m_roundSentAt[m_readRound] = m_ticks;
  for (const auto& [peer, progress] : m_progress) {
    if (peer == m_config.id) continue;
    Message message;
    message.type = MessageType::Heartbeat;
    message.to = peer;
    message.commit = std::min(progress.match, m_log.committed());
    message.context = m_readRound;
    send(std::move(message));
  }
  releaseReads();
}

bool RaftCore::maybeCommit() {
  std::vector<Index> matches;
  for (NodeId voter : m_membership.voters) {
    auto it = m_progress.find(voter);
    matches.push_back(it == m_progress.end() ? 0 : it->second.match);
  }
  if (matches.empty()) return false;
  std::sort(matches.begin(), matches.end(), std::greater<>());
  const Index previous = m_log.committed();
  if (!m_log.maybeCommit(matches[quorumSize() - 1], m_term)) return false;
  onCommitAdvanced(previous);
  return true;
}

void RaftCore::appendEntries(std::vector<Entry> entries) {
  Index index = m_log.lastIndex();
  for (Entry& entry : entries) {
    entry.term = m_term;
    entry.index = ++index;
  }
  trackChanges(entries, 0);
  m_log.append(std::move(entries));
  // The leader's own match advances in advance(), once its write is durable.
  m_progress[m_config.id].recentActive = true;
  m_broadcastPending = true;
}

bool RaftCore::quorumActive() {
  std::size_t active = 0;
  for (NodeId voter : m_membership.voters) {
    auto it = m_progress.find(voter);
    if (voter == m_config.id || (it != m_progress.end() && it->second.recentActive)) ++active;
  }
  for (auto& [peer, progress] : m_progress) progress.recentActive = peer == m_config.id;
  return active >= quorumSize();
}

std::uint64_t RaftCore::quorumRound() const {
  std::vector<std::uint64_t> rounds;
  for (NodeId voter : m_membership.voters) {
    if (voter == m_config.id) {
      rounds.push_back(m_readRound);
      continue;
    }
    auto it = m_progress.find(voter);
    rounds.push_back(it == m_progress.end() ? 0 : it->second.ackedRound);
  }
  if (rounds.empty()) return 0;
  std::sort(rounds.begin(), rounds.end(), std::greater<>());
  return rounds[quorumSize() - 1];
}

void RaftCore::releaseReads() {
  if (m_role != Role::Leader) return;
  const std::uint64_t round = quorumRound();
  if (round == 0) return;
  auto sent = m_roundSentAt.find(round);
  if (sent != m_roundSentAt.end()) {
    m_leaseStart = sent->second;
    m_leaseKnown = true;
    m_roundSentAt.erase(m_roundSentAt.begin(), sent);
  }
  while (!m_pendingReads.empty() && m_pendingReads.front().round <= round) {
    const PendingRead& read = m_pendingReads.front();
    m_readStates.push_back({read.requestId, read.index});
    publish(CoreEvent::Kind::ReadReleased, kNoNode, read.index);
    m_pendingReads.pop_front();
  }
}

bool RaftCore::leaseValid() const {
  if (m_role != Role::Leader || m_transferee != kNoNode || !committedInCurrentTerm()) return false;
  if (m_membership.voters.size() == 1 && m_membership.isVoter(m_config.id)) return true;
  if (!m_config.checkQuorum || !m_leaseKnown) return false;
  const std::uint64_t leaseTicks =
      static_cast<std::uint64_t>(m_config.electionTicks - m_config.leaseDriftTicks);
  return m_ticks < m_leaseStart + leaseTicks;
}

bool RaftCore::committedInCurrentTerm() const {
  return m_log.term(m_log.committed()).value_or(0) == m_term;
}

void RaftCore::sendTimeoutNow(NodeId to) {
  Message message;
  message.type = MessageType::TimeoutNow;
  message.to = to;
  send(std::move(message));
  publish(CoreEvent::Kind::LeaderTransfer, to, 0, "TimeoutNow sent");
}

// ----- proposals -----

ProposeResult RaftCore::propose(std::string data) {
  if (m_role != Role::Leader) return ProposeResult::NotLeader;
  if (m_transferee != kNoNode) return ProposeResult::TransferInProgress;
  Entry entry;
  entry.data = std::move(data);
  appendEntries({std::move(entry)});
  return ProposeResult::Accepted;
}

ProposeResult RaftCore::proposeChange(const ConfigChange& change, std::string data) {
  if (m_role != Role::Leader) return ProposeResult::NotLeader;
  if (m_transferee != kNoNode) return ProposeResult::TransferInProgress;
  if (m_pendingChangeIndex > m_log.committed() || !m_uncommittedChanges.empty() ||
      !committedInCurrentTerm()) {
    return ProposeResult::ChangeInProgress;
  }
  if (!m_membership.apply(change)) return ProposeResult::InvalidChange;
  Entry entry;
  entry.type = EntryType::ConfigChange;
  entry.change = change;
  entry.data = std::move(data);
  appendEntries({std::move(entry)});
  m_pendingChangeIndex = m_log.lastIndex();
  return ProposeResult::Accepted;
}

ProposeResult RaftCore::readIndex(std::uint64_t requestId, ReadMode mode) {
  if (m_role != Role::Leader) return ProposeResult::NotLeader;
  if (!committedInCurrentTerm()) {
    // The leader does not know the commit index of its term yet; the read
    // waits for the term's no-op to commit.
    m_readsAwaitingTermCommit.push_back(requestId);
    return ProposeResult::Accepted;
  }
  if (mode == ReadMode::Lease && leaseValid()) {
    m_readStates.push_back({requestId, m_log.committed()});
    publish(CoreEvent::Kind::ReadReleased, kNoNode, m_log.committed(), "lease");
    return ProposeResult::Accepted;
  }
  m_pendingReads.push_back({requestId, m_log.committed(), m_readRound + 1});
  m_heartbeatPending = true;
  if (m_membership.voters.size() == 1) broadcastHeartbeat();
  return ProposeResult::Accepted;
}

ProposeResult RaftCore::transferLeadership(NodeId target) {
  if (m_role != Role::Leader) return ProposeResult::NotLeader;
  if (target == m_config.id) return ProposeResult::Accepted;
  if (!m_membership.isVoter(target)) return ProposeResult::InvalidChange;
  if (m_transferee == target) return ProposeResult::Accepted;
  m_transferee = target;
  m_transferElapsed = 0;
  publish(CoreEvent::Kind::LeaderTransfer, target, 0, "started");
  if (m_progress[target].match == m_log.lastIndex()) {
    sendTimeoutNow(target);
  } else {
    sendAppend(target, true);
  }
  return ProposeResult::Accepted;
}

void RaftCore::snapshotTaken(Index index) {
  if (index > m_log.applied()) {
    throw std::logic_error("raft::Node::snapshotTaken: index " + std::to_string(index) +
                           " is beyond the applied index " + std::to_string(m_log.applied()));
  }
  auto governing = std::upper_bound(
      m_membershipHistory.begin(), m_membershipHistory.end(), index,
      [](Index value, const std::pair<Index, Membership>& item) { return value < item.first; });
  if (governing != m_membershipHistory.begin()) {
    m_membershipHistory.erase(m_membershipHistory.begin(), std::prev(governing));
  }
  publish(CoreEvent::Kind::LogCompacted, kNoNode, index);
}

void RaftCore::reportUnreachable(NodeId peer) {
  auto it = m_progress.find(peer);
  if (m_role != Role::Leader || it == m_progress.end()) return;
  if (it->second.state == Progress::State::Replicate) it->second.becomeProbe();
}

void RaftCore::reportDisconnected(NodeId peer) {
  if (m_role == Role::Leader) {
    reportUnreachable(peer);
    return;
  }
  if (peer == kNoNode || peer != m_leader || !promotable()) return;
  // A closed connection does not prove the leader dead: it may still hold
  // its lease and serve reads from it. Votes stay refused until the lease
  // is over (m_electionElapsed reaches electionTicks, see step()); only the
  // randomized wait beyond that goes, replaced by an order of the voters.
  int rank = 0;
  for (NodeId voter : m_membership.voters) {
    if (voter != peer && voter < m_config.id) ++rank;
  }
  const int timeout = m_config.electionTicks + 1 + 2 * rank;
  m_randomizedTimeout = std::min(m_randomizedTimeout, timeout);
  publish(CoreEvent::Kind::RoleChanged, peer, 0,
          "connection to the leader closed; campaigning " + std::to_string(timeout) +
              " ticks after its last message");
}

Membership RaftCore::membershipAt(Index index) const {
  for (auto it = m_membershipHistory.rbegin(); it != m_membershipHistory.rend(); ++it) {
    if (it->first <= index) return it->second;
  }
  return m_membershipHistory.front().second;
}

// ----- membership -----

void RaftCore::commitTo(Index index) {
  const Index previous = m_log.committed();
  if (index <= previous) return;
  m_log.commitTo(index);
  onCommitAdvanced(previous);
}

void RaftCore::onCommitAdvanced(Index previous) {
  const Index committed = m_log.committed();
  if (committed > previous) publish(CoreEvent::Kind::CommitAdvanced, kNoNode, committed);
  while (!m_uncommittedChanges.empty() && m_uncommittedChanges.begin()->first <= committed) {
    const auto [index, change] = *m_uncommittedChanges.begin();
    m_uncommittedChanges.erase(m_uncommittedChanges.begin());
    if (std::optional<Membership> next = m_membership.apply(change)) {
      applyMembership(index, *next);
    } else {
      publish(CoreEvent::Kind::MembershipChanged, change.node, index,
              "ignored invalid change " + std::string(toString(change.kind)));
    }
  }
  if (m_role == Role::Leader && committedInCurrentTerm() && !m_readsAwaitingTermCommit.empty()) {
    for (std::uint64_t requestId : m_readsAwaitingTermCommit) {
      m_pendingReads.push_back({requestId, committed, m_readRound + 1});
    }
    m_readsAwaitingTermCommit.clear();
    m_heartbeatPending = true;
    if (m_membership.voters.size() == 1) broadcastHeartbeat();
  }
}

void RaftCore::applyMembership(Index index, const Membership& membership) {
  m_membership = membership;
  m_membershipHistory.push_back({index, membership});
  std::string text = "voters";
  for (NodeId voter : membership.voters) text += " " + std::to_string(voter);
  text += "; learners";
  for (NodeId learner : membership.learners) text += " " + std::to_string(learner);
  publish(CoreEvent::Kind::MembershipChanged, kNoNode, index, text);
  if (m_role != Role::Leader) return;
  if (!membership.isVoter(m_config.id)) {
    publish(CoreEvent::Kind::RoleChanged, kNoNode, index, "no longer a voter: stepping down");
    becomeFollower(m_term, kNoNode);
    return;
  }
  if (m_transferee != kNoNode && !membership.isVoter(m_transferee)) m_transferee = kNoNode;
  syncProgressWithMembership();
  m_broadcastPending = true;
  maybeCommit();
}

void RaftCore::syncProgressWithMembership() {
  const Index last = m_log.lastIndex();
  for (auto it = m_progress.begin(); it != m_progress.end();) {
    it = m_membership.contains(it->first) ? std::next(it) : m_progress.erase(it);
  }
  auto ensure = [&](NodeId id) {
    if (m_progress.contains(id)) return;
    Progress progress;
    progress.next = last + 1;
    if (id == m_config.id) {
      progress.match = std::min(m_durableLastIndex, m_log.stableLastIndex());
      progress.recentActive = true;
    }
    m_progress.emplace(id, progress);
  };
  for (NodeId voter : m_membership.voters) ensure(voter);
  for (NodeId learner : m_membership.learners) ensure(learner);
  ensure(m_config.id);
}

void RaftCore::trackChanges(const std::vector<Entry>& entries, Index truncatedFrom) {
  if (truncatedFrom != 0) {
    m_uncommittedChanges.erase(m_uncommittedChanges.lower_bound(truncatedFrom),
                               m_uncommittedChanges.end());
  }
  for (const Entry& entry : entries) {
    if (entry.type == EntryType::ConfigChange && entry.index > m_log.committed()) {
      m_uncommittedChanges[entry.index] = entry.change;
    }
  }
}

// ----- output -----

bool RaftCore::hasReady() const {
  if (m_readyOutstanding || m_whileWritingOutstanding) return false;
  const HardState current{m_term, m_vote, m_log.committed()};
  return m_broadcastPending || m_commitBroadcastPending || m_heartbeatPending ||
         !m_messages.empty() || !m_log.unstableEntries().empty() ||
         m_log.unstableSnapshot().has_value() || !m_snapshotChunks.empty() ||
         !(current == m_persistedHardState) || hasCommittedToHandOut() || !m_readStates.empty() ||
         m_role != m_reportedRole || m_leader != m_reportedLeader;
}

bool RaftCore::leaderTermDurable() const {
  return m_role == Role::Leader && m_term == m_persistedHardState.term &&
         m_vote == m_persistedHardState.vote && !m_log.unstableSnapshot();
}

Index RaftCore::firstCommittedToHandOut() const {
  return std::max(m_log.applied(), m_log.firstIndex() - 1) + 1;
}

bool RaftCore::hasCommittedToHandOut() const {
  return std::min(m_log.committed(), m_log.stableLastIndex()) >= firstCommittedToHandOut();
}

std::vector<Entry> RaftCore::takeCommitted() {
  const Index from = firstCommittedToHandOut();
  const Index to = std::min(m_log.committed(), m_log.stableLastIndex());
  if (to < from) return {};
  std::vector<Entry> out = m_log.slice(from, to + 1).value_or(std::vector<Entry>{});
  // Applied, for the core, means handed to the runtime to apply.
  if (!out.empty()) m_log.setApplied(out.back().index);
  return out;
}

Ready RaftCore::ready() {
  if (m_readyOutstanding || m_whileWritingOutstanding) {
    throw std::logic_error("raft::Node::ready called before advance of batch " +
                           std::to_string(m_readyNumber));
  }
  flushBroadcasts();
  Ready batch;
  batch.number = ++m_readyNumber;
  const HardState current{m_term, m_vote, m_log.committed()};
  if (!(current == m_persistedHardState)) batch.hardState = current;
  batch.entries = m_log.unstableEntries();
  batch.snapshot = m_log.unstableSnapshot();
  batch.snapshotChunks = std::move(m_snapshotChunks);
  m_snapshotChunks.clear();
  batch.messages = std::move(m_messages);
  m_messages.clear();
  batch.committed = takeCommitted();
  batch.reads = std::move(m_readStates);
  m_readStates.clear();
  if (m_role != m_reportedRole || m_leader != m_reportedLeader) {
    batch.role = m_role;
    m_reportedRole = m_role;
    m_reportedLeader = m_leader;
  }
  batch.leader = m_leader;
  batch.sendBeforePersist = leaderTermDurable() && batch.snapshotChunks.empty();
  m_readyOutstanding = true;
  m_writingNumber = batch.number;
  return batch;
}

bool RaftCore::hasReadyWhileWriting() const {
  if (!m_readyOutstanding || m_whileWritingOutstanding || !leaderTermDurable() ||
      m_role != m_reportedRole || m_leader != m_reportedLeader || !m_snapshotChunks.empty()) {
    return false;
  }
  return m_broadcastPending || m_commitBroadcastPending || m_heartbeatPending ||
         !m_messages.empty() || hasCommittedToHandOut() || !m_readStates.empty();
}

Ready RaftCore::readyWhileWriting() {
  if (!hasReadyWhileWriting()) {
    throw std::logic_error("raft::Node::readyWhileWriting without such a batch");
  }
  flushBroadcasts();
  Ready batch;
  batch.number = ++m_readyNumber;
  batch.messages = std::move(m_messages);
  m_messages.clear();
  batch.committed = takeCommitted();
  batch.reads = std::move(m_readStates);
  m_readStates.clear();
  batch.leader = m_leader;
  batch.sendBeforePersist = true;
  m_whileWritingOutstanding = true;
  m_whileWritingNumber = batch.number;
  return batch;
}

void RaftCore::advance(const Ready& batch) { finishBatch(batch, true); }

void RaftCore::advanceWritten(const Ready& batch) {
  if (!batch.sendBeforePersist) {
    throw std::logic_error("raft::Node::advanceWritten: batch " + std::to_string(batch.number) +
                           " must be durable before its messages leave");
  }
  finishBatch(batch, false);
}

void RaftCore::markDurable(Index index) {
  m_durableLastIndex = std::max(m_durableLastIndex, std::min(index, m_log.stableLastIndex()));
  // Only a leader counts its own copy; elsewhere nothing left the node
  // before its write was durable.
  if (m_role != Role::Leader) return;
  if (m_progress[m_config.id].maybeUpdate(m_durableLastIndex) && maybeCommit()) {
    m_commitBroadcastPending = true;
  }
}

bool RaftCore::ownSyncNeeded() const {
  if (m_role != Role::Leader) return true;
  std::size_t replicating = 0;
  for (NodeId voter : m_membership.voters) {
    if (voter == m_config.id) continue;
    auto it = m_progress.find(voter);
    if (it != m_progress.end() && it->second.state == PeerProgress::State::Replicate) ++replicating;
  }
  return replicating < quorumSize();
}

void RaftCore::finishBatch(const Ready& batch, bool durable) {
  const bool whileWriting = m_whileWritingOutstanding && batch.number == m_whileWritingNumber;
  if (!whileWriting && (!m_readyOutstanding || batch.number != m_writingNumber)) {
    throw std::logic_error("raft::Node::advance: batch " + std::to_string(batch.number) +
                           " is not an outstanding one");
  }
  if (whileWriting) {
    // Nothing of it needed a write; the batch being written stays outstanding.
    m_whileWritingOutstanding = false;
    return;
  }
  if (batch.hardState) m_persistedHardState = *batch.hardState;
  if (batch.snapshot) {
    m_log.stableSnapshotTo(batch.snapshot->index);
    m_log.setApplied(std::max(m_log.applied(), batch.snapshot->index));
    m_durableLastIndex =
        std::max(std::min(m_durableLastIndex, m_log.stableLastIndex()), batch.snapshot->index);
  }
  if (!batch.entries.empty()) {
    m_log.stableTo(batch.entries.back().index, batch.entries.back().term);
    // Entries after the first new one may have been replaced.
    m_durableLastIndex = std::min(m_durableLastIndex, batch.entries.front().index - 1);
    // Thesis §10.2.1: a leader replicated its entries while writing them; it
    // counts itself toward their commitment only once they are durable.
    if (durable) markDurable(batch.entries.back().index);
  }
  m_readyOutstanding = false;
}

Status RaftCore::status() const {
  Status status;
  status.id = m_config.id;
  status.role = m_role;
  status.term = m_term;
  status.vote = m_vote;
  status.leader = m_leader;
  status.commit = m_log.committed();
  status.applied = m_log.applied();
  status.durable = std::min(m_durableLastIndex, m_log.stableLastIndex());
  status.firstIndex = m_log.firstIndex();
  status.lastIndex = m_log.lastIndex();
  status.snapshotIndex = m_storage.snapshotMeta().index;
  status.membership = m_membership;
  status.transferee = m_transferee;
  if (m_role == Role::Leader) {
    const Index last = m_log.lastIndex();
    for (const auto& [peer, progress] : m_progress) {
      PeerProgress peerProgress;
      peerProgress.id = peer;
      peerProgress.match = progress.match;
      peerProgress.next = progress.next;
      peerProgress.state = progress.state;
      peerProgress.voter = m_membership.isVoter(peer);
      peerProgress.recentlyActive = progress.recentActive;
      peerProgress.inflight = progress.inflight.size();
      if (progress.state == PeerProgress::State::Snapshot) {
        peerProgress.pendingSnapshot = progress.pendingSnapshot;
      }
      peerProgress.caughtUp = progress.match + m_config.learnerCatchUpEntries >= last;
      status.progress.push_back(peerProgress);
    }
  }
  return status;
}

void RaftCore::publish(CoreEvent::Kind kind, NodeId peer, Index index, std::string text) {
  if (!m_sink) return;
  CoreEvent event;
  event.kind = kind;
  event.node = m_config.id;
  event.term = m_term;
  event.role = m_role;
  event.peer = peer;
  event.index = index;
  event.text = std::move(text);
  m_sink(event);
}

}  // namespace copycat::raft
