// Cluster scenarios on the deterministic simulator (engine/sim), after the
// classic Raft lab tests (elections, agreement, persistence, Figure 8,
// unreliable networks, churn) plus snapshots, membership, leadership
// transfer, pre-vote, check-quorum and ReadIndex. Every scenario ends with
// the simulator's invariant verdict (election safety, log matching, leader
// completeness, state machine safety, monotonic commit/apply, one vote per
// term) and asserts concrete outcomes on top of it.

#include <QTest>

#include <algorithm>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "engine/sim/simulation.h"
#include "tests/test_printers.h"

using copycat::raft::ConfigChange;
using copycat::raft::ProposeResult;
using copycat::raft::ReadMode;
using copycat::raft::Role;
using copycat::sim::Index;
using copycat::sim::Millis;
using copycat::sim::NodeId;
using copycat::sim::SimConfig;
using copycat::sim::Simulation;
using copycat::sim::Term;

#define SIM_OK(sim) QVERIFY2((sim).ok(), (sim).report().c_str())

namespace {

SimConfig config(int nodes, std::uint64_t seed = 1) {
  SimConfig c;
  c.nodes = nodes;
  c.seed = seed;
  return c;
}

Millis electionTimeout(const Simulation& sim) {
  return sim.config().electionTicks * sim.config().tickMillis;
}

std::vector<NodeId> others(const Simulation& sim, const std::vector<NodeId>& excluded) {
  std::vector<NodeId> out;
  for (NodeId id : sim.nodeIds()) {
    if (std::find(excluded.begin(), excluded.end(), id) == excluded.end()) out.push_back(id);
  }
  return out;
}

/// The leader of `group` once one node of the group leads the highest term
/// seen in the group and every live member of the group follows it.
std::optional<NodeId> leaderIn(const Simulation& sim, const std::vector<NodeId>& group) {
  std::optional<NodeId> best;
  Term bestTerm = 0;
  for (NodeId id : group) {
    if (!sim.isUp(id)) continue;
    const auto status = sim.status(id);
    if (status.role == Role::Leader && (!best || status.term > bestTerm)) {
      best = id;
      bestTerm = status.term;
    }
  }
  if (!best) return std::nullopt;
  for (NodeId id : group) {
    if (!sim.isUp(id)) continue;
    const auto status = sim.status(id);
    if (status.term > bestTerm || status.leader != *best) return std::nullopt;
  }
  return best;
}

std::optional<NodeId> awaitLeaderIn(Simulation& sim, const std::vector<NodeId>& group, Millis limit = 5000) {
  std::optional<NodeId> found;
  sim.runUntil(
      [&] {
        found = leaderIn(sim, group);
        return found.has_value();
      },
      limit);
  return found;
}

/// Runs until every node in `ids` (all of them when empty) applied `index`.
bool awaitApplied(Simulation& sim, Index index, std::vector<NodeId> ids = {}, Millis limit = 5000) {
  if (ids.empty()) ids = sim.nodeIds();
  return sim.runUntil(
      [&] {
        for (NodeId id : ids) {
          if (!sim.isUp(id) || sim.appliedIndex(id) < index) return false;
        }
        return true;
      },
      limit);
}

std::vector<std::string> numbered(const std::string& prefix, int count) {
  std::vector<std::string> out;
  for (int i = 0; i < count; ++i) out.push_back(prefix + std::to_string(i));
  return out;
}

bool appliedAnywhere(const Simulation& sim, const std::string& value) {
  for (NodeId id : sim.nodeIds()) {
    const auto values = sim.appliedValues(id);
    if (std::find(values.begin(), values.end(), value) != values.end()) return true;
  }
  return false;
}

bool inLog(const Simulation& sim, NodeId id, const std::string& value) {
  for (const auto& entry : sim.persistedLog(id)) {
    if (entry.data == value) return true;
  }
  return false;
}

/// True when every value of `sequence` occurs once and their ranks never
/// decrease (values proposed in the same round may commit in any order).
bool inRankOrder(const std::vector<std::string>& sequence, const std::map<std::string, int>& rank) {
  std::set<std::string> seen;
  int previous = -1;
  for (const std::string& value : sequence) {
    auto it = rank.find(value);
    if (it == rank.end() || !seen.insert(value).second || it->second < previous) return false;
    previous = it->second;
  }
  return true;
}

/// True when `sequence` appears in `order` in the same relative order.
bool isSubsequence(const std::vector<std::string>& sequence, const std::vector<std::string>& order) {
  std::size_t at = 0;
  for (const std::string& value : sequence) {
    while (at < order.size() && order[at] != value) ++at;
    if (at == order.size()) return false;
    ++at;
  }
  return true;
}

QString describe(const std::vector<std::string>& values) {
  QStringList out;
  for (const std::string& value : values) out << QString::fromStdString(value);
  return out.join(QLatin1Char(' '));
}

}  // namespace

class RaftScenariosTest : public QObject {
  Q_OBJECT

 private slots:
  void initialElection_data();
  void initialElection();
  void reElectionAfterLeaderLoss();
  void noLeaderWithoutQuorum();
  void manyElectionsWithRandomDisconnects();
  void basicAgreement();
  void followerFailure();
  void leaderFailure();
  void noCommitInMinority();
  void concurrentProposals();
  void partitionedLeaderRejoinsAndIsOverwritten();
  void backupOfDivergentEntries();
  void allNodesCrashAndRestart();
  void figure8UnreliableWithThousandLeaderCrashes();
  void agreementOnUnreliableNetwork();
  void churn();
  void snapshotInstallToLaggingFollower();
  void addPromoteAndRemoveMembers();
  void leadershipTransfer();
  void preVoteStopsRejoiningNodeFromDeposingLeader();
  void withoutPreVoteRejoiningNodeDeposesLeader();
  void checkQuorumIsolatedLeaderStepsDown();
  void readIndexNeedsMajorityConfirmation();
};

