// Paper-claim tests: one test per rule of Figure 2 and section 5 of the Raft
// paper (Ongaro and Ousterhout, "In Search of an Understandable Consensus
// Algorithm"), then the extensions the core promises: ReadIndex, leader
// lease, pre-vote, check-quorum, leadership transfer, snapshots and
// single-server membership changes. Each test drives raft::Node through the
// synchronous harness in raft_harness.h, so every message is visible and
// every outcome is exact.

#include <algorithm>
#include <memory>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include <QTest>

#include "tests/raft_harness.h"
#include "tests/test_printers.h"

using namespace copycat::test;
namespace raft = copycat::raft;
using copycat::raft::Config;
using copycat::raft::ConfigChange;
using copycat::raft::Membership;
using copycat::raft::ProposeResult;
using copycat::raft::ReadMode;

namespace {

constexpr int kElection = 10;  // T, in ticks

/// Classic Raft of the paper: no pre-vote, no check-quorum.
Config classic() {
  Config config;
  config.electionTicks = kElection;
  config.heartbeatTicks = 1;
  config.preVote = false;
  config.checkQuorum = false;
  return config;
}

/// The core's defaults: pre-vote and check-quorum on.
Config modern() {
  Config config = classic();
  config.preVote = true;
  config.checkQuorum = true;
  return config;
}

Message message(MessageType type, NodeId from, NodeId to, Term term) {
  Message m;
  m.type = type;
  m.from = from;
  m.to = to;
  m.term = term;
  return m;
}

Message voteRequest(NodeId from, NodeId to, Term term, Index lastIndex, Term lastTerm) {
  Message m = message(MessageType::Vote, from, to, term);
  m.index = lastIndex;
  m.logTerm = lastTerm;
  return m;
}

/// An Append from `from` (acting as leader of `term`) carrying one entry per
/// element of `terms`, after (prevIndex, prevTerm).
Message appendRequest(NodeId from, NodeId to, Term term, Index prevIndex, Term prevTerm,
                      const std::vector<Term>& terms, Index commit) {
  Message m = message(MessageType::Append, from, to, term);
  m.index = prevIndex;
  m.logTerm = prevTerm;
  m.commit = commit;
  Index index = prevIndex;
  for (Term entryTerm : terms) {
    Entry entry;
    entry.index = ++index;
    entry.term = entryTerm;
    entry.data = "e" + std::to_string(index) + "t" + std::to_string(entryTerm);
    m.entries.push_back(entry);
  }
  return m;
}

Term termAt(Network& net, NodeId id, Index index) {
  return net.storage(id).term(index).value_or(~Term{0});
}

Term lastTerm(Network& net, NodeId id) { return termAt(net, id, net.storage(id).lastIndex()); }

/// The messages of `type` queued from `from` to `to` (removed from the queue).
std::vector<Message> takeMessages(Network& net, MessageType type, NodeId from, NodeId to) {
  return net.take([&](const Message& m) { return m.type == type && m.from == from && m.to == to; });
}

bool appliedAnywhere(Network& net, const std::string& value) {
  for (NodeId id : net.ids()) {
    const auto& values = net.peer(id).values;
    if (std::find(values.begin(), values.end(), value) != values.end()) return true;
  }
  return false;
}

std::vector<NodeId> sorted(std::vector<NodeId> ids) {
  std::sort(ids.begin(), ids.end());
  return ids;
}

}  // namespace

class RaftPaperTest : public QObject {
  Q_OBJECT

 private slots:
  void init();
  void cleanup();

  // The in-memory log keeps its payload size as a running total.
  void memoryStorageCountsLogBytes();

  // Figure 2, "Rules for all servers" and section 5.1.
  void higherTermTurnsLeaderIntoFollower();
  void higherTermTurnsCandidateIntoFollower();
  void higherTermInResponseDeposesLeader();
  void staleTermMessagesAreRejected();
  // Section 5.2: elections.
  void oneVotePerTerm();
  void voteSurvivesRestart();
  void candidateWinsWithMajority();
  void heartbeatsResetElectionTimer();
  void electionTimeoutsAreRandomizedOverTto2T();
  void candidateRestartsElectionAfterTimeout();
  // Section 5.4.1: the election restriction.
  void upToDateCheckComparesLastTerm();
  void upToDateCheckComparesLengthOnEqualTerms();
  // Section 5.3: log replication.
  void leaderAppendsNoopInNewTerm();
  void consistencyCheckRejectsMismatchedPrevEntry();
  void followerDeletesConflictingSuffixOnly();
  void followerCommitIsMinOfLeaderCommitAndLastNewEntry();
  void fastBacktrackingSkipsConflictingTerm();
  void leaderCommitsOnMajorityAndFollowersLearnIt();
  void leaderCountsItselfOnlyOnceItsWriteIsDurable();
  void leaderReplicatesAndCommitsWhileItWrites();
  void leaderDefersItsOwnSyncOnlyWhileFollowersCanCommit();
  void commitNoticesToMatchedFollowersGoUnanswered();
  // Section 5.4.2: committing entries from previous terms (Figure 8).
  void previousTermEntryCommitsOnlyThroughCurrentTerm();
  void figure8OldTermEntryOnMajorityIsNotCommitted();
  // Reads.
  void readIndexWaitsForMajorityHeartbeat();
  void readIndexWaitsForCommitInCurrentTerm();
  void leaseReadOnlyWhileLeaseValid();
  // Pre-vote and check-quorum.
  void preVoteKeepsIsolatedNodeTerm_data();
  void preVoteKeepsIsolatedNodeTerm();
  void withoutPreVoteRejoiningNodeDisrupts();
  void checkQuorumIsolatedLeaderStepsDown();
  void withoutCheckQuorumIsolatedLeaderStays();
  void followersOfADisconnectedLeaderElectWithinTicks();
  void aDisconnectReportLeavesALiveLeaderInPlace();
  // Leadership transfer.
  void leadershipTransferViaTimeoutNow();
  // Snapshots.
  void snapshotCompactsAndStreamsChunksToLaggingFollower();
  void snapshotChunksInFlightAreBounded();
  // Membership.
  void learnerJoinsCatchesUpAndIsPromoted();
  void learnerNeitherVotesNorCountsForCommit();
  void removedNodeCannotDisrupt();
  void onlyOneMembershipChangeAtATime();

 private:
  /// The test's network; it lives until cleanup() has checked that the
  /// harness saw no breach of the Ready contract.
  Network& network(int voters, const Config& config) {
    m_net = std::make_unique<Network>(voters, config);
    return *m_net;
  }
  std::unique_ptr<Network> m_net;
};

void RaftPaperTest::init() { m_net.reset(); }

void RaftPaperTest::cleanup() {
  if (m_net && !QTest::currentTestFailed()) {
    QVERIFY2(m_net->errors().empty(), qPrintable(QString::fromStdString(m_net->errorText())));
  }
  m_net.reset();
}

// ---------------------------------------------------------------------------
// Terms

void RaftPaperTest::higherTermTurnsLeaderIntoFollower() {
  Network& net = network(3, classic());
  QVERIFY(net.elect(1));
  const Term t = net.node(1).term();
  QVERIFY(t >= 1);

  net.inject(message(MessageType::Heartbeat, 2, 1, t + 3));
  QCOMPARE_ENUM(net.node(1).role(), Role::Follower);
  QCOMPARE(net.node(1).term(), t + 3);
  QCOMPARE(net.node(1).leader(), NodeId{2});
  QCOMPARE(net.storage(1).hardState().term, t + 3);
  QCOMPARE(net.storage(1).hardState().vote, raft::kNoNode);
}

void RaftPaperTest::higherTermTurnsCandidateIntoFollower() {
  Network& net = network(3, classic());
  net.node(2).campaign();
  net.drain(2);
  QCOMPARE_ENUM(net.node(2).role(), Role::Candidate);
  const Term t = net.node(2).term();
  QCOMPARE(takeMessages(net, MessageType::Vote, 2, 1).size(), std::size_t{1});
  net.take();

  Message response = message(MessageType::VoteResponse, 3, 2, t + 4);
  response.reject = true;
  net.inject(response);
  QCOMPARE_ENUM(net.node(2).role(), Role::Follower);
  QCOMPARE(net.node(2).term(), t + 4);
  QCOMPARE(net.storage(2).hardState().term, t + 4);
}

void RaftPaperTest::higherTermInResponseDeposesLeader() {
  Network& net = network(3, classic());
  QVERIFY(net.elect(1));
  const Term t = net.node(1).term();
  Message response = message(MessageType::AppendResponse, 3, 1, t + 2);
  response.reject = true;
  net.inject(response);
  QCOMPARE_ENUM(net.node(1).role(), Role::Follower);
  QCOMPARE(net.node(1).term(), t + 2);
}

