// copycat-sim: runs the deterministic simulator from the command line: one
// seed with its trace (to replay a failure), or a sweep/soak over a range.

#include <atomic>
#include <chrono>
#include <cstdio>
#include <mutex>
#include <thread>

#include <QCommandLineParser>
#include <QCoreApplication>

#include "engine/sim/simulation.h"

using copycat::sim::FaultMix;
using copycat::sim::SimConfig;
using copycat::sim::Simulation;

namespace {

int usageError(const QString& message) {
  std::fprintf(stderr, "copycat-sim: %s\n", qPrintable(message));
  return 2;
}

bool parseNumber(const QCommandLineParser& parser, const QString& name, qulonglong& out) {
  if (!parser.isSet(name)) return true;
  bool ok = false;
  out = parser.value(name).toULongLong(&ok);
  return ok;
}

}  // namespace

int main(int argc, char* argv[]) {
  QCoreApplication app(argc, argv);
  QCoreApplication::setApplicationName("copycat-sim");
  QCommandLineParser parser;
  parser.setApplicationDescription(
      "Runs Copycat's Raft core in the deterministic simulator and checks its invariants.\n"
      "One seed: copycat-sim --seed 42 --trace\n"
      "A soak:   copycat-sim --first 1 --last 1000000 --jobs 2");
  parser.addHelpOption();
  parser.addOptions({
      {"seed", "Run one seed and print its report.", "N"},
      {"first", "First seed of a sweep.", "N"},
      {"last", "Last seed of a sweep.", "N"},
      {"jobs", "Threads for a sweep (default 1).", "N", "1"},
      {"nodes", "Cluster size 1..9 (default: derived from the seed).", "N"},
      {"mix",
       "Fault mix: " + QString::fromStdString([] {
         std::string all;
         for (const std::string& name : FaultMix::names()) all += (all.empty() ? "" : ", ") + name;
         return all;
       }()) +
           " (default: derived from the seed).",
       "NAME"},
      {"snapshot-every", "Snapshot every N applied entries, 0 never (default: from the seed).",
       "N"},
      {"faulty-ms", "Virtual milliseconds of injected faults (default 3000).", "MS"},
      {"proposals-per-second", "Client proposals per virtual second (default 50).", "N"},
      {"no-pre-vote", "Disable pre-vote."},
      {"no-check-quorum", "Disable check-quorum (and with it leader leases)."},
      {"disk", "Disk-backed mode: real files, crashes lose what was not fsynced."},
      {"trace", "Print the last events even when the seed passes."},
  });
  parser.process(app);

  qulonglong seed = 0, first = 0, last = 0, jobs = 1, nodes = 0, snapshotEvery = 0, faulty = 0,
             rate = 0;
  if (!parseNumber(parser, "seed", seed) || !parseNumber(parser, "first", first) ||
      !parseNumber(parser, "last", last) || !parseNumber(parser, "jobs", jobs) ||
      !parseNumber(parser, "nodes", nodes) ||
      !parseNumber(parser, "snapshot-every", snapshotEvery) ||
      !parseNumber(parser, "faulty-ms", faulty) ||
      !parseNumber(parser, "proposals-per-second", rate)) {
    return usageError("numeric options take a non-negative whole number");
  }
  const std::string mixName = parser.value("mix").toStdString();
  if (!mixName.empty() && !FaultMix::named(mixName)) {
    return usageError("unknown --mix '" + parser.value("mix") + "'");
  }
  if (parser.isSet("nodes") && (nodes < 1 || nodes > 9)) {
    return usageError("--nodes must be between 1 and 9");
  }
  const bool single = parser.isSet("seed");
  const bool range = parser.isSet("first") || parser.isSet("last");
  if (single == range) return usageError("give either --seed N or --first A --last B");
  if (range && (!parser.isSet("first") || !parser.isSet("last") || first > last)) {
    return usageError("a sweep needs --first A --last B with A <= B");
  }
  if (jobs < 1 || jobs > 64) return usageError("--jobs must be between 1 and 64");

  auto configFor = [&](std::uint64_t s) {
    SimConfig config = copycat::sim::sweepConfig(s, SimConfig{}, mixName);
    if (parser.isSet("nodes")) config.nodes = static_cast<int>(nodes);
    if (parser.isSet("snapshot-every")) config.snapshotEvery = snapshotEvery;
    if (parser.isSet("faulty-ms")) config.faultyPeriod = static_cast<copycat::sim::Millis>(faulty);
    if (parser.isSet("proposals-per-second")) config.proposalsPerSecond = static_cast<double>(rate);
    config.preVote = !parser.isSet("no-pre-vote");
    config.checkQuorum = !parser.isSet("no-check-quorum");
    config.diskBacked = parser.isSet("disk");
    return config;
  };

  if (single) {
    Simulation simulation(configFor(seed));
    const bool ok = simulation.runScenario();
    if (!ok || parser.isSet("trace")) std::printf("%s", simulation.report().c_str());
    std::printf("seed %llu: %s (%llu steps, %llu messages, %lld virtual ms)\n", seed,
                ok ? "ok" : "FAILED", static_cast<unsigned long long>(simulation.stepsRun()),
                static_cast<unsigned long long>(simulation.messagesDelivered()),
                static_cast<long long>(simulation.now()));
    return ok ? 0 : 1;
  }

  std::atomic<std::uint64_t> nextSeed{first};
  std::atomic<std::uint64_t> done{0};
  std::atomic<std::uint64_t> failed{0};
  std::mutex printing;
  const auto start = std::chrono::steady_clock::now();
  auto worker = [&] {
    while (true) {
      const std::uint64_t s = nextSeed.fetch_add(1);
      if (s > last) return;
      Simulation simulation(configFor(s));
      if (!simulation.runScenario()) {
        ++failed;
        std::lock_guard lock(printing);
        std::printf("seed %llu FAILED\n%s\n", static_cast<unsigned long long>(s),
                    simulation.report().c_str());
      }
      const std::uint64_t count = ++done;
      if (count % 1000 == 0) {
        std::lock_guard lock(printing);
        const double seconds =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        std::fprintf(stderr, "%llu seeds, %llu failed, %.0f seeds/s\n",
                     static_cast<unsigned long long>(count),
                     static_cast<unsigned long long>(failed.load()), count / seconds);
      }
    }
  };
  std::vector<std::thread> threads;
  for (qulonglong i = 0; i < jobs; ++i) threads.emplace_back(worker);
  for (std::thread& thread : threads) thread.join();
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("%llu seeds (%llu..%llu), %llu failed, %.1f s, %.0f seeds/s\n",
              static_cast<unsigned long long>(done.load()), first, last,
              static_cast<unsigned long long>(failed.load()), seconds, done.load() / seconds);
  return failed == 0 ? 0 : 1;
}