void RaftScenariosTest::initialElection_data() {
  QTest::addColumn<int>("nodes");
  QTest::addColumn<int>("seed");
  for (int nodes : {1, 3, 5, 7}) {
    for (int seed : {1, 2, 3}) {
      QTest::addRow("%d nodes seed %d", nodes, seed) << nodes << seed;
    }
  }
}

void RaftScenariosTest::initialElection() {
  QFETCH(int, nodes);
  QFETCH(int, seed);
  Simulation sim(config(nodes, static_cast<std::uint64_t>(seed)));
  // A leader within a few election timeouts, known to everyone.
  const auto leader = sim.waitForLeader(10 * electionTimeout(sim));
  QVERIFY2(leader.has_value(), sim.report().c_str());
  const Term term = sim.status(*leader).term;
  QVERIFY(term >= 2);  // bootstrap entries are term 1; the first election opens term 2
  for (NodeId id : sim.nodeIds()) {
    QCOMPARE(sim.status(id).term, term);
    QCOMPARE(sim.status(id).leader, *leader);
  }
  // With no faults, the leader and term stay put.
  sim.runFor(2000);
  QCOMPARE(sim.leader(), leader);
  for (NodeId id : sim.nodeIds()) QCOMPARE(sim.status(id).term, term);
  SIM_OK(sim);
}

void RaftScenariosTest::reElectionAfterLeaderLoss() {
  Simulation sim(config(3));
  const NodeId leader1 = sim.waitForLeader().value_or(0);
  QVERIFY(leader1 != 0);
  const Term term1 = sim.status(leader1).term;

  // The leader disconnects: a new one is elected.
  sim.isolate(leader1);
  const auto rest = others(sim, {leader1});
  const NodeId leader2 = awaitLeaderIn(sim, rest).value_or(0);
  QVERIFY2(leader2 != 0, sim.report().c_str());
  QVERIFY(leader2 != leader1);
  QVERIFY(sim.status(leader2).term > term1);

  // The old leader rejoins and does not disturb the new one.
  sim.heal();
  QCOMPARE(sim.waitForLeader(), std::optional<NodeId>(leader2));
  QCOMPARE(sim.status(leader1).leader, leader2);
  QCOMPARE_ENUM(sim.status(leader1).role, Role::Follower);

  // Two of three disconnect: no leader.
  const NodeId loner = rest[0] == leader2 ? rest[1] : rest[0];
  sim.isolate(leader2);
  sim.isolate(leader1);
  sim.runFor(10 * electionTimeout(sim));
  for (NodeId id : sim.nodeIds()) {
    QVERIFY2(sim.status(id).role != Role::Leader, qPrintable(QStringLiteral("n%1 leads").arg(id)));
  }
  // One comes back: a quorum again, a leader again.
  sim.heal();
  sim.isolate(leader2);
  QVERIFY(awaitLeaderIn(sim, {leader1, loner}).has_value());
  sim.heal();
  QVERIFY(sim.waitForLeader().has_value());
  SIM_OK(sim);
}

void RaftScenariosTest::noLeaderWithoutQuorum() {
  Simulation sim(config(5));
  const NodeId leader = sim.waitForLeader().value_or(0);
  QVERIFY(leader != 0);
  const Term term = sim.status(leader).term;
  // Three of five (including the leader) are cut off from everyone.
  const auto rest = others(sim, {leader});
  sim.isolate(leader);
  sim.isolate(rest[0]);
  sim.isolate(rest[1]);
  sim.runFor(3 * electionTimeout(sim));
  sim.runUntil([&] { return !sim.leader().has_value(); }, 20 * electionTimeout(sim));
  sim.runFor(20 * electionTimeout(sim));
  QCOMPARE(sim.leader(), std::optional<NodeId>());
  // With pre-vote, nobody could even start a real election: terms did not move.
  for (NodeId id : sim.nodeIds()) QCOMPARE(sim.status(id).term, term);
  sim.heal();
  QVERIFY(sim.waitForLeader(10 * electionTimeout(sim)).has_value());
  QVERIFY(sim.commitValue("after").has_value());
  SIM_OK(sim);
}

void RaftScenariosTest::manyElectionsWithRandomDisconnects() {
  Simulation sim(config(7));
  QVERIFY(sim.waitForLeader().has_value());
  std::mt19937_64 rng(42);
  Term previousTerm = 0;
  for (int iteration = 0; iteration < 10; ++iteration) {
    std::vector<NodeId> ids = sim.nodeIds();
    std::shuffle(ids.begin(), ids.end(), rng);
    const std::vector<NodeId> cutOff(ids.begin(), ids.begin() + 3);
    const std::vector<NodeId> majority(ids.begin() + 3, ids.end());
    for (NodeId id : cutOff) sim.isolate(id);
    const auto leader = awaitLeaderIn(sim, majority);
    QVERIFY2(leader.has_value(), qPrintable(QStringLiteral("iteration %1\n%2").arg(iteration).arg(
                                     QString::fromStdString(sim.report()))));
    const Term term = sim.status(*leader).term;
    QVERIFY(term >= previousTerm);
    previousTerm = term;
    sim.heal();
    QVERIFY(sim.waitForLeader().has_value());
  }
  QVERIFY(sim.commitValue("after many elections").has_value());
  SIM_OK(sim);
}