void RaftPaperTest::staleTermMessagesAreRejected() {
  Network& net = network(3, classic());
  QVERIFY(net.elect(1));
  net.heartbeat(1);
  QVERIFY(net.elect(2));
  net.heartbeat(2);
  const Term t = net.node(2).term();
  const Term stale = t - 1;
  const Index last = net.storage(2).lastIndex();
  const Index commit = net.status(2).commit;
  QCOMPARE(net.status(1).commit, commit);

  // A stale Append at the leader: ignored, the leader stays, its log too;
  // any answer carries the current term so the sender learns it.
  net.inject(appendRequest(3, 2, stale, last, termAt(net, 2, last), {stale}, last + 1));
  QCOMPARE_ENUM(net.node(2).role(), Role::Leader);
  QCOMPARE(net.node(2).term(), t);
  QCOMPARE(net.storage(2).lastIndex(), last);
  for (const Message& m : net.take()) {
    QVERIFY2(m.term >= t, qPrintable(QString::fromStdString(m.describe())));
    if (m.type == MessageType::AppendResponse) QVERIFY(m.reject || m.index <= last);
  }

  // A stale Append at a follower: its log, commit and leader do not move.
  net.inject(appendRequest(3, 1, stale, last, termAt(net, 1, last), {stale, stale}, last + 2));
  QCOMPARE(net.node(1).term(), t);
  QCOMPARE(net.node(1).leader(), NodeId{2});
  QCOMPARE(net.storage(1).lastIndex(), last);
  QCOMPARE(net.status(1).commit, commit);
  for (const Message& m : net.take()) {
    QVERIFY(m.term >= t);
    QVERIFY(!(m.type == MessageType::AppendResponse && !m.reject && m.index > last));
  }

  // A stale vote request: no vote is granted and the hard state stays.
  const raft::HardState before = net.storage(1).hardState();
  net.inject(voteRequest(3, 1, stale, last + 10, t));
  QCOMPARE(net.storage(1).hardState(), before);
  for (const Message& m : net.take()) {
    if (m.type == MessageType::VoteResponse) QVERIFY(m.reject);
  }
  // A stale heartbeat response at the leader changes nothing either.
  net.inject(message(MessageType::HeartbeatResponse, 3, 2, stale));
  QCOMPARE_ENUM(net.node(2).role(), Role::Leader);
  QCOMPARE(net.node(2).term(), t);
}

// ---------------------------------------------------------------------------
// Elections

void RaftPaperTest::oneVotePerTerm() {
  Network& net = network(3, classic());
  const Index last = net.storage(1).lastIndex();
  const Term lt = lastTerm(net, 1);

  net.inject(voteRequest(2, 1, 5, last, lt));
  auto granted = takeMessages(net, MessageType::VoteResponse, 1, 2);
  QCOMPARE(granted.size(), std::size_t{1});
  QVERIFY(!granted[0].reject);
  QCOMPARE(granted[0].term, Term{5});
  QCOMPARE(net.storage(1).hardState().term, Term{5});
  QCOMPARE(net.storage(1).hardState().vote, NodeId{2});

  // Another candidate of the same term is refused...
  net.inject(voteRequest(3, 1, 5, last + 3, lt + 1));
  auto refused = takeMessages(net, MessageType::VoteResponse, 1, 3);
  QCOMPARE(refused.size(), std::size_t{1});
  QVERIFY(refused[0].reject);
  QCOMPARE(net.storage(1).hardState().vote, NodeId{2});

  // ...the same candidate asking again is granted again (votedFor == candidateId)...
  net.inject(voteRequest(2, 1, 5, last, lt));
  auto again = takeMessages(net, MessageType::VoteResponse, 1, 2);
  QCOMPARE(again.size(), std::size_t{1});
  QVERIFY(!again[0].reject);

  // ...and a new term frees the vote.
  net.inject(voteRequest(3, 1, 6, last, lt));
  auto next = takeMessages(net, MessageType::VoteResponse, 1, 3);
  QCOMPARE(next.size(), std::size_t{1});
  QVERIFY(!next[0].reject);
  QCOMPARE(net.storage(1).hardState().vote, NodeId{3});
  QCOMPARE(net.storage(1).hardState().term, Term{6});
}

void RaftPaperTest::voteSurvivesRestart() {
  Network& net = network(3, classic());
  const Index last = net.storage(1).lastIndex();
  const Term lt = lastTerm(net, 1);
  net.inject(voteRequest(2, 1, 4, last, lt));
  QCOMPARE(net.storage(1).hardState().vote, NodeId{2});
  net.take();

  net.restart(1);
  QCOMPARE(net.node(1).term(), Term{4});
  QCOMPARE(net.status(1).vote, NodeId{2});
  // A restarted core may also refuse to vote for a while (lease safety); we
  // let that pass without letting it time out.
  net.tick(1, kElection - 1);
  net.take();
  net.inject(voteRequest(3, 1, 4, last + 5, lt + 1));
  auto refused = takeMessages(net, MessageType::VoteResponse, 1, 3);
  QCOMPARE(refused.size(), std::size_t{1});
  QVERIFY(refused[0].reject);
  QCOMPARE(net.storage(1).hardState().vote, NodeId{2});
  QCOMPARE(net.storage(1).hardState().term, Term{4});
}

void RaftPaperTest::candidateWinsWithMajority() {
  Network& net = network(5, classic());
  net.cut(1, 4);
  net.cut(1, 5);
  net.node(1).campaign();
  net.drain(1);
  QCOMPARE_ENUM(net.node(1).role(), Role::Candidate);
  const Term t = net.node(1).term();
  QCOMPARE(net.storage(1).hardState().vote, NodeId{1});  // votes for itself, persisted
  net.deliverAll();
  // Votes of 2 and 3 plus its own: 3 of 5.
  QCOMPARE_ENUM(net.node(1).role(), Role::Leader);
  QCOMPARE(net.node(1).term(), t);

  // With only one other voter reachable, a candidate does not win.
  Network small(5, classic());
  small.cut(1, 3);
  small.cut(1, 4);
  small.cut(1, 5);
  QVERIFY(!small.elect(1));
  QCOMPARE_ENUM(small.node(1).role(), Role::Candidate);
  QVERIFY2(small.errors().empty(), qPrintable(QString::fromStdString(small.errorText())));
}

void RaftPaperTest::heartbeatsResetElectionTimer() {
  Network& net = network(3, classic());
  QVERIFY(net.elect(1));
  const Term t = net.node(1).term();
  // Ten times: the follower sits T-1 ticks without hearing from the leader,
  // then one heartbeat arrives. It has waited 10*(T-1) ticks, far more than
  // any timeout in [T, 2T), and never campaigns: each heartbeat reset it.
  for (int round = 0; round < 10; ++round) {
    net.tick(2, kElection - 1);
    net.tick(3, kElection - 1);
    QCOMPARE(net.queue().size(), std::size_t{0});
    net.heartbeat(1);
    QCOMPARE_ENUM(net.node(2).role(), Role::Follower);
    QCOMPARE_ENUM(net.node(3).role(), Role::Follower);
  }
  QCOMPARE_ENUM(net.node(1).role(), Role::Leader);
  QCOMPARE(net.node(2).term(), t);
  QCOMPARE(net.node(3).term(), t);
  // Without heartbeats the follower campaigns after T to 2T ticks.
  int ticks = 0;
  while (net.node(2).role() == Role::Follower && ticks < 10 * kElection) {
    net.tick(2);
    ++ticks;
  }
  QVERIFY2(ticks >= kElection && ticks < 2 * kElection, qPrintable(QString::number(ticks)));
  QCOMPARE_ENUM(net.node(2).role(), Role::Candidate);
  QCOMPARE(net.node(2).term(), t + 1);
}

void RaftPaperTest::memoryStorageCountsLogBytes() {
  raft::MemoryStorage storage;
  std::vector<raft::Entry> all;
  auto entries = [](raft::Index first, raft::Index last, raft::Term term, std::size_t size) {
    std::vector<raft::Entry> batch;
    for (raft::Index index = first; index <= last; ++index) {
      raft::Entry entry;
      entry.index = index;
      entry.term = term;
      entry.data = std::string(size + index % 7, 'x');
      batch.push_back(entry);
    }
    return batch;
  };
  auto expected = [&storage] {
    std::size_t bytes = 0;
    if (storage.lastIndex() >= storage.firstIndex()) {
      for (const raft::Entry& entry :
           storage.entries(storage.firstIndex(), storage.lastIndex() + 1, SIZE_MAX)) {
        bytes += entry.data.size();
      }
    }
    return bytes;
  };
  storage.append(entries(1, 50, 1, 10));
  QCOMPARE(storage.logBytes(), expected());
  storage.append(entries(30, 40, 2, 100));  // replaces the suffix from 30
  QCOMPARE(storage.lastIndex(), raft::Index{40});
  QCOMPARE(storage.logBytes(), expected());
  raft::SnapshotMeta meta;
  meta.index = 20;
  meta.term = 1;
  storage.takeSnapshot(meta, "state", 5);
  QCOMPARE(storage.logBytes(), expected());
  meta.index = 60;
  meta.term = 3;
  storage.installSnapshot(meta, "other");
  QCOMPARE(storage.logBytes(), std::size_t{0});
  storage.append(entries(61, 70, 3, 3));
  QCOMPARE(storage.logBytes(), expected());
}

void RaftPaperTest::electionTimeoutsAreRandomizedOverTto2T() {
  std::set<int> distinct;
  for (std::uint64_t seed = 1; seed <= 100; ++seed) {
    raft::MemoryStorage storage;
    Config config = classic();
    config.id = 1;
    config.seed = seed;
    raft::Node node(config, storage, Membership{{1, 2, 3}, {}});
    int ticks = 0;
    while (node.role() == Role::Follower && ticks < 10 * kElection) {
      node.tick();
      ++ticks;
    }
    QVERIFY2(ticks >= kElection && ticks < 2 * kElection,
             qPrintable(QStringLiteral("seed %1: timeout after %2 ticks").arg(seed).arg(ticks)));
    distinct.insert(ticks);
  }
  // The spread covers the range rather than sitting on one value.
  QVERIFY2(distinct.size() >= 5,
           qPrintable(QStringLiteral("%1 distinct timeouts").arg(distinct.size())));
  QVERIFY(*distinct.begin() < kElection + 3);
  QVERIFY(*distinct.rbegin() > 2 * kElection - 4);
}

