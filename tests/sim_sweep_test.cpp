// The simulation sweep and the simulator's self-tests.
//
//   sim_sweep_test --seeds FIRST-LAST [--mix NAME]   runs the sweep over a
//       seed range (every named fault mix in turn unless --mix is given) and
//       fails with the report, including the replay command, of each failed
//       seed. CTest runs it in shards; a long soak is the same command with a
//       bigger range, e.g. `sim_sweep_test --seeds 1-1000000`.
//   sim_sweep_test                                    runs the self-tests:
//       the simulator replays a seed exactly, and its checks do fail when a
//       run goes wrong.
// Any other arguments go to Qt Test.

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <vector>

#include <QElapsedTimer>
#include <QTest>

#include "engine/sim/simulation.h"

using copycat::sim::FaultMix;
using copycat::sim::NodeId;
using copycat::sim::SeedResult;
using copycat::sim::SimConfig;
using copycat::sim::Simulation;

namespace {

struct SeedRange {
  std::uint64_t first = 0;
  std::uint64_t last = 0;
  std::string mix;
  bool disk = false;
};

SeedRange g_range;

}  // namespace

class SimSweepTest : public QObject {
  Q_OBJECT

 private slots:
  void sweep();
};

void SimSweepTest::sweep() {
  SimConfig base;
  base.diskBacked = g_range.disk;
  std::map<std::string, int> seedsPerMix;
  for (std::uint64_t seed = g_range.first; seed <= g_range.last; ++seed) {
    ++seedsPerMix[copycat::sim::sweepConfig(seed, base, g_range.mix).mixName];
  }
  if (g_range.mix.empty() && g_range.last - g_range.first + 1 >= FaultMix::names().size()) {
    for (const std::string& name : FaultMix::names()) {
      QVERIFY2(seedsPerMix[name] > 0, name.c_str());
    }
  }

  QElapsedTimer timer;
  timer.start();
  std::vector<SeedResult> failures;
  constexpr std::uint64_t kBatch = 100;
  for (std::uint64_t first = g_range.first; first <= g_range.last; first += kBatch) {
    const std::uint64_t last = std::min(g_range.last, first + kBatch - 1);
    auto batch = copycat::sim::sweep(first, last, base, g_range.mix);
    failures.insert(failures.end(), batch.begin(), batch.end());
    const double seconds = static_cast<double>(timer.elapsed()) / 1000.0;
    std::printf("seeds %llu-%llu done, %zu failed so far, %.1f s\n",
                static_cast<unsigned long long>(g_range.first),
                static_cast<unsigned long long>(last), failures.size(), seconds);
    std::fflush(stdout);
  }
  const double seconds = std::max(static_cast<double>(timer.elapsed()) / 1000.0, 0.001);
  const auto count = g_range.last - g_range.first + 1;
  std::printf("sweep of %llu seeds (%s): %.1f s, %.1f seeds/s, %zu failed\n",
              static_cast<unsigned long long>(count),
              g_range.mix.empty() ? "all mixes" : g_range.mix.c_str(), seconds,
              static_cast<double>(count) / seconds, failures.size());

  if (!failures.empty()) {
    std::string message = std::to_string(failures.size()) + " seed(s) failed:";
    for (const SeedResult& failure : failures) message += " " + std::to_string(failure.seed);
    message += "\n";
    for (const SeedResult& failure : failures) {
      message += "---- seed " + std::to_string(failure.seed) + " (" +
                 std::to_string(failure.steps) + " steps)\n" + failure.report;
    }
    QFAIL(message.c_str());
  }
}

class SimSelfTest : public QObject {
  Q_OBJECT

 private slots:
  void sameSeedReplaysExactly();
  void livenessFailureIsReportedWithReplayCommand();
  void sweepReportsFailingSeeds();
  void namedMixesAndSeedDerivedConfigs();
  void lostDisksAreCaughtAsSafetyViolations();
  void diskBackedNodesRecoverFromTheirFiles();
};