void RaftScenariosTest::basicAgreement() {
  Simulation sim(config(5));
  QVERIFY(sim.waitForLeader().has_value());
  std::vector<std::string> expected;
  std::optional<Index> previous;
  for (int i = 1; i <= 3; ++i) {
    const std::string value = "value-" + std::to_string(i);
    QVERIFY(!appliedAnywhere(sim, value));
    const auto index = sim.commitValue(value);
    QVERIFY2(index.has_value(), sim.report().c_str());
    if (previous) QCOMPARE(*index, *previous + 1);
    previous = index;
    expected.push_back(value);
  }
  QVERIFY(awaitApplied(sim, *previous));
  for (NodeId id : sim.nodeIds()) QCOMPARE(sim.appliedValues(id), expected);
  SIM_OK(sim);
}

void RaftScenariosTest::followerFailure() {
  Simulation sim(config(3));
  const NodeId leader = sim.waitForLeader().value_or(0);
  QVERIFY(leader != 0);
  QVERIFY(sim.commitValue("101").has_value());
  const auto followers = others(sim, {leader});

  // One follower down: two of three still commit.
  sim.crash(followers[0]);
  QVERIFY(sim.commitValue("102").has_value());
  const auto index103 = sim.commitValue("103");
  QVERIFY(index103.has_value());
  QCOMPARE(sim.leader(), std::optional<NodeId>(leader));

  // It comes back and catches up.
  sim.restart(followers[0]);
  QVERIFY(awaitApplied(sim, *index103));
  const std::vector<std::string> expected{"101", "102", "103"};
  for (NodeId id : sim.nodeIds()) QCOMPARE(sim.appliedValues(id), expected);

  // Both followers down: nothing commits.
  sim.crash(followers[0]);
  sim.crash(followers[1]);
  const Index commit = sim.status(leader).commit;
  QCOMPARE(sim.commitValue("104", 2000), std::optional<Index>());
  QCOMPARE(sim.status(leader).commit, commit);
  QVERIFY(!appliedAnywhere(sim, "104"));
  SIM_OK(sim);
}

void RaftScenariosTest::leaderFailure() {
  Simulation sim(config(3));
  const NodeId leader1 = sim.waitForLeader().value_or(0);
  QVERIFY(leader1 != 0);
  QVERIFY(sim.commitValue("101").has_value());

  sim.crash(leader1);
  QVERIFY(sim.commitValue("102").has_value());
  const NodeId leader2 = sim.leader().value_or(0);
  QVERIFY(leader2 != 0 && leader2 != leader1);

  sim.crash(leader2);
  const NodeId survivor = others(sim, {leader1, leader2})[0];
  QCOMPARE_ENUM(sim.propose(survivor, "103"), ProposeResult::NotLeader);
  QCOMPARE(sim.commitValue("103", 2000), std::optional<Index>());
  QVERIFY(!appliedAnywhere(sim, "103"));

  sim.restart(leader1);
  sim.restart(leader2);
  const auto index = sim.commitValue("104");
  QVERIFY(index.has_value());
  QVERIFY(awaitApplied(sim, *index));
  const std::vector<std::string> expected{"101", "102", "104"};
  for (NodeId id : sim.nodeIds()) QCOMPARE(sim.appliedValues(id), expected);
  SIM_OK(sim);
}

void RaftScenariosTest::noCommitInMinority() {
  Simulation sim(config(5));
  const NodeId leader = sim.waitForLeader().value_or(0);
  QVERIFY(leader != 0);
  const auto first = sim.commitValue("10");
  QVERIFY(first.has_value());

  // Three followers disconnect; the leader accepts a proposal it cannot commit.
  const auto followers = others(sim, {leader});
  for (int i = 0; i < 3; ++i) sim.isolate(followers[static_cast<std::size_t>(i)]);
  QCOMPARE_ENUM(sim.propose(leader, "20"), ProposeResult::Accepted);
  const Index index20 = sim.status(leader).lastIndex;
  QCOMPARE(index20, *first + 1);
  sim.runFor(10 * electionTimeout(sim));
  for (NodeId id : sim.nodeIds()) {
    QVERIFY(sim.status(id).commit < index20);
    QVERIFY(sim.appliedIndex(id) < index20);
  }
  QVERIFY(!appliedAnywhere(sim, "20"));

  sim.heal();
  const auto index30 = sim.commitValue("30");
  QVERIFY(index30.has_value());
  QVERIFY(*index30 > index20 - 1);
  QVERIFY(awaitApplied(sim, *index30));
  // "20" may or may not have survived, but every node agrees.
  const auto reference = sim.appliedValues(leader);
  QCOMPARE(reference.front(), std::string("10"));
  QCOMPARE(reference.back(), std::string("30"));
  QVERIFY(reference.size() == 2 || reference.size() == 3);
  for (NodeId id : sim.nodeIds()) QCOMPARE(sim.appliedValues(id), reference);
  SIM_OK(sim);
}