void RaftPaperTest::candidateRestartsElectionAfterTimeout() {
  // A candidate that hears nothing starts a new election (new term) after a
  // fresh randomized timeout, again in [T, 2T).
  raft::MemoryStorage storage;
  Config config = classic();
  config.id = 1;
  config.seed = 7;
  raft::Node node(config, storage, Membership{{1, 2, 3}, {}});
  node.campaign();
  QCOMPARE_ENUM(node.role(), Role::Candidate);
  std::set<int> distinct;
  for (int election = 0; election < 30; ++election) {
    const Term term = node.term();
    int ticks = 0;
    while (node.term() == term && ticks < 10 * kElection) {
      node.tick();
      ++ticks;
    }
    QCOMPARE(node.term(), term + 1);
    QCOMPARE_ENUM(node.role(), Role::Candidate);
    QVERIFY2(ticks >= kElection && ticks < 2 * kElection,
             qPrintable(QStringLiteral("election %1 after %2 ticks").arg(election).arg(ticks)));
    distinct.insert(ticks);
  }
  QVERIFY(distinct.size() >= 3);
}

void RaftPaperTest::upToDateCheckComparesLastTerm() {
  Network& net = network(3, classic());
  const Index b = net.storage(1).lastIndex();
  const Term bt = lastTerm(net, 1);
  // Node 1's log ends with two entries of term 3.
  net.inject(appendRequest(2, 1, 3, b, bt, {3, 3}, b));
  QCOMPARE(net.storage(1).lastIndex(), b + 2);
  net.take();

  // Longer log but older last term: refused.
  net.inject(voteRequest(3, 1, 10, b + 9, 2));
  auto refused = takeMessages(net, MessageType::VoteResponse, 1, 3);
  QCOMPARE(refused.size(), std::size_t{1});
  QVERIFY(refused[0].reject);
  QCOMPARE(net.storage(1).hardState().vote, raft::kNoNode);
  QCOMPARE(net.node(1).term(), Term{10});  // the term is adopted all the same

  // Shorter log but newer last term: granted.
  net.inject(voteRequest(3, 1, 11, b + 1, 4));
  auto granted = takeMessages(net, MessageType::VoteResponse, 1, 3);
  QCOMPARE(granted.size(), std::size_t{1});
  QVERIFY(!granted[0].reject);
  QCOMPARE(net.storage(1).hardState().vote, NodeId{3});
}

void RaftPaperTest::upToDateCheckComparesLengthOnEqualTerms() {
  Network& net = network(3, classic());
  const Index b = net.storage(1).lastIndex();
  const Term bt = lastTerm(net, 1);
  net.inject(appendRequest(2, 1, 3, b, bt, {3, 3}, b));
  net.take();

  // Same last term, shorter: refused.
  net.inject(voteRequest(3, 1, 10, b + 1, 3));
  auto shorter = takeMessages(net, MessageType::VoteResponse, 1, 3);
  QCOMPARE(shorter.size(), std::size_t{1});
  QVERIFY(shorter[0].reject);

  // Same last term, same length: granted.
  net.inject(voteRequest(3, 1, 11, b + 2, 3));
  auto equal = takeMessages(net, MessageType::VoteResponse, 1, 3);
  QCOMPARE(equal.size(), std::size_t{1});
  QVERIFY(!equal[0].reject);

  // Same last term, longer: granted.
  net.inject(voteRequest(2, 1, 12, b + 7, 3));
  auto longer = takeMessages(net, MessageType::VoteResponse, 1, 2);
  QCOMPARE(longer.size(), std::size_t{1});
  QVERIFY(!longer[0].reject);
  QCOMPARE(net.storage(1).hardState().vote, NodeId{2});
}

// ---------------------------------------------------------------------------
// Log replication

void RaftPaperTest::leaderAppendsNoopInNewTerm() {
  Network& net = network(3, classic());
  const Index before = net.storage(1).lastIndex();
  QVERIFY(net.elect(1));
  const Term t = net.node(1).term();
  auto log = net.log(1);
  QVERIFY(!log.empty());
  QCOMPARE(log.back().index, before + 1);
  QCOMPARE(log.back().term, t);
  QVERIFY(log.back().type == EntryType::Noop);
  // It replicates and commits like any entry, on every node.
  net.heartbeat(1);
  for (NodeId id : {1, 2, 3}) {
    QCOMPARE(net.storage(id).lastIndex(), before + 1);
    QCOMPARE(termAt(net, id, before + 1), t);
    QCOMPARE(net.status(id).commit, before + 1);
  }
  // A second leader opens its own term the same way.
  QVERIFY(net.elect(2));
  QCOMPARE(net.storage(2).lastIndex(), before + 2);
  QVERIFY(net.log(2).back().type == EntryType::Noop);
  QCOMPARE(net.log(2).back().term, net.node(2).term());
}

void RaftPaperTest::consistencyCheckRejectsMismatchedPrevEntry() {
  Network& net = network(3, classic());
  const Index b = net.storage(1).lastIndex();
  const Term bt = lastTerm(net, 1);

  net.inject(appendRequest(2, 1, 2, b, bt, {2, 2}, b));
  auto ok = takeMessages(net, MessageType::AppendResponse, 1, 2);
  QCOMPARE(ok.size(), std::size_t{1});
  QVERIFY(!ok[0].reject);
  QCOMPARE(ok[0].index, b + 2);
  QCOMPARE(net.storage(1).lastIndex(), b + 2);

  // The previous entry is missing: rejected, the log is unchanged, and the
  // hint points at or below the follower's last index.
  net.inject(appendRequest(2, 1, 2, b + 5, 2, {2}, b));
  auto gap = takeMessages(net, MessageType::AppendResponse, 1, 2);
  QCOMPARE(gap.size(), std::size_t{1});
  QVERIFY(gap[0].reject);
  QVERIFY(gap[0].hintIndex <= b + 2);
  QCOMPARE(net.storage(1).lastIndex(), b + 2);

  // The previous entry has another term: rejected, nothing truncated.
  net.inject(appendRequest(3, 1, 3, b + 2, 3, {3}, b));
  auto mismatch = takeMessages(net, MessageType::AppendResponse, 1, 3);
  QCOMPARE(mismatch.size(), std::size_t{1});
  QVERIFY(mismatch[0].reject);
  QVERIFY(mismatch[0].hintIndex <= b + 2);
  QCOMPARE(net.storage(1).lastIndex(), b + 2);
  QCOMPARE(termAt(net, 1, b + 2), Term{2});
  QCOMPARE(net.node(1).term(), Term{3});
}

void RaftPaperTest::followerDeletesConflictingSuffixOnly() {
  Network& net = network(3, classic());
  const Index b = net.storage(1).lastIndex();
  const Term bt = lastTerm(net, 1);
  net.inject(appendRequest(2, 1, 2, b, bt, {2, 2, 2}, b));
  QCOMPARE(net.storage(1).lastIndex(), b + 3);
  const std::vector<Entry> original = net.log(1);

  // A retransmission of an entry the follower already has truncates nothing.
  net.inject(appendRequest(2, 1, 2, b, bt, {2}, b));
  QCOMPARE(net.storage(1).lastIndex(), b + 3);
  QCOMPARE(net.log(1), original);

  // A conflicting entry at b+2 deletes b+2 and everything after it.
  net.inject(appendRequest(3, 1, 3, b + 1, 2, {3}, b));
  QCOMPARE(net.storage(1).lastIndex(), b + 2);
  QCOMPARE(termAt(net, 1, b + 1), Term{2});
  QCOMPARE(termAt(net, 1, b + 2), Term{3});
  auto responses = takeMessages(net, MessageType::AppendResponse, 1, 3);
  QCOMPARE(responses.size(), std::size_t{1});
  QVERIFY(!responses[0].reject);
  QCOMPARE(responses[0].index, b + 2);
}

void RaftPaperTest::followerCommitIsMinOfLeaderCommitAndLastNewEntry() {
  Network& net = network(3, classic());
  const Index b = net.storage(1).lastIndex();
  const Term bt = lastTerm(net, 1);
  const Index c0 = net.status(1).commit;

  // Leader commit beyond what it sent: commit only up to the last new entry.
  net.inject(appendRequest(2, 1, 2, b, bt, {2, 2}, b + 10));
  QCOMPARE(net.status(1).commit, b + 2);
  QCOMPARE(net.storage(1).hardState().commit, b + 2);
  QVERIFY(c0 <= b);

  // The follower holds stale entries b+3..b+4 of term 2 that a new leader of
  // term 3 does not have. An Append matching at b+2 with no entries but a
  // high leader commit must not commit those stale entries.
  net.inject(appendRequest(2, 1, 2, b + 2, 2, {2, 2}, b + 2));
  QCOMPARE(net.storage(1).lastIndex(), b + 4);
  QCOMPARE(net.status(1).commit, b + 2);
  net.inject(appendRequest(3, 1, 3, b + 2, 2, {}, b + 20));
  QCOMPARE(net.status(1).commit, b + 2);
  net.inject(appendRequest(3, 1, 3, b + 2, 2, {3}, b + 20));
  QCOMPARE(net.storage(1).lastIndex(), b + 3);
  QCOMPARE(termAt(net, 1, b + 3), Term{3});
  QCOMPARE(net.status(1).commit, b + 3);
  // Applied entries are exactly the committed ones.
  QCOMPARE(net.peer(1).appliedIndex, b + 3);
  QCOMPARE(net.peer(1).applied.back().term, Term{3});
}