void SimSelfTest::lostDisksAreCaughtAsSafetyViolations() {
  // Raft assumes that a majority never loses what it fsynced. Replacing the
  // disks of a majority breaks that assumption, and the invariant checks must
  // notice: the wiped nodes bootstrap again and vote, lead and commit anew in
  // terms and at indexes the cluster already used.
  int caught = 0;
  for (std::uint64_t seed = 1; seed <= 10; ++seed) {
    SimConfig config;
    config.seed = seed;
    config.nodes = 3;
    Simulation sim(config);
    for (int i = 0; i < 5; ++i)
      QVERIFY2(sim.commitValue("v" + std::to_string(i)), sim.report().c_str());
    const NodeId leader = *sim.leader();
    std::vector<NodeId> victims;
    for (NodeId id : sim.nodeIds()) {
      if (id != leader && victims.empty()) victims.push_back(id);
    }
    victims.push_back(leader);
    for (NodeId id : victims) {
      sim.crash(id);
      sim.wipeDisk(id);
    }
    // The one node that kept its log is cut off, so the wiped majority
    // decides alone.
    for (NodeId id : sim.nodeIds()) {
      if (std::find(victims.begin(), victims.end(), id) == victims.end()) sim.isolate(id);
    }
    for (NodeId id : victims) sim.restart(id);
    sim.runFor(3000);
    for (int i = 0; i < 3 && sim.ok(); ++i) sim.commitValue("after" + std::to_string(i), 2000);
    if (!sim.ok()) ++caught;
  }
  // Every seed must be caught: the wiped majority re-commits index 1.. with
  // different entries or votes again in a used term.
  QCOMPARE(caught, 10);
}

void SimSelfTest::diskBackedNodesRecoverFromTheirFiles() {
  SimConfig config;
  config.seed = 21;
  config.nodes = 3;
  config.diskBacked = true;
  config.snapshotEvery = 5;
  Simulation sim(config);
  for (int i = 0; i < 12; ++i)
    QVERIFY2(sim.commitValue("v" + std::to_string(i)), sim.report().c_str());
  const std::vector<std::string> before = sim.appliedValues(*sim.leader());
  for (NodeId id : sim.nodeIds()) sim.crash(id);
  for (NodeId id : sim.nodeIds()) sim.restart(id);
  QVERIFY2(sim.commitValue("after"), sim.report().c_str());
  std::vector<std::string> expected = before;
  expected.push_back("after");
  for (NodeId id : sim.nodeIds()) {
    QVERIFY2(sim.runUntil([&] { return sim.appliedValues(id) == expected; }, 3000),
             sim.report().c_str());
  }
  QVERIFY2(sim.ok(), sim.report().c_str());
}

void SimSelfTest::sameSeedReplaysExactly() {
  const SimConfig config = copycat::sim::sweepConfig(13, SimConfig{}, "chaos");
  Simulation first(config);
  Simulation second(config);
  QVERIFY2(first.runScenario(), first.report().c_str());
  QVERIFY2(second.runScenario(), second.report().c_str());
  QVERIFY(first.stepsRun() > 1000);
  QCOMPARE(first.stepsRun(), second.stepsRun());
  QCOMPARE(first.messagesDelivered(), second.messagesDelivered());
  QCOMPARE(first.now(), second.now());
  QCOMPARE(first.recentEvents(), second.recentEvents());
  for (NodeId id : first.nodeIds()) {
    QCOMPARE(first.appliedValues(id), second.appliedValues(id));
    QCOMPARE(first.persistedLog(id).size(), second.persistedLog(id).size());
    QVERIFY(first.persistedHardState(id) == second.persistedHardState(id));
  }
  // A different seed takes a different path.
  SimConfig other = config;
  other.seed = 14;
  Simulation third(other);
  QVERIFY2(third.runScenario(), third.report().c_str());
  QVERIFY(third.stepsRun() != first.stepsRun() ||
          third.messagesDelivered() != first.messagesDelivered());
}

void SimSelfTest::livenessFailureIsReportedWithReplayCommand() {
  // A network that loses every vote request can never elect a leader: the
  // liveness check after the faulty period must catch it.
  SimConfig config;
  config.seed = 3;
  config.nodes = 3;
  config.faultyPeriod = 500;
  config.livenessBound = 2000;
  Simulation sim(config);
  sim.setMessageFilter([](const copycat::raft::Message& m) {
    return m.type == copycat::raft::MessageType::Vote ||
           m.type == copycat::raft::MessageType::PreVote;
  });
  QVERIFY(!sim.runScenario());
  QVERIFY(!sim.ok());
  QVERIFY2(sim.violation().find("liveness") != std::string::npos, sim.violation().c_str());
  const std::string report = sim.report();
  QVERIFY2(report.find(config.replayCommand()) != std::string::npos, report.c_str());
  QVERIFY(report.find("--seed 3") != std::string::npos);
  QVERIFY(!sim.recentEvents().empty());
  // No safety invariant was involved: no leader ever existed.
  QVERIFY(!sim.leader().has_value());
}