void RaftScenariosTest::concurrentProposals() {
  Simulation sim(config(5));
  const NodeId leader = sim.waitForLeader().value_or(0);
  QVERIFY(leader != 0);
  const auto values = numbered("c", 100);
  for (const std::string& value : values) {
    QCOMPARE_ENUM(sim.propose(leader, value), ProposeResult::Accepted);
  }
  const Index last = sim.status(leader).lastIndex;
  QVERIFY(awaitApplied(sim, last, {}, 3000));
  for (NodeId id : sim.nodeIds()) QCOMPARE(sim.appliedValues(id), values);
  QCOMPARE(sim.leader(), std::optional<NodeId>(leader));
  SIM_OK(sim);
}

void RaftScenariosTest::partitionedLeaderRejoinsAndIsOverwritten() {
  Simulation sim(config(3));
  const NodeId leader1 = sim.waitForLeader().value_or(0);
  QVERIFY(leader1 != 0);
  QVERIFY(sim.commitValue("a").has_value());

  // The leader is cut off and accepts entries nobody else sees.
  sim.isolate(leader1);
  for (const char* value : {"b1", "b2", "b3"}) QCOMPARE_ENUM(sim.propose(leader1, value), ProposeResult::Accepted);
  QVERIFY(inLog(sim, leader1, "b1"));

  // The others elect a new leader and commit "c".
  const auto rest = others(sim, {leader1});
  const NodeId leader2 = awaitLeaderIn(sim, rest).value_or(0);
  QVERIFY(leader2 != 0);
  QVERIFY(sim.commitValue("c").has_value());

  // The new leader is cut off, the old one returns next to the third node,
  // which has "c" and therefore wins: the b's are overwritten.
  sim.heal();
  sim.isolate(leader2);
  const NodeId third = rest[0] == leader2 ? rest[1] : rest[0];
  QCOMPARE(awaitLeaderIn(sim, {leader1, third}), std::optional<NodeId>(third));
  QVERIFY(sim.commitValue("d").has_value());
  QVERIFY(!inLog(sim, leader1, "b1"));

  sim.heal();
  const auto index = sim.commitValue("e");
  QVERIFY(index.has_value());
  QVERIFY(awaitApplied(sim, *index));
  const std::vector<std::string> expected{"a", "c", "d", "e"};
  for (NodeId id : sim.nodeIds()) {
    QCOMPARE(sim.appliedValues(id), expected);
    for (const char* value : {"b1", "b2", "b3"}) QVERIFY(!inLog(sim, id, value));
  }
  SIM_OK(sim);
}

void RaftScenariosTest::backupOfDivergentEntries() {
  // Raft's "backup" test: a leader and a follower accumulate 50 entries
  // that never commit while the other three commit 50; then the roles of
  // the groups change twice. Every follower must back up over many
  // divergent entries quickly.
  Simulation sim(config(5));
  const NodeId leader1 = sim.waitForLeader().value_or(0);
  QVERIFY(leader1 != 0);
  QVERIFY(sim.commitValue("start").has_value());
  std::vector<std::string> expected{"start"};

  const auto rest = others(sim, {leader1});
  const NodeId follower1 = rest[0];
  const std::vector<NodeId> group3(rest.begin() + 1, rest.end());
  sim.partition({{leader1, follower1}, group3});
  for (const std::string& value : numbered("lost1-", 50)) {
    QCOMPARE_ENUM(sim.propose(leader1, value), ProposeResult::Accepted);
  }
  sim.runFor(electionTimeout(sim) / 2);

  sim.partition({group3, {leader1}, {follower1}});
  QVERIFY(awaitLeaderIn(sim, group3).has_value());
  for (const std::string& value : numbered("won1-", 50)) {
    QVERIFY2(sim.commitValue(value).has_value(), sim.report().c_str());
    expected.push_back(value);
  }

  // Now the new leader and one follower are cut off with 50 more entries.
  sim.heal();
  const NodeId leader2 = leaderIn(sim, group3).value_or(0);
  QVERIFY(leader2 != 0);
  NodeId other = 0;
  NodeId companion = 0;
  for (NodeId id : group3) {
    if (id == leader2) continue;
    (other == 0 ? other : companion) = id;
  }
  sim.partition({{leader2, companion}, {leader1, follower1, other}});
  for (const std::string& value : numbered("lost2-", 50)) {
    QCOMPARE_ENUM(sim.propose(leader2, value), ProposeResult::Accepted);
  }
  sim.runFor(electionTimeout(sim) / 2);

  // The original leader and its follower come back with `other`, which has
  // the 50 committed entries and must win.
  QVERIFY(awaitLeaderIn(sim, {leader1, follower1, other}).has_value());
  for (const std::string& value : numbered("won2-", 50)) {
    QVERIFY2(sim.commitValue(value).has_value(), sim.report().c_str());
    expected.push_back(value);
  }

  sim.heal();
  const auto index = sim.commitValue("final");
  QVERIFY(index.has_value());
  expected.push_back("final");
  QVERIFY(awaitApplied(sim, *index));
  for (NodeId id : sim.nodeIds()) {
    QCOMPARE(sim.appliedValues(id), expected);
    QVERIFY(!inLog(sim, id, "lost1-0"));
    QVERIFY(!inLog(sim, id, "lost2-49"));
  }
  SIM_OK(sim);
}