void RaftPaperTest::fastBacktrackingSkipsConflictingTerm() {
  Network& net = network(3, classic());
  QVERIFY(net.elect(1));
  net.heartbeat(1);
  const Index base = net.storage(1).lastIndex();
  auto silence = [&](std::set<NodeId> silent) {
    net.intercept = [silent](Message& m) {
      return silent.count(m.from) &&
             (m.type == MessageType::Append || m.type == MessageType::Heartbeat);
    };
  };

  // Term A: leader 1 appends 50 entries that never leave it.
  silence({1});
  for (int i = 0; i < 50; ++i)
    QCOMPARE_ENUM(net.propose(1, "old" + std::to_string(i)), ProposeResult::Accepted);
  net.deliverAll();
  const Term termA = net.node(1).term();

  // Term B: node 3 wins with node 2's vote and appends 51 entries (its no-op
  // and 50 proposals) that never leave it either.
  silence({1, 3});
  QVERIFY(net.elect(3));
  for (int i = 0; i < 50; ++i)
    QCOMPARE_ENUM(net.propose(3, "stale" + std::to_string(i)), ProposeResult::Accepted);
  net.deliverAll();
  QCOMPARE(net.storage(3).lastIndex(), base + 51);
  QVERIFY(termAt(net, 3, base + 50) > termA);

  // Term C: node 1 (longer log) wins with node 2 and commits its entries.
  net.isolate(3);
  net.intercept = nullptr;
  QVERIFY(net.elect(1));
  for (int i = 0; i < 50; ++i)
    QCOMPARE_ENUM(net.propose(1, "fresh" + std::to_string(i)), ProposeResult::Accepted);
  net.deliverAll();
  net.heartbeat(1);
  QCOMPARE(net.storage(1).lastIndex(), base + 101);
  QCOMPARE(net.status(2).commit, base + 101);
  QCOMPARE(termAt(net, 1, base + 50), termA);

  // Node 3 rejoins. Its entries base+1..base+51 all conflict with the
  // leader's; one entry at a time that is ~50 rejections, with the conflict
  // term hint it is one or two.
  int rejections = 0;
  net.intercept = [&](Message& m) {
    if (m.from == 3 && m.type == MessageType::AppendResponse && m.reject) ++rejections;
    return false;
  };
  net.heal();
  for (int i = 0; i < 20 && net.log(3) != net.log(1); ++i) net.heartbeat(1);
  QCOMPARE(net.log(3), net.log(1));
  QCOMPARE(net.status(3).commit, base + 101);
  QVERIFY2(rejections >= 1 && rejections <= 3,
           qPrintable(QStringLiteral("%1 rejections").arg(rejections)));
  QVERIFY(!appliedAnywhere(net, "stale0"));
  QVERIFY(!appliedAnywhere(net, "stale49"));
  QCOMPARE(net.peer(3).values.front(), std::string("old0"));
  QCOMPARE(net.peer(3).values.back(), std::string("fresh49"));
  QCOMPARE(net.peer(3).values, net.peer(1).values);
}

void RaftPaperTest::leaderCommitsOnMajorityAndFollowersLearnIt() {
  Network& net = network(5, classic());
  QVERIFY(net.elect(1));
  net.heartbeat(1);
  const Index c = net.status(1).commit;
  // Only node 2 is reachable: 2 of 5, no commit.
  net.cut(1, 3);
  net.cut(1, 4);
  net.cut(1, 5);
  QCOMPARE_ENUM(net.propose(1, "a"), ProposeResult::Accepted);
  net.deliverAll();
  QCOMPARE(net.storage(2).lastIndex(), c + 1);
  QCOMPARE(net.status(1).commit, c);
  QVERIFY(!appliedAnywhere(net, "a"));
  // Node 3 too: 3 of 5, committed and applied at the leader.
  net.heal();
  net.cut(1, 4);
  net.cut(1, 5);
  net.heartbeat(1);
  QCOMPARE(net.status(1).commit, c + 1);
  QCOMPARE(net.peer(1).values.back(), std::string("a"));
  // Followers learn the commit index from the next message.
  net.heartbeat(1);
  QCOMPARE(net.status(2).commit, c + 1);
  QCOMPARE(net.status(3).commit, c + 1);
  QCOMPARE(net.status(4).commit, c);
  QCOMPARE(net.peer(2).values.back(), std::string("a"));
}

// Thesis §10.2.1: the leader sends new entries while it writes them, and
// counts itself toward their commitment only once its write is durable.
void RaftPaperTest::leaderCountsItselfOnlyOnceItsWriteIsDurable() {
  Network& net = network(3, classic());
  QVERIFY(net.elect(1));
  net.heartbeat(1);
  const Index c = net.status(1).commit;
  raft::Node& leader = net.node(1);
  QCOMPARE_ENUM(leader.propose("a"), ProposeResult::Accepted);
  raft::Ready batch = leader.ready();
  QVERIFY(batch.sendBeforePersist);
  QCOMPARE(batch.entries.size(), std::size_t{1});
  QCOMPARE(batch.entries.front().index, c + 1);
  // Node 2 stores the entry and acknowledges while the leader still writes.
  for (const Message& append : batch.messages) {
    if (append.to == 2) net.inject(append);
  }
  const std::vector<Message> acks =
      net.take([](const Message& m) { return m.from == 2 && m.to == 1; });
  QVERIFY(!acks.empty());
  for (const Message& ack : acks) leader.step(ack);
  // One durable copy of three: not committed, nothing to apply.
  QCOMPARE(leader.status().commit, c);
  QVERIFY(batch.committed.empty());
  // The leader's write completes: two durable copies commit the entry.
  net.storage(1).append(batch.entries);
  leader.advance(batch);
  QCOMPARE(leader.status().commit, c + 1);
  net.drain(1);
  QCOMPARE(net.peer(1).values.back(), std::string("a"));
  net.deliverAll();
  net.heartbeat(1);
  QCOMPARE(net.status(3).commit, c + 1);
  QCOMPARE(net.peer(3).values.back(), std::string("a"));

  // Everything else waits for the write: a follower's acknowledgement...
  QCOMPARE_ENUM(leader.propose("b"), ProposeResult::Accepted);
  batch = leader.ready();
  net.storage(1).append(batch.entries);
  leader.advance(batch);
  net.drain(1);
  for (const Message& append : batch.messages) {
    if (append.to != 2) continue;
    net.node(2).step(append);
    const raft::Ready follower = net.node(2).ready();
    QVERIFY(!follower.entries.empty());
    QVERIFY(!follower.sendBeforePersist);
    net.storage(2).append(follower.entries);
    net.node(2).advance(follower);
  }
  // ...and a candidate's vote requests in a term it has not written yet.
  net.node(3).campaign();
  const raft::Ready candidate = net.node(3).ready();
  QVERIFY(candidate.hardState.has_value());
  QVERIFY(!candidate.messages.empty());
  QVERIFY(!candidate.sendBeforePersist);
}

bool carries(const std::vector<Message>& messages, const std::string& data) {
  for (const Message& message : messages) {
    for (const Entry& entry : message.entries) {
      if (entry.data == data) return true;
    }
  }
  return false;
}

// While one batch is written, the leader replicates what is proposed
// meanwhile and learns commits; it hands out only entries it holds durably.
void RaftPaperTest::leaderReplicatesAndCommitsWhileItWrites() {
  Network& net = network(3, classic());
  QVERIFY(net.elect(1));
  net.heartbeat(1);
  const Index c = net.status(1).commit;
  raft::Node& leader = net.node(1);
  QCOMPARE_ENUM(leader.propose("a"), ProposeResult::Accepted);
  const raft::Ready writing = leader.ready();
  QVERIFY(!leader.hasReady());
  QVERIFY(!leader.hasReadyWhileWriting());
  QCOMPARE_ENUM(leader.propose("b"), ProposeResult::Accepted);
  QVERIFY(leader.hasReadyWhileWriting());
  raft::Ready meanwhile = leader.readyWhileWriting();
  QVERIFY(meanwhile.entries.empty());
  QVERIFY(!meanwhile.hardState);
  QVERIFY(meanwhile.committed.empty());
  QVERIFY(carries(meanwhile.messages, "b"));
  QVERIFY(!leader.hasReadyWhileWriting());  // one at a time
  leader.advance(meanwhile);
  for (const Message& append : writing.messages) net.inject(append);
  for (const Message& append : meanwhile.messages) net.inject(append);
  for (const Message& ack : net.take([](const Message& m) { return m.to == 1; })) leader.step(ack);
  // Both followers hold a and b: committed while the leader still writes.
  QCOMPARE(leader.status().commit, c + 2);
  QVERIFY(leader.hasReadyWhileWriting());
  meanwhile = leader.readyWhileWriting();
  QVERIFY(meanwhile.committed.empty());  // not durable here yet
  leader.advance(meanwhile);
  // a is written: it is handed out with the batch that writes b.
  net.storage(1).append(writing.entries);
  leader.advance(writing);
  raft::Ready next = leader.ready();
  QCOMPARE(next.entries.size(), std::size_t{1});
  QCOMPARE(next.entries.front().data, std::string("b"));
  QCOMPARE(next.committed.size(), std::size_t{1});
  QCOMPARE(next.committed.front().data, std::string("a"));
  QVERIFY(next.sendBeforePersist);
  net.storage(1).append(next.entries);
  leader.advance(next);
  next = leader.ready();
  QCOMPARE(next.committed.size(), std::size_t{1});
  QCOMPARE(next.committed.front().data, std::string("b"));
  QCOMPARE(leader.status().applied, c + 2);
  leader.advance(next);
}

