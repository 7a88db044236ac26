// copycat-demo: the headless demo behind `make run` until the Lab GUI exists.
// A simulated 5-node cluster elects a leader, commits values, loses its
// leader to a crash, re-elects, and brings the crashed node back; every
// election, vote, commit and fault is printed as it happens.

#include <chrono>
#include <cstdio>
#include <thread>

#include <QCommandLineParser>
#include <QCoreApplication>

#include "engine/sim/simulation.h"

using copycat::raft::CoreEvent;
using copycat::sim::Millis;
using copycat::sim::SimConfig;
using copycat::sim::Simulation;

namespace {

/// Prints simulator events, pacing virtual time against the wall clock.
class Narrator {
 public:
  explicit Narrator(double speed) : m_speed(speed), m_start(std::chrono::steady_clock::now()) {}

  void say(Millis at, const std::string& line) {
    pace(at);
    std::printf("%7.3fs  %s\n", static_cast<double>(at) / 1000.0, line.c_str());
    std::fflush(stdout);
  }

  void onEvent(Millis at, const std::string& line, const CoreEvent* event) {
    if (event == nullptr) {
      say(at, line);
      return;
    }
    switch (event->kind) {
      case CoreEvent::Kind::RoleChanged:
      case CoreEvent::Kind::VoteCast:
      case CoreEvent::Kind::LeaderTransfer:
        say(at, line);
        break;
      case CoreEvent::Kind::CommitAdvanced:
        if (event->role == copycat::raft::Role::Leader) say(at, line);
        break;
      default:
        break;
    }
  }

 private:
  void pace(Millis at) {
    if (m_speed <= 0) return;
    const auto due = m_start + std::chrono::microseconds(static_cast<long long>(
                                   static_cast<double>(at) * 1000.0 / m_speed));
    std::this_thread::sleep_until(due);
  }

  double m_speed;
  std::chrono::steady_clock::time_point m_start;
};

}  // namespace

int main(int argc, char* argv[]) {
  QCoreApplication app(argc, argv);
  QCoreApplication::setApplicationName("copycat-demo");
  QCommandLineParser parser;
  parser.setApplicationDescription(
      "A simulated 5-node Copycat cluster: election, replication, a leader crash and the "
      "re-election, printed as they happen.");
  parser.addHelpOption();
  parser.addOptions({
      {"speed", "Virtual seconds per real second; 0 runs as fast as possible (default 0.3).", "X",
       "0.3"},
      {"seed", "Seed of the simulation (default 7).", "N", "7"},
  });
  parser.process(app);
  bool speedOk = false;
  bool seedOk = false;
  const double speed = parser.value("speed").toDouble(&speedOk);
  const qulonglong seed = parser.value("seed").toULongLong(&seedOk);
  if (!speedOk || speed < 0 || speed > 1000) {
    std::fprintf(stderr, "copycat-demo: --speed takes a number between 0 and 1000\n");
    return 2;
  }
  if (!seedOk) {
    std::fprintf(stderr, "copycat-demo: --seed takes a non-negative whole number\n");
    return 2;
  }

  SimConfig config;
  config.seed = seed;
  config.nodes = 5;
  config.faults.minDelay = 2;
  config.faults.maxDelay = 8;
  config.tickMillis = 20;
  Narrator narrator(speed);
  Simulation simulation(config);
  simulation.setObserver([&](Millis at, const std::string& line, const CoreEvent* event) {
    narrator.onEvent(at, line, event);
  });

  narrator.say(0, "five Copycat nodes start on a simulated network; election timeout 200-400 ms");
  const auto firstLeader = simulation.waitForLeader(5000);
  if (!firstLeader) {
    std::fprintf(stderr, "copycat-demo: no leader was elected\n");
    return 1;
  }
  const auto firstTerm = simulation.status(*firstLeader).term;
  narrator.say(simulation.now(),
               "=> n" + std::to_string(*firstLeader) + " leads term " + std::to_string(firstTerm));
  for (int i = 1; i <= 3; ++i) {
    const std::string value = "x=" + std::to_string(i);
    const auto index = simulation.commitValue(value, 3000);
    if (!index) {
      std::fprintf(stderr, "copycat-demo: %s did not commit\n", value.c_str());
      return 1;
    }
    narrator.say(simulation.now(), "=> " + value + " committed at index " + std::to_string(*index) +
                                       " on a majority");
  }

  const Millis crashAt = simulation.now();
  narrator.say(crashAt, "=> killing the leader n" + std::to_string(*firstLeader));
  simulation.crash(*firstLeader);
  const auto secondLeader = simulation.waitForLeader(5000);
  if (!secondLeader || *secondLeader == *firstLeader) {
    std::fprintf(stderr, "copycat-demo: no new leader after the crash\n");
    return 1;
  }
  const auto secondTerm = simulation.status(*secondLeader).term;
  narrator.say(simulation.now(), "=> n" + std::to_string(*secondLeader) + " re-elected in term " +
                                     std::to_string(secondTerm) + ", " +
                                     std::to_string(simulation.now() - crashAt) +
                                     " ms after the crash");
  for (int i = 4; i <= 5; ++i) {
    const std::string value = "x=" + std::to_string(i);
    const auto index = simulation.commitValue(value, 3000);
    if (!index) {
      std::fprintf(stderr, "copycat-demo: %s did not commit after the re-election\n",
                   value.c_str());
      return 1;
    }
    narrator.say(simulation.now(), "=> " + value + " committed at index " + std::to_string(*index));
  }

  narrator.say(simulation.now(),
               "=> restarting n" + std::to_string(*firstLeader) + " from its disk");
  simulation.restart(*firstLeader);
  const auto expected = simulation.appliedValues(*secondLeader);
  const bool caughtUp =
      simulation.runUntil([&] { return simulation.appliedValues(*firstLeader) == expected; }, 3000);
  const Millis caughtUpAt = simulation.now();
  simulation.runFor(200);

  std::string agreed;
  for (const std::string& value : expected) agreed += (agreed.empty() ? "" : " ") + value;
  if (!simulation.ok()) {
    std::fprintf(stderr, "copycat-demo: %s\n", simulation.report().c_str());
    return 1;
  }
  if (!caughtUp) {
    std::fprintf(stderr, "copycat-demo: the restarted node did not catch up\n");
    return 1;
  }
  narrator.say(caughtUpAt,
               "=> n" + std::to_string(*firstLeader) + " caught up; every node applied: " + agreed);
  std::printf(
      "demo finished: leader n%llu (term %llu) crashed, n%llu re-elected (term %llu), "
      "no invariant violated\n",
      static_cast<unsigned long long>(*firstLeader), static_cast<unsigned long long>(firstTerm),
      static_cast<unsigned long long>(*secondLeader), static_cast<unsigned long long>(secondTerm));
  return 0;
}