void RaftScenariosTest::allNodesCrashAndRestart() {
  Simulation sim(config(5));
  QVERIFY(sim.waitForLeader().has_value());
  std::vector<std::string> expected;
  for (int round = 0; round < 3; ++round) {
    for (const std::string& value : numbered("r" + std::to_string(round) + "-", 10)) {
      QVERIFY(sim.commitValue(value).has_value());
      expected.push_back(value);
    }
    std::map<NodeId, copycat::raft::HardState> before;
    for (NodeId id : sim.nodeIds()) before[id] = sim.persistedHardState(id);
    // Everybody crashes at once, possibly with Ready batches in flight.
    const NodeId leader = sim.leader().value_or(0);
    if (leader != 0) sim.propose(leader, "in-flight-" + std::to_string(round));
    for (NodeId id : sim.nodeIds()) sim.crash(id);
    for (NodeId id : sim.nodeIds()) {
      QVERIFY(sim.persistedHardState(id).term >= before[id].term);
      sim.restart(id);
    }
    QVERIFY(sim.waitForLeader().has_value());
  }
  const auto index = sim.commitValue("last");
  QVERIFY(index.has_value());
  QVERIFY(awaitApplied(sim, *index));
  // Nothing committed was lost; in-flight values may or may not have made it.
  const auto reference = sim.appliedValues(1);
  QCOMPARE(reference.back(), std::string("last"));
  QVERIFY2(isSubsequence(expected, reference), qPrintable(describe(reference)));
  for (const std::string& value : reference) {
    const bool known = std::find(expected.begin(), expected.end(), value) != expected.end() ||
                       value.rfind("in-flight-", 0) == 0 || value == "last";
    QVERIFY2(known, value.c_str());
  }
  for (NodeId id : sim.nodeIds()) QCOMPARE(sim.appliedValues(id), reference);
  SIM_OK(sim);
}

void RaftScenariosTest::figure8UnreliableWithThousandLeaderCrashes() {
  Simulation sim(config(5, 8));
  QVERIFY(sim.commitValue("first").has_value());
  sim.setDropRate(0.1);
  sim.setDelay(1, 25);
  std::mt19937_64 rng(8);
  const std::vector<NodeId> ids = sim.nodeIds();
  int crashes = 0;
  int iterations = 0;
  std::map<std::string, int> proposed{{"first", 0}};
  while (crashes < 1000 && iterations < 200000) {
    ++iterations;
    if (iterations == 2000) sim.setDelay(1, 60);  // long reordering from here on
    std::optional<NodeId> leader;
    for (NodeId id : ids) {
      const std::string value = "f" + std::to_string(iterations) + "-" + std::to_string(id);
      if (sim.propose(id, value) == ProposeResult::Accepted) {
        leader = id;
        proposed[value] = iterations;
      }
    }
    const Millis pause = rng() % 10 == 0 ? static_cast<Millis>(rng() % 50) : static_cast<Millis>(rng() % 13);
    sim.runFor(pause);
    if (leader && sim.isUp(*leader) && rng() % 2 == 0) {
      sim.crash(*leader);
      ++crashes;
    }
    int up = 0;
    for (NodeId id : ids) up += sim.isUp(id) ? 1 : 0;
    if (up < 3) {
      const NodeId id = ids[rng() % ids.size()];
      if (!sim.isUp(id)) sim.restart(id);
    }
    if (!sim.ok()) break;
  }
  SIM_OK(sim);
  QCOMPARE(crashes, 1000);

  sim.heal();
  sim.setDelay(1, 3);
  for (NodeId id : ids) {
    if (!sim.isUp(id)) sim.restart(id);
  }
  const auto index = sim.commitValue("final", 20000);
  QVERIFY2(index.has_value(), sim.report().c_str());
  QVERIFY(awaitApplied(sim, *index));
  const auto reference = sim.appliedValues(1);
  QCOMPARE(reference.back(), std::string("final"));
  QCOMPARE(reference.front(), std::string("first"));
  proposed["final"] = iterations + 1;
  QVERIFY(inRankOrder(reference, proposed));
  for (NodeId id : ids) QCOMPARE(sim.appliedValues(id), reference);
  qInfo("figure 8 (unreliable): %d leader crashes in %d iterations, %zu of %zu proposals committed, "
        "%lld virtual ms, %llu steps, %llu messages",
        crashes, iterations, reference.size() - 1, proposed.size(), static_cast<long long>(sim.now()),
        static_cast<unsigned long long>(sim.stepsRun()), static_cast<unsigned long long>(sim.messagesDelivered()));
  SIM_OK(sim);
}

void RaftScenariosTest::agreementOnUnreliableNetwork() {
  Simulation sim(config(5, 3));
  QVERIFY(sim.waitForLeader().has_value());
  sim.setDropRate(0.1);
  sim.setDelay(1, 40);  // delays of up to 40 ms reorder messages
  std::vector<std::string> proposed;
  for (int iteration = 0; iteration < 50; ++iteration) {
    const auto leader = sim.leader();
    if (leader) {
      for (int client = 0; client < 4; ++client) {
        const std::string value = "u" + std::to_string(iteration) + "-" + std::to_string(client);
        if (sim.propose(*leader, value) == ProposeResult::Accepted) proposed.push_back(value);
      }
    }
    sim.runFor(20);
  }
  sim.heal();
  sim.setDelay(1, 3);
  const auto index = sim.commitValue("final");
  QVERIFY2(index.has_value(), sim.report().c_str());
  proposed.push_back("final");
  QVERIFY(awaitApplied(sim, *index));
  const auto reference = sim.appliedValues(1);
  // In proposal order, no duplicates, most of them committed despite losses.
  QVERIFY(isSubsequence(reference, proposed));
  QVERIFY2(reference.size() >= proposed.size() / 2,
           qPrintable(QStringLiteral("%1 of %2 committed").arg(reference.size()).arg(proposed.size())));
  for (NodeId id : sim.nodeIds()) QCOMPARE(sim.appliedValues(id), reference);
  SIM_OK(sim);
}