// A leader may leave its own sync for later (advanceWritten): the next batch
// follows at once and what both followers made durable is committed and
// applied, but the leader counts its own copy only after markDurable.
void RaftPaperTest::leaderDefersItsOwnSyncOnlyWhileFollowersCanCommit() {
  Network& net = network(3, classic());
  QVERIFY(net.elect(1));
  net.heartbeat(1);
  const Index c = net.status(1).commit;
  raft::Node& leader = net.node(1);
  QVERIFY(!leader.ownSyncNeeded());
  QVERIFY(net.node(2).ownSyncNeeded());  // not a leader: always
  QCOMPARE_ENUM(leader.propose("a"), ProposeResult::Accepted);
  raft::Ready written = leader.ready();
  net.storage(1).append(written.entries);
  leader.advanceWritten(written);
  QCOMPARE(leader.status().lastIndex, c + 1);
  QCOMPARE(leader.status().durable, c);
  // Node 2 acknowledges a: its copy and a written one are not two durable.
  for (const Message& append : written.messages) {
    if (append.to == 2) net.inject(append);
  }
  for (const Message& ack : net.take([](const Message& m) { return m.from == 2 && m.to == 1; }))
    leader.step(ack);
  QCOMPARE(leader.status().commit, c);
  leader.markDurable(c + 1);
  QCOMPARE(leader.status().durable, c + 1);
  QCOMPARE(leader.status().commit, c + 1);
  net.drain(1);
  QCOMPARE(net.peer(1).values.back(), std::string("a"));
  net.deliverAll();

  // b: both followers' copies commit it while the leader's is only written,
  // and the leader applies it from its written log.
  QCOMPARE_ENUM(leader.propose("b"), ProposeResult::Accepted);
  written = leader.ready();
  QCOMPARE(written.entries.size(), std::size_t{1});
  net.storage(1).append(written.entries);
  leader.advanceWritten(written);
  for (const Message& append : written.messages) net.inject(append);
  for (const Message& ack : net.take([](const Message& m) { return m.to == 1; })) leader.step(ack);
  QCOMPARE(leader.status().commit, c + 2);
  net.drain(1);
  QCOMPARE(net.peer(1).values.back(), std::string("b"));
  QCOMPARE(leader.status().applied, c + 2);
  leader.markDurable(c + 2);

  // A follower out of reach: the leader's own copy is needed for a commit.
  leader.reportUnreachable(3);
  QVERIFY(leader.ownSyncNeeded());

  // Only a leader's batch may leave before it is durable.
  net.deliverAll();
  net.node(3).campaign();
  const raft::Ready candidate = net.node(3).ready();
  QVERIFY(!candidate.sendBeforePersist);
  QVERIFY_THROWS_EXCEPTION(std::logic_error, net.node(3).advanceWritten(candidate));
}

// An Append without entries that only carries a new commit index to a
// follower in steady replication is answered only when rejected. A lost
// acknowledgement is repaired through the heartbeat round, whose empty
// Append is answered.
void RaftPaperTest::commitNoticesToMatchedFollowersGoUnanswered() {
  Network& net = network(3, classic());
  QVERIFY(net.elect(1));
  net.heartbeat(1);
  const Index c = net.status(1).commit;
  std::vector<Message> seen;
  net.intercept = [&seen](Message& message) {
    seen.push_back(message);
    return false;
  };
  QCOMPARE_ENUM(net.propose(1, "a"), ProposeResult::Accepted);
  net.deliverAll();
  QCOMPARE(net.status(1).commit, c + 1);
  const auto count = [&seen](MessageType type, NodeId from, NodeId to, auto&& match) {
    return std::count_if(seen.begin(), seen.end(), [&](const Message& m) {
      return m.type == type && m.from == from && m.to == to && match(m);
    });
  };
  const auto any = [](const Message&) { return true; };
  for (NodeId follower : {NodeId{2}, NodeId{3}}) {
    const auto notices = count(MessageType::Append, 1, follower, [](const Message& m) {
      return m.entries.empty() && m.context == 1;
    });
    QCOMPARE(notices, 1);
    // One answer: to the entries, none to the notice.
    QCOMPARE(count(MessageType::AppendResponse, follower, 1, any), 1);
    QCOMPARE(net.status(follower).commit, c + 1);
    QCOMPARE(net.peer(follower).values.back(), std::string("a"));
  }

  // Node 2's acknowledgement of b is lost and node 3 is cut off: the leader
  // learns that node 2 holds b through the answer to the empty Append that
  // the heartbeat's answer makes it send, which is therefore not a notice.
  seen.clear();
  net.cut(1, 3);
  bool dropped = false;
  net.intercept = [&seen, &dropped](Message& message) {
    seen.push_back(message);
    if (!dropped && message.type == MessageType::AppendResponse && message.from == 2) {
      dropped = true;
      return true;
    }
    return false;
  };
  QCOMPARE_ENUM(net.propose(1, "b"), ProposeResult::Accepted);
  net.deliverAll();
  QVERIFY(dropped);
  QCOMPARE(net.status(1).commit, c + 1);
  net.heartbeat(1);
  QCOMPARE(net.status(1).commit, c + 2);
  QVERIFY(count(MessageType::Append, 1, 2, [&](const Message& m) {
            return m.entries.empty() && m.index == c + 2 && m.context == 0;
          }) >= 1);

  // A notice that does not match is answered with a rejection.
  net.intercept = nullptr;
  net.take();
  Message notice;
  notice.type = MessageType::Append;
  notice.from = 1;
  notice.to = 2;
  notice.term = net.node(1).term();
  notice.index = c + 10;
  notice.logTerm = notice.term;
  notice.commit = c + 2;
  notice.context = 1;
  net.inject(notice);
  const std::vector<Message> answers =
      net.take([](const Message& m) { return m.from == 2 && m.to == 1; });
  QCOMPARE(answers.size(), std::size_t{1});
  QCOMPARE_ENUM(answers.front().type, MessageType::AppendResponse);
  QVERIFY(answers.front().reject);
}

// ---------------------------------------------------------------------------
// Figure 8

void RaftPaperTest::previousTermEntryCommitsOnlyThroughCurrentTerm() {
  Network& net = network(5, classic());
  QVERIFY(net.elect(1));
  net.heartbeat(1);
  const Term a = net.node(1).term();
  const Index x = net.storage(1).lastIndex() + 1;
  // Entry x of term a reaches only node 2.
  net.cut(1, 3);
  net.cut(1, 4);
  net.cut(1, 5);
  QCOMPARE_ENUM(net.propose(1, "x"), ProposeResult::Accepted);
  net.deliverAll();
  QCOMPARE(termAt(net, 2, x), a);
  net.heal();
  net.crash(1);

  // Node 2 becomes leader of a new term. Its Appends lose every entry of the
  // new term on the way, so x reaches a majority (2, 3, 4) while the new
  // no-op does not.
  for (int i = 0; i < 3 && net.node(2).role() != Role::Leader; ++i) {
    net.intercept = [&](Message& m) {
      if (m.from == 2 && m.type == MessageType::Append) {
        const Term current = net.node(2).term();
        std::erase_if(m.entries, [&](const Entry& e) { return e.term == current; });
      }
      return false;
    };
    net.elect(2);
  }
  QCOMPARE_ENUM(net.node(2).role(), Role::Leader);
  const Term c = net.node(2).term();
  QVERIFY(c > a);
  net.heartbeat(2);
  net.heartbeat(2);
  QCOMPARE(termAt(net, 3, x), a);
  QCOMPARE(termAt(net, 4, x), a);
  QCOMPARE(net.storage(2).lastIndex(), x + 1);
  QCOMPARE(net.storage(3).lastIndex(), x);
  // Rule: x is on 4 of 5 nodes but belongs to an earlier term. Not committed.
  QCOMPARE(net.status(2).commit, x - 1);
  QVERIFY(!appliedAnywhere(net, "x"));

  // Once the current term's no-op reaches a majority, both commit.
  net.intercept = nullptr;
  for (int i = 0; i < 5 && net.status(2).commit < x + 1; ++i) net.heartbeat(2);
  QCOMPARE(net.status(2).commit, x + 1);
  QCOMPARE(net.peer(2).values.back(), std::string("x"));
}

void RaftPaperTest::figure8OldTermEntryOnMajorityIsNotCommitted() {
  // Figure 8 of the paper, step by step, with S1..S5 = nodes 1..5.
  Network& net = network(5, classic());
  QVERIFY(net.elect(1));
  net.heartbeat(1);
  const Index base = net.storage(1).lastIndex();
  const Index i = base + 1;  // the index Figure 8 is about

  // (a) S1 leads term a and replicates x at index i to S2 only.
  const Term a = net.node(1).term();
  net.cut(1, 3);
  net.cut(1, 4);
  net.cut(1, 5);
  QCOMPARE_ENUM(net.propose(1, "x"), ProposeResult::Accepted);
  net.deliverAll();
  QCOMPARE(termAt(net, 2, i), a);
  QCOMPARE(net.status(1).commit, base);
  net.heal();

  // (b) S1 crashes; S5 wins term b with votes from S3, S4 and itself and
  // appends an entry at index i that reaches nobody.
  net.crash(1);
  net.intercept = [](Message& m) {
    return m.from == 5 && (m.type == MessageType::Append || m.type == MessageType::Heartbeat);
  };
  QVERIFY(net.elect(5));
  const Term b = net.node(5).term();
  QVERIFY(b > a);
  QCOMPARE(termAt(net, 5, i), b);
  net.crash(5);
  net.intercept = nullptr;

  // (c) S1 restarts and wins term c (S2, S3 vote); x reaches S3, but S1's
  // entries of term c do not leave it. x is now on S1, S2, S3: a majority.
  net.restart(1);
  net.cut(1, 4);
  net.intercept = [&](Message& m) {
    if (m.from == 1 && m.type == MessageType::Append) {
      std::erase_if(m.entries, [&](const Entry& e) { return e.term > a; });
    }
    return false;
  };
  for (int attempt = 0; attempt < 3 && net.node(1).role() != Role::Leader; ++attempt) net.elect(1);
  QCOMPARE_ENUM(net.node(1).role(), Role::Leader);
  const Term c = net.node(1).term();
  QVERIFY(c > b);
  net.heartbeat(1);
  QCOMPARE(termAt(net, 2, i), a);
  QCOMPARE(termAt(net, 3, i), a);
  // The leader must not count replicas of an entry of an older term.
  QCOMPARE(net.status(1).commit, base);
  QVERIFY(!appliedAnywhere(net, "x"));

  // (d) S1 crashes again; S5 (last term b > a) wins with S2, S3, S4 and
  // overwrites x everywhere: committing x in (c) would have lost it.
  net.crash(1);
  net.intercept = nullptr;
  net.heal();
  net.restart(5);
  for (int attempt = 0; attempt < 3 && net.node(5).role() != Role::Leader; ++attempt) net.elect(5);
  QCOMPARE_ENUM(net.node(5).role(), Role::Leader);
  net.heartbeat(5);
  net.heartbeat(5);
  for (NodeId id : {2, 3, 4, 5}) {
    QCOMPARE(termAt(net, id, i), b);
    QVERIFY(net.status(id).commit >= i);
  }
  QVERIFY(!appliedAnywhere(net, "x"));
}