void SimSelfTest::sweepReportsFailingSeeds() {
  // With no time at all to recover, every seed fails liveness; the sweep must
  // return each of them with its report.
  SimConfig base;
  base.faultyPeriod = 200;
  base.livenessBound = 0;
  const auto failures = copycat::sim::sweep(5, 7, base);
  QCOMPARE(failures.size(), std::size_t{3});
  for (std::size_t i = 0; i < failures.size(); ++i) {
    QCOMPARE(failures[i].seed, std::uint64_t{5 + i});
    QVERIFY(!failures[i].ok);
    QVERIFY(failures[i].report.find("--seed " + std::to_string(5 + i)) != std::string::npos);
  }
}

void SimSelfTest::namedMixesAndSeedDerivedConfigs() {
  const auto names = FaultMix::names();
  QVERIFY(names.size() >= 7);
  for (const char* required :
       {"calm", "lossy", "reorder", "partitions", "crashes", "slowdisk", "chaos"}) {
    QVERIFY2(std::find(names.begin(), names.end(), required) != names.end(), required);
  }
  for (const std::string& name : names) QVERIFY2(FaultMix::named(name).has_value(), name.c_str());
  QVERIFY(!FaultMix::named("no such mix").has_value());
  QCOMPARE(FaultMix::named("calm")->dropRate, 0.0);
  QVERIFY(FaultMix::named("lossy")->dropRate > 0);
  QVERIFY(FaultMix::named("crashes")->crashesPerSecond > 0);
  QVERIFY(FaultMix::named("partitions")->partitionsPerSecond > 0);
  // Consecutive seeds cycle through every mix.
  std::map<std::string, int> seen;
  for (std::uint64_t seed = 100; seed < 100 + names.size(); ++seed) {
    ++seen[copycat::sim::sweepConfig(seed, SimConfig{}).mixName];
  }
  QCOMPARE(seen.size(), names.size());
  QCOMPARE(copycat::sim::sweepConfig(42, SimConfig{}, "lossy").mixName, std::string("lossy"));
  QCOMPARE(copycat::sim::sweepConfig(42, SimConfig{}).seed, std::uint64_t{42});
}

namespace {

bool parseRange(const std::string& text, SeedRange& range) {
  const std::size_t dash = text.find('-');
  char* end = nullptr;
  range.first = std::strtoull(text.c_str(), &end, 10);
  if (dash == std::string::npos) {
    range.last = range.first;
    return *end == '\0' && range.first > 0;
  }
  if (end != text.c_str() + dash) return false;
  range.last = std::strtoull(text.c_str() + dash + 1, &end, 10);
  return *end == '\0' && range.first > 0 && range.first <= range.last;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<char*> qtArgs{argv[0]};
  bool haveRange = false;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--seeds" && i + 1 < argc) {
      if (!parseRange(argv[++i], g_range)) {
        std::fprintf(stderr, "bad --seeds %s (expected FIRST-LAST, seeds from 1)\n", argv[i]);
        return 2;
      }
      haveRange = true;
    } else if (arg == "--disk") {
      g_range.disk = true;
    } else if (arg == "--mix" && i + 1 < argc) {
      g_range.mix = argv[++i];
      if (!FaultMix::named(g_range.mix)) {
        std::fprintf(stderr, "unknown --mix %s\n", g_range.mix.c_str());
        return 2;
      }
    } else {
      qtArgs.push_back(argv[i]);
    }
  }
  const int qtArgc = static_cast<int>(qtArgs.size());
  if (haveRange) {
    SimSweepTest test;
    return QTest::qExec(&test, qtArgc, qtArgs.data());
  }
  SimSelfTest test;
  return QTest::qExec(&test, qtArgc, qtArgs.data());
}

#include "sim_sweep_test.moc"