void RaftScenariosTest::churn() {
  Simulation sim(config(5, 11));
  QVERIFY(sim.waitForLeader().has_value());
  std::mt19937_64 rng(11);
  const std::vector<NodeId> ids = sim.nodeIds();
  std::map<std::string, int> proposed;
  std::vector<std::string> longestSeen;
  for (int iteration = 0; iteration < 400; ++iteration) {
    for (NodeId id : ids) {
      const std::string value = "ch" + std::to_string(iteration) + "-" + std::to_string(id);
      if (sim.propose(id, value) == ProposeResult::Accepted) proposed[value] = iteration;
    }
    const auto roll = rng() % 100;
    const NodeId victim = ids[rng() % ids.size()];
    if (roll < 10) {
      sim.crash(victim);
    } else if (roll < 30) {
      if (!sim.isUp(victim)) sim.restart(victim);
    } else if (roll < 38) {
      sim.isolate(victim);
    } else if (roll < 50) {
      sim.heal();
    }
    sim.runFor(static_cast<Millis>(rng() % 60));
    // Whatever any node applied must stay applied (checked at the end).
    for (NodeId id : ids) {
      if (!sim.isUp(id)) continue;
      auto values = sim.appliedValues(id);
      if (values.size() > longestSeen.size()) longestSeen = std::move(values);
    }
    if (!sim.ok()) break;
  }
  SIM_OK(sim);
  sim.heal();
  for (NodeId id : ids) {
    if (!sim.isUp(id)) sim.restart(id);
  }
  const auto index = sim.commitValue("final", 10000);
  QVERIFY2(index.has_value(), sim.report().c_str());
  proposed["final"] = 1 << 30;
  QVERIFY(awaitApplied(sim, *index));
  const auto reference = sim.appliedValues(1);
  QVERIFY(longestSeen.size() > 10);
  QVERIFY2(std::equal(longestSeen.begin(), longestSeen.end(), reference.begin()),
           "a value once applied was lost or replaced");
  QVERIFY(inRankOrder(reference, proposed));
  for (NodeId id : ids) QCOMPARE(sim.appliedValues(id), reference);
  SIM_OK(sim);
}

void RaftScenariosTest::snapshotInstallToLaggingFollower() {
  SimConfig c = config(3, 5);
  c.snapshotEvery = 10;
  c.compactionMargin = 5;
  c.snapshotChunkBytes = 64;
  Simulation sim(c);
  const NodeId leader = sim.waitForLeader().value_or(0);
  QVERIFY(leader != 0);
  QVERIFY(sim.commitValue("before").has_value());
  const NodeId follower = others(sim, {leader})[0];
  sim.isolate(follower);
  const Index followerLast = sim.status(follower).lastIndex;

  std::vector<std::string> expected{"before"};
  for (const std::string& value : numbered("s", 100)) {
    QVERIFY(sim.commitValue(value).has_value());
    expected.push_back(value);
  }
  // The leader compacted its log past everything the follower has.
  QVERIFY(sim.status(leader).snapshotIndex > followerLast + 50);
  QVERIFY(sim.status(leader).firstIndex > followerLast + 1);
  QCOMPARE(sim.snapshotsInstalled(follower), std::uint64_t{0});

  sim.heal();
  const Index target = sim.appliedIndex(leader);
  QVERIFY2(awaitApplied(sim, target, {follower}, 5000), sim.report().c_str());
  QVERIFY(sim.snapshotsInstalled(follower) > 0);
  QVERIFY(sim.status(follower).snapshotIndex > followerLast);
  QCOMPARE(sim.appliedValues(follower), expected);
  QCOMPARE(sim.appliedValues(leader), expected);
  // It keeps replicating normally afterwards.
  const auto index = sim.commitValue("after");
  QVERIFY(index.has_value());
  QVERIFY(awaitApplied(sim, *index));
  expected.push_back("after");
  QCOMPARE(sim.appliedValues(follower), expected);
  SIM_OK(sim);
}