// ---------------------------------------------------------------------------
// Reads

void RaftPaperTest::readIndexWaitsForMajorityHeartbeat() {
  Network& net = network(5, classic());
  QVERIFY(net.elect(1));
  net.heartbeat(1);
  const Index commit = net.status(1).commit;

  std::vector<Message> held;
  net.intercept = [&](Message& m) {
    if (m.type == MessageType::HeartbeatResponse && m.to == 1) {
      held.push_back(m);
      return true;
    }
    return false;
  };
  QCOMPARE_ENUM(net.node(1).readIndex(7), ProposeResult::Accepted);
  net.drain(1);
  net.deliverAll();
  if (held.empty()) net.heartbeat(1);  // a core may confirm on its next round
  QCOMPARE(held.size(), std::size_t{4});
  QVERIFY(net.peer(1).reads.empty());

  // The leader itself plus one follower: 2 of 5, not yet.
  net.intercept = nullptr;
  net.inject(held[0]);
  QVERIFY(net.peer(1).reads.empty());
  // A duplicate of the same answer does not count twice.
  net.inject(held[0]);
  QVERIFY(net.peer(1).reads.empty());
  // A third member: released, at the commit index of the request.
  net.inject(held[1]);
  QCOMPARE(net.peer(1).reads.size(), std::size_t{1});
  QCOMPARE(net.peer(1).reads[0].requestId, std::uint64_t{7});
  QCOMPARE(net.peer(1).reads[0].index, commit);
  net.inject(held[2]);
  net.inject(held[3]);
  QCOMPARE(net.peer(1).reads.size(), std::size_t{1});

  // Followers cannot release reads themselves.
  QVERIFY(net.node(2).readIndex(8) != ProposeResult::Accepted || net.peer(2).reads.empty());
}

void RaftPaperTest::readIndexWaitsForCommitInCurrentTerm() {
  Network& net = network(3, classic());
  QVERIFY(net.elect(1));
  net.heartbeat(1);
  // Node 2 becomes leader, but the answers to its Appends are lost, so its
  // no-op (the first entry of its term) does not commit.
  net.intercept = [](Message& m) { return m.type == MessageType::AppendResponse && m.to == 2; };
  QVERIFY(net.elect(2));
  const Index noop = net.storage(2).lastIndex();
  QVERIFY(net.status(2).commit < noop);
  QCOMPARE_ENUM(net.node(2).readIndex(3), ProposeResult::Accepted);
  net.drain(2);
  net.deliverAll();
  net.heartbeat(2);
  net.heartbeat(2);
  // Heartbeats were answered, but the leader does not yet know the latest
  // committed index (its term has no committed entry): no read.
  QVERIFY(net.peer(2).reads.empty());
  net.intercept = nullptr;
  for (int i = 0; i < 5 && net.peer(2).reads.empty(); ++i) net.heartbeat(2);
  QCOMPARE(net.status(2).commit, noop);
  QCOMPARE(net.peer(2).reads.size(), std::size_t{1});
  QCOMPARE(net.peer(2).reads[0].requestId, std::uint64_t{3});
  QVERIFY(net.peer(2).reads[0].index >= noop);
}

void RaftPaperTest::leaseReadOnlyWhileLeaseValid() {
  Config config = modern();
  config.leaseDriftTicks = 2;  // lease: T - 2 = 8 ticks from the acknowledged round
  Network& net = network(3, config);
  QVERIFY(net.elect(1));
  net.heartbeat(1);  // a round acknowledged by everyone
  const Index commit = net.status(1).commit;

  // Within the lease, a lease read is released at once, without any message.
  net.isolate(1);
  net.tick(1, 3);
  net.take();
  QCOMPARE_ENUM(net.node(1).readIndex(11, ReadMode::Lease), ProposeResult::Accepted);
  net.drain(1);
  QCOMPARE(net.peer(1).reads.size(), std::size_t{1});
  QCOMPARE(net.peer(1).reads[0].requestId, std::uint64_t{11});
  QCOMPARE(net.peer(1).reads[0].index, commit);

  // After the lease ran out (isolated, no acknowledgements), it is not: the
  // read falls back to a round that cannot complete.
  net.tick(1, 7);
  const ProposeResult late = net.node(1).readIndex(12, ReadMode::Lease);
  net.drain(1);
  net.deliverAll();
  net.tick(1, 2);
  net.deliverAll();
  QVERIFY(late == ProposeResult::Accepted || late == ProposeResult::NotLeader);
  QCOMPARE(net.peer(1).reads.size(), std::size_t{1});
  // A ReadIndex read on an isolated leader is never released either.
  const ProposeResult plain = net.node(1).readIndex(13);
  net.drain(1);
  net.tick(1, kElection);
  net.deliverAll();
  QVERIFY(plain == ProposeResult::Accepted || plain == ProposeResult::NotLeader);
  QCOMPARE(net.peer(1).reads.size(), std::size_t{1});
}

// ---------------------------------------------------------------------------
// Pre-vote and check-quorum

void RaftPaperTest::preVoteKeepsIsolatedNodeTerm_data() {
  QTest::addColumn<bool>("commitsWhileAway");
  QTest::newRow("idle cluster") << false;
  QTest::newRow("commits while away") << true;
}

void RaftPaperTest::preVoteKeepsIsolatedNodeTerm() {
  QFETCH(bool, commitsWhileAway);
  Network& net = network(3, modern());
  QVERIFY(net.elect(1));
  net.run(3);
  const Term t = net.node(1).term();

  net.isolate(3);
  for (int round = 0; round < 6 * kElection; ++round) {
    net.run(1);
    if (commitsWhileAway && round % 10 == 0) net.propose(1, "v" + std::to_string(round));
  }
  // Node 3 timed out many times, but only ran pre-votes: its term is the same.
  QCOMPARE(net.node(3).term(), t);
  QVERIFY(net.node(3).role() != Role::Candidate && net.node(3).role() != Role::Leader);

  net.heal();
  net.run(6 * kElection);
  QCOMPARE_ENUM(net.node(1).role(), Role::Leader);
  for (NodeId id : {1, 2, 3}) {
    QCOMPARE(net.node(id).term(), t);
    QCOMPARE(net.node(id).leader(), NodeId{1});
  }
  QCOMPARE(net.log(3), net.log(1));
}

void RaftPaperTest::withoutPreVoteRejoiningNodeDisrupts() {
  // The control of the test above: classic Raft, where the rejoining node's
  // inflated term deposes the healthy leader.
  Network& net = network(3, classic());
  QVERIFY(net.elect(1));
  net.run(3);
  const Term t = net.node(1).term();
  net.isolate(3);
  net.run(6 * kElection);
  QVERIFY(net.node(3).term() > t + 2);
  QCOMPARE(net.node(1).term(), t);
  net.heal();
  for (int i = 0; i < 3 * kElection && net.node(1).term() == t; ++i) net.run(1);
  QVERIFY(net.node(1).term() > t);
}

void RaftPaperTest::checkQuorumIsolatedLeaderStepsDown() {
  Network& net = network(3, modern());
  QVERIFY(net.elect(1));
  // A connected leader stays for a long time.
  net.run(5 * kElection);
  QCOMPARE_ENUM(net.node(1).role(), Role::Leader);
  const Term t = net.node(1).term();

  net.isolate(1);
  int ticks = 0;
  while (net.node(1).role() == Role::Leader && ticks < 10 * kElection) {
    net.tick(1);
    ++ticks;
  }
  QVERIFY2(ticks <= 2 * kElection,
           qPrintable(QStringLiteral("stepped down after %1 ticks").arg(ticks)));
  QCOMPARE_ENUM(net.node(1).role(), Role::Follower);
  QCOMPARE(net.node(1).term(), t);  // stepping down needs no new term
  QCOMPARE(net.node(1).leader(), raft::kNoNode);
}

void RaftPaperTest::withoutCheckQuorumIsolatedLeaderStays() {
  Network& net = network(3, classic());
  QVERIFY(net.elect(1));
  net.isolate(1);
  net.tick(1, 10 * kElection);
  QCOMPARE_ENUM(net.node(1).role(), Role::Leader);
}

