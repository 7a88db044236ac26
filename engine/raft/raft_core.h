#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <vector>

#include "engine/raft/node.h"
#include "engine/raft/progress.h"
#include "engine/raft/raft_log.h"

namespace copycat::raft {

/// Deterministic pseudo-random numbers (splitmix64) from the config's seed;
/// the same seed yields the same sequence on every platform.
class SeededRandom {
 public:
  explicit SeededRandom(std::uint64_t seed) : m_state(seed) {}
  std::uint64_t next();
  /// Uniform in [0, bound).
  std::uint64_t below(std::uint64_t bound) { return bound == 0 ? 0 : next() % bound; }

 private:
  std::uint64_t m_state;
};

/// The Raft algorithm behind Node. Internal to the core; see node.h for the
/// contract.
class RaftCore {
 public:
  RaftCore(const Config& config, const LogStorage& storage, Membership initialMembership);

  void setEventSink(EventSink sink) { m_sink = std::move(sink); }
  void tick();
  void step(const Message& message);
  ProposeResult propose(std::string data);
  ProposeResult proposeChange(const ConfigChange& change, std::string data = {});
  ProposeResult readIndex(std::uint64_t requestId, ReadMode mode);
  ProposeResult transferLeadership(NodeId target);
  void campaign();
  void snapshotTaken(Index index);
  void reportUnreachable(NodeId peer);
  void reportDisconnected(NodeId peer);
  Membership membershipAt(Index index) const;

  bool hasReady() const;
  Ready ready();
  bool hasReadyWhileWriting() const;
  Ready readyWhileWriting();
  void advance(const Ready& ready);
  void advanceWritten(const Ready& ready);
  void markDurable(Index index);
  bool ownSyncNeeded() const;
  Status status() const;

  NodeId id() const { return m_config.id; }
  Role role() const { return m_role; }
  Term term() const { return m_term; }
  NodeId leader() const { return m_leader; }
  Index lastIndex() const { return m_log.lastIndex(); }

 private:
  struct PendingRead {
    std::uint64_t requestId = 0;
    Index index = 0;
    std::uint64_t round = 0;
  };
  struct IncomingSnapshot {
    SnapshotMeta meta;
    std::uint64_t received = 0;
  };

  // Roles.
  void becomeFollower(Term term, NodeId leader);
  void becomePreCandidate();
  void becomeCandidate();
  void becomeLeader();
  void reset(Term term);
  void setRole(Role role);
  void startElection(bool preVote, bool transfer);
  bool promotable() const;
  void resetRandomizedTimeout();

  // Message handling.
  void stepLeader(const Message& message);
  void stepCandidate(const Message& message);
  void stepFollower(const Message& message);
  void handleVoteRequest(const Message& message);
  void handleAppend(const Message& message);
  void handleHeartbeat(const Message& message);
  void handleSnapshotChunk(const Message& message);
  void handleAppendResponse(const Message& message, Progress& progress);
  void handleHeartbeatResponse(const Message& message, Progress& progress);
  void handleSnapshotResponse(const Message& message, Progress& progress);
  void tallyVote(const Message& message);

  // Leader duties.
  void send(Message message);
  /// With `commitNotice`, an empty Append to a follower in steady
  /// replication goes out marked as needing no answer (see Message).
  bool sendAppend(NodeId to, bool sendIfEmpty, bool commitNotice = false);
  void startSnapshot(NodeId to, Progress& progress);
  void sendSnapshotChunks(NodeId to, Progress& progress);
  void flushBroadcasts();
  void broadcastAppend();
  void broadcastHeartbeat();
  bool maybeCommit();
  void appendEntries(std::vector<Entry> entries);
  void finishBatch(const Ready& batch, bool durable);
  bool quorumActive();
  std::uint64_t quorumRound() const;
  void releaseReads();
  bool leaseValid() const;
  void sendTimeoutNow(NodeId to);
  bool committedInCurrentTerm() const;
  /// A leader in a term whose term and vote are durable: its replication may
  /// precede its own write.
  bool leaderTermDurable() const;
  Index firstCommittedToHandOut() const;
  /// Committed entries not handed out yet that earlier batches made durable.
  bool hasCommittedToHandOut() const;
  std::vector<Entry> takeCommitted();

  // Membership.
  void commitTo(Index index);
  void onCommitAdvanced(Index previous);
  void applyMembership(Index index, const Membership& membership);
  void syncProgressWithMembership();
  void trackChanges(const std::vector<Entry>& entries, Index truncatedFrom);

  void publish(CoreEvent::Kind kind, NodeId peer = kNoNode, Index index = 0, std::string text = {});
  Index quorumSize() const { return m_membership.voters.size() / 2 + 1; }

  Config m_config;
  const LogStorage& m_storage;
  RaftLog m_log;
  SeededRandom m_random;
  EventSink m_sink;

  Role m_role = Role::Follower;
  Term m_term = 0;
  NodeId m_vote = kNoNode;
  NodeId m_leader = kNoNode;
  Membership m_membership;
  /// Membership after each applied change, oldest first; front() governs the
  /// oldest index we can still be asked about.
  std::vector<std::pair<Index, Membership>> m_membershipHistory;
  /// Membership changes in the log that have not committed yet.
  std::map<Index, ConfigChange> m_uncommittedChanges;
  Index m_pendingChangeIndex = 0;

  std::map<NodeId, Progress> m_progress;
  std::map<NodeId, bool> m_votes;
  NodeId m_transferee = kNoNode;
  int m_transferElapsed = 0;

  std::uint64_t m_ticks = 0;
  int m_electionElapsed = 0;
  int m_heartbeatElapsed = 0;
  int m_randomizedTimeout = 0;
  /// Ticks since this core was created; until electionTicks pass, a fresh
  /// core refuses to vote (it may have acknowledged a lease before a crash).
  std::uint64_t m_ticksSinceStart = 0;

  // Reads.
  std::uint64_t m_readRound = 0;
  std::map<std::uint64_t, std::uint64_t> m_roundSentAt;  // round -> tick
  std::deque<PendingRead> m_pendingReads;
  std::vector<std::uint64_t> m_readsAwaitingTermCommit;
  std::uint64_t m_leaseStart = 0;
  bool m_leaseKnown = false;
  std::vector<ReadState> m_readStates;

  std::optional<IncomingSnapshot> m_incomingSnapshot;
  std::vector<SnapshotChunk> m_snapshotChunks;

  std::vector<Message> m_messages;
  bool m_broadcastPending = false;
  bool m_commitBroadcastPending = false;
  bool m_heartbeatPending = false;
  bool m_restarted = false;
  HardState m_persistedHardState;
  /// The last log index known durable here (advance, markDurable); entries
  /// after it may be only written (advanceWritten).
  Index m_durableLastIndex = 0;
  Role m_reportedRole = Role::Follower;
  NodeId m_reportedLeader = kNoNode;
  bool m_readyOutstanding = false;
  std::uint64_t m_readyNumber = 0;
  std::uint64_t m_writingNumber = 0;  // the outstanding ready() batch
  bool m_whileWritingOutstanding = false;
  std::uint64_t m_whileWritingNumber = 0;
};

}  // namespace copycat::raft