void RaftScenariosTest::addPromoteAndRemoveMembers() {
  Simulation sim(config(3, 4));
  const NodeId leader = sim.waitForLeader().value_or(0);
  QVERIFY(leader != 0);
  QVERIFY(sim.commitValue("a").has_value());

  // A new node joins as a learner and receives the log.
  const NodeId newcomer = sim.addNode();
  QCOMPARE(newcomer, NodeId{4});
  QCOMPARE_ENUM(sim.proposeChange(leader, {ConfigChange::Kind::AddLearner, newcomer}), ProposeResult::Accepted);
  QCOMPARE_ENUM(sim.proposeChange(leader, {ConfigChange::Kind::AddLearner, 5}), ProposeResult::ChangeInProgress);
  QVERIFY2(sim.runUntil(
               [&] {
                 return sim.status(newcomer).membership.isLearner(newcomer) &&
                        sim.appliedValues(newcomer) == sim.appliedValues(leader);
               },
               3000),
           sim.report().c_str());
  QCOMPARE(sim.status(leader).membership.voters, (std::vector<NodeId>{1, 2, 3}));
  QCOMPARE(sim.status(leader).membership.learners, (std::vector<NodeId>{newcomer}));
  QCOMPARE(sim.appliedValues(newcomer), (std::vector<std::string>{"a"}));

  // Promoted once caught up.
  QVERIFY(sim.runUntil(
      [&] { return sim.proposeChange(leader, {ConfigChange::Kind::Promote, newcomer}) == ProposeResult::Accepted; },
      1000));
  QVERIFY(sim.runUntil([&] { return sim.status(newcomer).membership.isVoter(newcomer); }, 3000));
  QCOMPARE(sim.status(leader).membership.voters, (std::vector<NodeId>{1, 2, 3, 4}));
  QVERIFY(sim.commitValue("b").has_value());

  // A follower is removed; it stays up but cannot disturb the others.
  const NodeId removed = others(sim, {leader, newcomer})[0];
  QVERIFY(sim.runUntil(
      [&] { return sim.proposeChange(leader, {ConfigChange::Kind::Remove, removed}) == ProposeResult::Accepted; },
      1000));
  QVERIFY(sim.runUntil([&] { return !sim.status(leader).membership.contains(removed); }, 3000));
  const Term term = sim.status(leader).term;
  sim.runFor(30 * electionTimeout(sim));
  QCOMPARE(sim.leader(), std::optional<NodeId>(leader));
  QCOMPARE(sim.status(leader).term, term);
  QVERIFY(sim.commitValue("c").has_value());

  // The leader removes itself: it steps down and the remaining two go on.
  const NodeId last = others(sim, {leader, newcomer, removed})[0];
  QVERIFY(sim.runUntil(
      [&] { return sim.proposeChange(leader, {ConfigChange::Kind::Remove, leader}) == ProposeResult::Accepted; },
      1000));
  QVERIFY2(awaitLeaderIn(sim, {newcomer, last}).has_value(), sim.report().c_str());
  QVERIFY(sim.status(leader).role != Role::Leader);
  const NodeId leader2 = leaderIn(sim, {newcomer, last}).value_or(0);
  const auto index = sim.commitValue("d");
  QVERIFY(index.has_value());
  // The removal commits in the new leader's term at the latest.
  const std::vector<NodeId> remaining{std::min(newcomer, last), std::max(newcomer, last)};
  QCOMPARE(sim.status(leader2).membership.voters, remaining);
  QCOMPARE(sim.status(leader2).membership.learners, std::vector<NodeId>{});
  QCOMPARE(sim.leader(), std::optional<NodeId>(leader2));
  QVERIFY(awaitApplied(sim, *index, {newcomer, last}));
  const std::vector<std::string> expected{"a", "b", "c", "d"};
  QCOMPARE(sim.appliedValues(newcomer), expected);
  QCOMPARE(sim.appliedValues(last), expected);
  SIM_OK(sim);
}

void RaftScenariosTest::leadershipTransfer() {
  Simulation sim(config(5, 6));
  const NodeId leader = sim.waitForLeader().value_or(0);
  QVERIFY(leader != 0);
  QVERIFY(sim.commitValue("x").has_value());
  const Term term = sim.status(leader).term;
  const NodeId target = others(sim, {leader})[1];

  QCOMPARE_ENUM(sim.transferLeadership(leader, target), ProposeResult::Accepted);
  QVERIFY2(sim.runUntil([&] { return leaderIn(sim, sim.nodeIds()) == target; }, electionTimeout(sim)),
           sim.report().c_str());
  QCOMPARE(sim.status(target).term, term + 1);
  QCOMPARE(sim.status(leader).leader, target);
  QVERIFY(sim.commitValue("y").has_value());
  QCOMPARE(sim.leader(), std::optional<NodeId>(target));

  // A transfer to a node that is down times out; the leader then serves again.
  const NodeId down = others(sim, {leader, target})[0];
  sim.crash(down);
  QCOMPARE_ENUM(sim.transferLeadership(target, down), ProposeResult::Accepted);
  QCOMPARE_ENUM(sim.propose(target, "blocked"), ProposeResult::TransferInProgress);
  QVERIFY(sim.runUntil([&] { return sim.propose(target, "z") == ProposeResult::Accepted; }, 3 * electionTimeout(sim)));
  QCOMPARE(sim.leader(), std::optional<NodeId>(target));
  QCOMPARE(sim.status(target).term, term + 1);
  SIM_OK(sim);
}

void RaftScenariosTest::preVoteStopsRejoiningNodeFromDeposingLeader() {
  Simulation sim(config(5, 9));
  const NodeId leader = sim.waitForLeader().value_or(0);
  QVERIFY(leader != 0);
  const Term term = sim.status(leader).term;
  const NodeId loner = others(sim, {leader})[0];
  sim.isolate(loner);
  sim.runFor(20 * electionTimeout(sim));
  QCOMPARE(sim.status(loner).term, term);
  for (int i = 0; i < 5; ++i) QVERIFY(sim.commitValue("while-away-" + std::to_string(i)).has_value());
  sim.runFor(10 * electionTimeout(sim));
  QCOMPARE(sim.status(loner).term, term);

  sim.heal();
  sim.runFor(20 * electionTimeout(sim));
  QCOMPARE(sim.leader(), std::optional<NodeId>(leader));
  for (NodeId id : sim.nodeIds()) {
    QCOMPARE(sim.status(id).term, term);
    QCOMPARE(sim.status(id).leader, leader);
  }
  QCOMPARE(sim.appliedValues(loner), sim.appliedValues(leader));
  SIM_OK(sim);
}