void RaftPaperTest::followersOfADisconnectedLeaderElectWithinTicks() {
  // The leader's process dies: both followers' connections to it close at
  // once. They still refuse votes while its lease may run (an election
  // timeout after its last message), then node 2 (first in id order)
  // campaigns at once and node 3 two ticks later, by which time it has voted
  // for node 2: one new term, no split vote, instead of a randomized wait of
  // up to twice the election timeout.
  Network& net = network(3, modern());
  QVERIFY(net.elect(1));
  net.run(3);
  const Term t = net.node(1).term();
  net.crash(1);
  net.node(2).reportDisconnected(1);
  net.node(3).reportDisconnected(1);
  int ticks = 0;
  while (net.node(2).role() != Role::Leader && net.node(3).role() != Role::Leader &&
         ticks < 3 * kElection) {
    net.run(1);
    ++ticks;
    if (ticks < kElection) {
      // The lease of a leader that may be alive still holds the votes.
      QCOMPARE(net.node(2).leader(), NodeId{1});
      QCOMPARE(net.node(3).leader(), NodeId{1});
    }
  }
  QVERIFY2(ticks >= kElection && ticks <= kElection + 2,
           qPrintable(QStringLiteral("a leader after %1 ticks").arg(ticks)));
  QCOMPARE_ENUM(net.node(2).role(), Role::Leader);
  QCOMPARE(net.node(2).term(), t + 1);
  net.run(2);
  QCOMPARE(net.node(3).leader(), NodeId{2});
  QCOMPARE(net.node(3).term(), t + 1);
}

void RaftPaperTest::aDisconnectReportLeavesALiveLeaderInPlace() {
  // Only node 3's connection to a healthy leader closed; the leader's
  // heartbeats still reach it (over the leader's own connection), so its
  // shortened timeout never runs out: nobody campaigns, no term changes.
  Network& net = network(3, modern());
  QVERIFY(net.elect(1));
  net.run(3);
  const Term t = net.node(1).term();
  net.node(3).reportDisconnected(1);
  net.run(3 * kElection);
  QCOMPARE_ENUM(net.node(1).role(), Role::Leader);
  for (NodeId id : {1, 2, 3}) {
    QCOMPARE(net.node(id).term(), t);
    QCOMPARE(net.node(id).leader(), NodeId{1});
  }
  // A report about a node that is not the leader changes nothing.
  net.node(3).reportDisconnected(2);
  QCOMPARE(net.node(3).leader(), NodeId{1});
}

// ---------------------------------------------------------------------------
// Leadership transfer

void RaftPaperTest::leadershipTransferViaTimeoutNow() {
  Network& net = network(3, modern());
  QVERIFY(net.elect(1));
  net.heartbeat(1);
  const Term t = net.node(1).term();

  // Node 3 falls behind by five entries.
  net.cut(1, 3);
  for (int i = 0; i < 5; ++i) net.propose(1, "p" + std::to_string(i));
  net.deliverAll();
  net.heartbeat(1);
  const Index last = net.storage(1).lastIndex();
  QVERIFY(net.storage(3).lastIndex() < last);
  net.heal();

  int timeoutNows = 0;
  Index targetLastWhenTold = 0;
  net.intercept = [&](Message& m) {
    if (m.type == MessageType::TimeoutNow) {
      if (m.from == 1 && m.to == 3) ++timeoutNows;
      targetLastWhenTold = net.storage(3).lastIndex();
    }
    return false;
  };
  QCOMPARE_ENUM(net.node(1).transferLeadership(3), ProposeResult::Accepted);
  net.drain(1);
  // The leader stops taking proposals while it hands over.
  QCOMPARE_ENUM(net.node(1).propose("during"), ProposeResult::TransferInProgress);
  QCOMPARE(net.status(1).transferee, NodeId{3});
  for (int i = 0; i < 5 && net.node(3).role() != Role::Leader; ++i) {
    net.deliverAll();
    if (net.node(3).role() != Role::Leader) net.heartbeat(1);
  }
  QCOMPARE_ENUM(net.node(3).role(), Role::Leader);
  QCOMPARE(timeoutNows, 1);
  // TimeoutNow is sent only once the target has the leader's whole log.
  QCOMPARE(targetLastWhenTold, last);
  QCOMPARE(net.node(3).term(), t + 1);  // no pre-vote round for a transfer
  net.run(2);
  QCOMPARE_ENUM(net.node(1).role(), Role::Follower);
  QCOMPARE(net.node(1).leader(), NodeId{3});
  QCOMPARE_ENUM(net.node(3).propose("after"), ProposeResult::Accepted);
}

// ---------------------------------------------------------------------------
// Snapshots

void RaftPaperTest::snapshotCompactsAndStreamsChunksToLaggingFollower() {
  Config config = classic();
  config.snapshotChunkBytes = 16;
  Network& net = network(3, config);
  QVERIFY(net.elect(1));
  net.heartbeat(1);
  net.isolate(3);
  for (int i = 0; i < 30; ++i) net.propose(1, "value-" + std::to_string(i));
  net.deliverAll();
  net.heartbeat(1);
  QCOMPARE(net.peer(1).values.size(), std::size_t{30});
  QCOMPARE(net.peer(2).values.size(), std::size_t{30});

  const Index snap = net.compact(1);
  QCOMPARE(snap, net.storage(1).lastIndex());
  QCOMPARE(net.status(1).snapshotIndex, snap);
  QCOMPARE(net.status(1).firstIndex, snap + 1);
  QVERIFY(net.storage(3).lastIndex() < net.storage(1).firstIndex() - 1);
  const std::string data = net.storage(1).snapshotData();
  QCOMPARE(data.size(), encodeValues(net.peer(1).values).size());

  // Two more entries after the snapshot, then node 3 rejoins.
  net.heal();
  std::vector<Message> chunks;
  net.intercept = [&](Message& m) {
    if (m.type == MessageType::InstallSnapshot && m.to == 3) chunks.push_back(m);
    return false;
  };
  net.propose(1, "after-0");
  net.propose(1, "after-1");
  for (int i = 0; i < 50 && net.storage(3).lastIndex() < net.storage(1).lastIndex(); ++i)
    net.heartbeat(1);
  net.heartbeat(1);

  QCOMPARE(net.peer(3).snapshotsInstalled, std::uint64_t{1});
  QCOMPARE(net.storage(3).snapshotMeta().index, snap);
  QCOMPARE(net.storage(3).snapshotData(), data);
  QCOMPARE(net.log(3), net.log(1));
  QCOMPARE(net.peer(3).values, net.peer(1).values);
  QCOMPARE(net.peer(3).values.back(), std::string("after-1"));
  QCOMPARE(net.status(3).commit, net.status(1).commit);

  // In chunks of at most 16 bytes, at contiguous offsets, the last one done.
  QVERIFY(chunks.size() >= (data.size() + 15) / 16);
  std::uint64_t offset = 0;
  for (std::size_t k = 0; k < chunks.size(); ++k) {
    const Message& chunk = chunks[k];
    QCOMPARE(chunk.snapshot.index, snap);
    QCOMPARE(chunk.offset, offset);
    QVERIFY(chunk.data.size() <= 16);
    QCOMPARE(chunk.data, data.substr(offset, chunk.data.size()));
    offset += chunk.data.size();
    QCOMPARE(chunk.done, offset == data.size());
    if (chunk.done) break;
  }
  QCOMPARE(offset, std::uint64_t{data.size()});
}

// A follower being sent a snapshot has at most maxSnapshotChunksInFlight
// chunks unacknowledged: more would overflow a transport's send buffer, and
// every chunk after a dropped one comes back rejected.
void RaftPaperTest::snapshotChunksInFlightAreBounded() {
  Config config = classic();
  config.snapshotChunkBytes = 16;
  config.maxSnapshotChunksInFlight = 3;
  Network& net = network(3, config);
  QVERIFY(net.elect(1));
  net.isolate(3);
  for (int i = 0; i < 30; ++i) net.propose(1, "value-" + std::to_string(i));
  net.deliverAll();
  net.heartbeat(1);
  const Index snapshotIndex = net.compact(1);
  const std::size_t chunksNeeded = (net.storage(1).snapshotData().size() + 15) / 16;
  QVERIFY(chunksNeeded > 6);

  const auto isChunkTraffic = [](const Message& m) {
    return (m.type == MessageType::InstallSnapshot && m.to == 3) ||
           (m.type == MessageType::InstallSnapshotResponse && m.from == 3);
  };
  std::size_t mostInFlight = 0;
  std::size_t chunksSent = 0;
  int statusMismatches = 0;
  net.intercept = [&](Message& m) {
    if (!isChunkTraffic(m)) return false;
    // Unacknowledged: queued chunks, queued acknowledgements and this one.
    const auto queued = std::count_if(net.queue().begin(), net.queue().end(), isChunkTraffic);
    mostInFlight = std::max(mostInFlight, static_cast<std::size_t>(queued) + 1);
    if (m.type == MessageType::InstallSnapshot) {
      ++chunksSent;
      // The leader's status shows the transfer (the runtime keeps the
      // entries after it when it compacts).
      const auto peers = net.status(1).progress;
      const auto to3 = std::find_if(peers.begin(), peers.end(),
                                    [](const raft::PeerProgress& p) { return p.id == 3; });
      if (to3 == peers.end() || to3->state != raft::PeerProgress::State::Snapshot ||
          to3->pendingSnapshot != snapshotIndex) {
        ++statusMismatches;
      }
    }
    return false;
  };
  net.heal();
  for (int i = 0; i < 50 && net.peer(3).snapshotsInstalled == 0; ++i) net.heartbeat(1);

  QCOMPARE(net.peer(3).snapshotsInstalled, std::uint64_t{1});
  QCOMPARE(net.peer(3).values, net.peer(1).values);
  QVERIFY(chunksSent >= chunksNeeded);
  QCOMPARE(mostInFlight, std::size_t{3});
  QCOMPARE(statusMismatches, 0);
  for (const raft::PeerProgress& peer : net.status(1).progress) {
    QCOMPARE(peer.pendingSnapshot, Index{0});  // done
  }

  Config valid = classic();
  valid.id = 1;
  const raft::MemoryStorage storage;
  raft::Node accepted(valid, storage);
  Config none = valid;
  none.maxSnapshotChunksInFlight = 0;
  QVERIFY_THROWS_EXCEPTION(std::invalid_argument, raft::Node(none, storage));
}

// ---------------------------------------------------------------------------
// Membership

namespace {

/// Runs heartbeat rounds until `done` or a bound.
template <typename Done>
bool heartbeatUntil(Network& net, NodeId leader, Done done, int rounds = 30) {
  for (int i = 0; i < rounds && !done(); ++i) net.heartbeat(leader);
  return done();
}

}  // namespace

void RaftPaperTest::learnerJoinsCatchesUpAndIsPromoted() {
  Network& net = network(3, classic());
  QVERIFY(net.elect(1));
  for (int i = 0; i < 5; ++i) net.propose(1, "before-" + std::to_string(i));
  net.deliverAll();
  net.heartbeat(1);

  net.addPeer(4);
  QCOMPARE(net.status(4).membership, Membership{});
  QCOMPARE_ENUM(net.node(1).proposeChange({ConfigChange::Kind::AddLearner, 4}),
                ProposeResult::Accepted);
  net.drain(1);
  QVERIFY(heartbeatUntil(net, 1, [&] {
    return net.status(1).membership.isLearner(4) &&
           net.storage(4).lastIndex() == net.storage(1).lastIndex() &&
           net.status(4).commit == net.status(1).commit;
  }));
  const Membership withLearner{{1, 2, 3}, {4}};
  QCOMPARE(net.status(1).membership, withLearner);
  QCOMPARE(net.status(4).membership, withLearner);
  QCOMPARE(net.status(2).membership, withLearner);
  QCOMPARE(net.peer(4).values, net.peer(1).values);
  bool reported = false;
  for (const raft::PeerProgress& progress : net.status(1).progress) {
    if (progress.id != 4) continue;
    reported = true;
    QVERIFY(!progress.voter);
    QVERIFY(progress.caughtUp);
    QCOMPARE(progress.match, net.storage(1).lastIndex());
  }
  QVERIFY(reported);

  QCOMPARE_ENUM(net.node(1).proposeChange({ConfigChange::Kind::Promote, 4}),
                ProposeResult::Accepted);
  net.drain(1);
  QVERIFY(heartbeatUntil(net, 1, [&] { return net.status(4).membership.isVoter(4); }));
  const Membership promoted{{1, 2, 3, 4}, {}};
  QCOMPARE(net.status(1).membership, promoted);
  QCOMPARE(net.status(4).membership, promoted);

  // Four voters: a commit needs three of them.
  net.cut(1, 2);
  net.cut(1, 3);
  const Index c = net.status(1).commit;
  net.propose(1, "four");
  net.deliverAll();
  net.heartbeat(1);
  QCOMPARE(net.status(1).commit, c);
  net.heal();
  net.heartbeat(1);
  QCOMPARE(net.status(1).commit, c + 1);
  QCOMPARE(net.peer(1).values.back(), std::string("four"));
}

void RaftPaperTest::learnerNeitherVotesNorCountsForCommit() {
  Network& net = network(3, classic());
  QVERIFY(net.elect(1));
  net.heartbeat(1);
  net.addPeer(4);
  QCOMPARE_ENUM(net.node(1).proposeChange({ConfigChange::Kind::AddLearner, 4}),
                ProposeResult::Accepted);
  net.drain(1);
  QVERIFY(heartbeatUntil(net, 1, [&] { return net.status(4).membership.isLearner(4); }));

  // Only the learner acknowledges: no commit.
  net.cut(1, 2);
  net.cut(1, 3);
  const Index c = net.status(1).commit;
  net.propose(1, "l");
  net.deliverAll();
  net.heartbeat(1);
  net.heartbeat(1);
  QCOMPARE(net.storage(4).lastIndex(), c + 1);
  QCOMPARE(net.status(1).commit, c);
  net.heal();
  net.heartbeat(1);
  QCOMPARE(net.status(1).commit, c + 1);

  // A learner never campaigns, however long it hears nothing.
  const Term t = net.node(4).term();
  net.cut(1, 4);
  net.tick(4, 10 * kElection);
  net.node(4).campaign();
  net.drain(4);
  QCOMPARE_ENUM(net.node(4).role(), Role::Follower);
  QCOMPARE(net.node(4).term(), t);
  QVERIFY(net.take([](const Message& m) { return m.from == 4; }).empty());
  net.heal();

  // Node 2 campaigns with only the learner reachable: 1 of 3 voters plus a
  // learner is no majority, whatever the learner answers.
  net.crash(1);
  net.crash(3);
  QVERIFY(!net.elect(2));
  QCOMPARE_ENUM(net.node(2).role(), Role::Candidate);
  QVERIFY(net.take([](const Message& m) { return m.to == 4; }).empty());
  Message grant = message(MessageType::VoteResponse, 4, 2, net.node(2).term());
  net.inject(grant);
  QCOMPARE_ENUM(net.node(2).role(), Role::Candidate);
  // A real voter's grant does make the majority.
  net.restart(3);
  net.inject(message(MessageType::VoteResponse, 3, 2, net.node(2).term()));
  QCOMPARE_ENUM(net.node(2).role(), Role::Leader);
}

void RaftPaperTest::removedNodeCannotDisrupt() {
  Network& net = network(3, classic());
  QVERIFY(net.elect(1));
  net.heartbeat(1);
  QCOMPARE_ENUM(net.node(1).proposeChange({ConfigChange::Kind::Remove, 3}),
                ProposeResult::Accepted);
  net.drain(1);
  QVERIFY(heartbeatUntil(net, 1, [&] { return net.status(2).membership.voters.size() == 2; }));
  const Membership two{{1, 2}, {}};
  QCOMPARE(net.status(1).membership, two);
  QCOMPARE(net.status(2).membership, two);
  const Term t = net.node(1).term();
  const raft::HardState hard2 = net.storage(2).hardState();

  // The removed node's vote requests, even at a higher term, are ignored.
  const Index last = net.storage(1).lastIndex();
  net.inject(voteRequest(3, 1, t + 5, last + 10, t + 4));
  net.inject(voteRequest(3, 2, t + 5, last + 10, t + 4));
  QCOMPARE_ENUM(net.node(1).role(), Role::Leader);
  QCOMPARE(net.node(1).term(), t);
  QCOMPARE(net.node(2).term(), t);
  QCOMPARE(net.storage(2).hardState().vote, hard2.vote);
  QCOMPARE(net.storage(2).hardState().term, hard2.term);
  for (const Message& m : net.take()) {
    QVERIFY(!(m.type == MessageType::VoteResponse && !m.reject));
  }
  // And when it campaigns on its own, nothing changes either.
  net.tick(3, 4 * kElection);
  net.deliverAll();
  QCOMPARE_ENUM(net.node(1).role(), Role::Leader);
  QCOMPARE(net.node(1).term(), t);

  // Two voters commit without it.
  net.isolate(3);
  const Index c = net.status(1).commit;
  net.propose(1, "without-3");
  net.deliverAll();
  net.heartbeat(1);
  QCOMPARE(net.status(1).commit, c + 1);
  QCOMPARE(net.status(2).commit, c + 1);
}

void RaftPaperTest::onlyOneMembershipChangeAtATime() {
  Network& net = network(3, classic());
  QVERIFY(net.elect(1));
  net.heartbeat(1);
  net.addPeer(4);
  net.addPeer(5);
  // Changes that make no sense are refused outright.
  QCOMPARE_ENUM(net.node(1).proposeChange({ConfigChange::Kind::AddLearner, 2}),
                ProposeResult::InvalidChange);
  QCOMPARE_ENUM(net.node(1).proposeChange({ConfigChange::Kind::Promote, 9}),
                ProposeResult::InvalidChange);
  QCOMPARE_ENUM(net.node(1).proposeChange({ConfigChange::Kind::Remove, 9}),
                ProposeResult::InvalidChange);
  QCOMPARE_ENUM(net.node(2).proposeChange({ConfigChange::Kind::AddLearner, 4}),
                ProposeResult::NotLeader);

  net.cut(1, 2);
  net.cut(1, 3);
  QCOMPARE_ENUM(net.node(1).proposeChange({ConfigChange::Kind::AddLearner, 4}),
                ProposeResult::Accepted);
  net.drain(1);
  net.deliverAll();
  // Not committed yet: a second change must wait.
  QCOMPARE_ENUM(net.node(1).proposeChange({ConfigChange::Kind::AddLearner, 5}),
                ProposeResult::ChangeInProgress);
  QCOMPARE_ENUM(net.node(1).proposeChange({ConfigChange::Kind::Remove, 3}),
                ProposeResult::ChangeInProgress);
  QCOMPARE_ENUM(net.node(1).propose("data is fine"), ProposeResult::Accepted);
  net.heal();
  QVERIFY(heartbeatUntil(net, 1, [&] { return net.status(1).membership.isLearner(4); }));
  QCOMPARE_ENUM(net.node(1).proposeChange({ConfigChange::Kind::AddLearner, 5}),
                ProposeResult::Accepted);
  net.drain(1);
  QVERIFY(heartbeatUntil(net, 1, [&] { return net.status(1).membership.isLearner(5); }));
  QCOMPARE(sorted(net.status(1).membership.learners), (std::vector<NodeId>{4, 5}));
  QCOMPARE(net.status(1).membership.voters, (std::vector<NodeId>{1, 2, 3}));
}

QTEST_APPLESS_MAIN(RaftPaperTest)
#include "raft_paper_test.moc"