void RaftScenariosTest::withoutPreVoteRejoiningNodeDeposesLeader() {
  // The control: the same run without pre-vote (and check-quorum) lets the
  // rejoining node's inflated term depose the leader.
  SimConfig c = config(5, 9);
  c.preVote = false;
  c.checkQuorum = false;
  Simulation sim(c);
  const NodeId leader = sim.waitForLeader().value_or(0);
  QVERIFY(leader != 0);
  const Term term = sim.status(leader).term;
  const NodeId loner = others(sim, {leader})[0];
  sim.isolate(loner);
  sim.runFor(20 * electionTimeout(sim));
  QVERIFY(sim.status(loner).term > term + 5);
  sim.heal();
  sim.runFor(20 * electionTimeout(sim));
  QVERIFY(sim.status(leader).term > term);
  QVERIFY(sim.waitForLeader().has_value());
  SIM_OK(sim);
}

void RaftScenariosTest::checkQuorumIsolatedLeaderStepsDown() {
  for (bool checkQuorum : {true, false}) {
    SimConfig c = config(5, 10);
    c.checkQuorum = checkQuorum;
    Simulation sim(c);
    const NodeId leader = sim.waitForLeader().value_or(0);
    QVERIFY(leader != 0);
    sim.runFor(500);
    sim.isolate(leader);
    const Millis start = sim.now();
    const bool steppedDown =
        sim.runUntil([&] { return sim.status(leader).role != Role::Leader; }, 20 * electionTimeout(sim));
    if (checkQuorum) {
      QVERIFY(steppedDown);
      const Millis took = sim.now() - start;
      QVERIFY2(took <= 2 * electionTimeout(sim) + sim.config().tickMillis,
               qPrintable(QStringLiteral("stepped down after %1 ms").arg(took)));
      QCOMPARE(sim.status(leader).leader, NodeId{0});
    } else {
      // Without check-quorum it believes it leads forever.
      QVERIFY(!steppedDown);
      QCOMPARE_ENUM(sim.status(leader).role, Role::Leader);
    }
    // The majority elected someone else meanwhile.
    QVERIFY(awaitLeaderIn(sim, others(sim, {leader})).has_value());
    SIM_OK(sim);
  }
}

void RaftScenariosTest::readIndexNeedsMajorityConfirmation() {
  Simulation sim(config(5, 12));
  const NodeId leader = sim.waitForLeader().value_or(0);
  QVERIFY(leader != 0);
  QVERIFY(sim.commitValue("a").has_value());

  // Without heartbeat answers the leader cannot confirm it still leads.
  sim.setMessageFilter([&](const copycat::raft::Message& m) {
    return m.type == copycat::raft::MessageType::HeartbeatResponse && m.to == leader;
  });
  QCOMPARE_ENUM(sim.readIndex(leader, 1), ProposeResult::Accepted);
  sim.runFor(electionTimeout(sim) / 2);
  QVERIFY(sim.releasedReads(leader).empty());
  sim.setMessageFilter({});
  QVERIFY(sim.runUntil([&] { return !sim.releasedReads(leader).empty(); }, electionTimeout(sim)));
  QCOMPARE(sim.releasedReads(leader).front().requestId, std::uint64_t{1});

  // An isolated leader never releases a read: not by ReadIndex, and not by
  // lease once the lease (T minus the drift margin) has run out, although it
  // still believes it leads (check-quorum has not fired yet).
  const auto before = sim.releasedReads(leader).size();
  sim.isolate(leader);
  QCOMPARE_ENUM(sim.readIndex(leader, 2), ProposeResult::Accepted);
  sim.runFor(electionTimeout(sim) - sim.config().tickMillis);
  QCOMPARE_ENUM(sim.status(leader).role, Role::Leader);
  QCOMPARE_ENUM(sim.readIndex(leader, 5, ReadMode::Lease), ProposeResult::Accepted);
  sim.runFor(20 * electionTimeout(sim));
  QCOMPARE(sim.releasedReads(leader).size(), before);

  // On the majority side a read is released at or after the latest commit.
  const NodeId leader2 = awaitLeaderIn(sim, others(sim, {leader})).value_or(0);
  QVERIFY(leader2 != 0);
  const auto committed = sim.commitValue("b");
  QVERIFY(committed.has_value());
  QCOMPARE_ENUM(sim.readIndex(leader2, 3), ProposeResult::Accepted);
  QVERIFY(sim.runUntil([&] { return !sim.releasedReads(leader2).empty(); }, electionTimeout(sim)));
  const auto read = sim.releasedReads(leader2).back();
  QCOMPARE(read.requestId, std::uint64_t{3});
  QVERIFY(read.index >= *committed);
  QCOMPARE(read.term, sim.status(leader2).term);

  // A lease read on the healthy leader needs no round trip.
  sim.runFor(3 * sim.config().tickMillis);
  const auto count = sim.releasedReads(leader2).size();
  QCOMPARE_ENUM(sim.readIndex(leader2, 4, ReadMode::Lease), ProposeResult::Accepted);
  QCOMPARE(sim.releasedReads(leader2).size(), count + 1);
  QCOMPARE(sim.releasedReads(leader2).back().requestId, std::uint64_t{4});
  QVERIFY(sim.releasedReads(leader2).back().index >= *committed);
  SIM_OK(sim);
}

QTEST_APPLESS_MAIN(RaftScenariosTest)
#include "raft_scenarios_test.moc"
