#include "bench/copycat_bench/scenarios.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <optional>
#include <thread>

#include <QCoreApplication>
#include <QDir>
#include <QJsonArray>

#include "bench/copycat_bench/cluster.h"
#include "bench/copycat_bench/load.h"
#include "bench/copycat_bench/physical.h"
#include "bench/copycat_bench/stats.h"
#include "engine/client/client.h"
#include "engine/kv/map_state_machine.h"
#include "engine/storage/disk_storage.h"

namespace copycat::bench {

std::atomic<bool> g_interrupted{false};

namespace {

using namespace std::chrono_literals;
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

double secondsSince(std::int64_t startNs) { return static_cast<double>(nowNs() - startNs) / 1e9; }

void checkInterrupted() {
  if (g_interrupted.load()) throw Interrupted();
}

/// Waits `ms` while the main thread's events run.
void pump(int ms) {
  const std::int64_t end = nowNs() + std::int64_t{ms} * 1000000;
  while (nowNs() < end) {
    QCoreApplication::processEvents(QEventLoop::AllEvents, 5);
    std::this_thread::sleep_for(std::chrono::milliseconds(std::min(ms, 5)));
  }
}

QString storageName(const Options& o) {
  return o.disk ? QStringLiteral("disk") : QStringLiteral("memory");
}

std::unique_ptr<Cluster> startCluster(RunContext& context, int nodes, std::uint64_t snapshotEntries,
                                      const QString& name) {
  ClusterConfig config;
  config.nodes = nodes;
  config.disk = context.options.disk;
  config.root = QDir(context.root).filePath(name);
  config.snapshotEntries = snapshotEntries;
  config.copycatd = context.copycatd;
  QDir().mkpath(config.root);
  std::unique_ptr<Cluster> cluster = Cluster::create(context.options.launcher, config);
  cluster->start();
  return cluster;
}

/// The machine's ceiling, measured once per run before the first scenario.
void ensurePhysical(RunContext& context, double seconds) {
  if (context.physicalMeasured) return;
  std::fprintf(stderr, "measuring this machine's ceiling (%.0f s)...\n", seconds);
  context.reporter.setPhysical(measurePhysical(context.root, seconds));
  context.physicalMeasured = true;
}

/// The figures of one measured point.
struct Point {
  double seconds = 0;
  std::uint64_t ops = 0;
  std::uint64_t errors = 0;
  double opsPerSec = 0;
  LatencySummary latency;
  double serverCpu = 0;  // cores
  double benchCpu = 0;   // cores (processes launcher: this process alone)
  double syncsPerSec = kNaN;
  double entriesPerSync = kNaN;
  double entriesPerBatch = kNaN;
  std::uint64_t unfinished = 0;
};

Point runPoint(Cluster& cluster, const LoadSpec& spec, double warmup, double duration,
               const QString& label) {
  LoadDriver driver(cluster.liveAddresses(), spec);
  QString error;
  if (!driver.connect(&error)) throw std::runtime_error(error.toStdString());
  Progress progress(label);
  const std::int64_t start = nowNs();
  const std::int64_t from = start + static_cast<std::int64_t>(warmup * 1e9);
  const std::int64_t to = from + static_cast<std::int64_t>(duration * 1e9);
  driver.setWindow(from, to);
  bool sampled = false;
  double cpu0 = 0, bench0 = 0;
  std::optional<StorageTotals> storage0;
  std::uint64_t completed0 = 0;
  driver.begin();
  const bool open = spec.rate > 0;
  for (std::int64_t now = nowNs(); now < to; now = nowNs()) {
    if (g_interrupted.load()) break;
    driver.tick();
    if (!sampled && now >= from) {
      sampled = true;
      cpu0 = cluster.serverCpuSeconds();
      bench0 = selfCpuSeconds();
      storage0 = cluster.storageTotals();
      completed0 = driver.completed();
    }
    const double measuring = sampled ? static_cast<double>(now - from) / 1e9 : 0;
    progress.update(
        static_cast<double>(now - start) / 1e9, warmup + duration,
        sampled && measuring > 0.2
            ? QStringLiteral("%1 ops/s (measuring)")
                  .arg(grouped(static_cast<double>(driver.completed() - completed0) / measuring))
            : QStringLiteral("%1 ops (warm-up)")
                  .arg(grouped(static_cast<double>(driver.completed()))));
    QCoreApplication::processEvents(QEventLoop::AllEvents, 1);
    std::this_thread::sleep_for(open ? std::chrono::microseconds(500)
                                     : std::chrono::microseconds(20000));
  }
  const double wall = static_cast<double>(nowNs() - from) / 1e9;
  const double cpu1 = cluster.serverCpuSeconds();
  const double bench1 = selfCpuSeconds();
  const std::optional<StorageTotals> storage1 = cluster.storageTotals();
  progress.done();
  driver.finish();
  checkInterrupted();

  Point p;
  p.seconds = duration;
  p.ops = driver.windowOps();
  p.errors = driver.windowErrors();
  p.opsPerSec = static_cast<double>(p.ops) / duration;
  std::vector<std::int64_t> latencies = driver.windowLatencies();
  p.latency = summarize(latencies);
  p.serverCpu = (cpu1 - cpu0) / wall;
  p.benchCpu = (bench1 - bench0) / wall;
  if (storage0 && storage1) {
    const auto syncs = static_cast<double>(storage1->syncs - storage0->syncs);
    const auto batches = static_cast<double>(storage1->batches - storage0->batches);
    const auto entries = static_cast<double>(storage1->entries - storage0->entries);
    p.syncsPerSec = syncs / wall;
    p.entriesPerSync = syncs > 0 ? entries / syncs : kNaN;
    p.entriesPerBatch = batches > 0 ? entries / batches : kNaN;
  }
  p.unfinished = driver.outstandingAtFinish();
  return p;
}

QJsonObject pointJson(const RunContext& context, const QString& scenario, const LoadSpec& spec,
                      int nodes, const Point& p) {
  const PhysicalFigures& physical = context.reporter.physical();
  const bool processes = context.options.launcher == Launcher::Processes;
  QJsonObject cpu{{QStringLiteral("servers_cores"), p.serverCpu},
                  {QStringLiteral("measured"),
                   processes ? QStringLiteral("sum of the copycatd processes' /proc/<pid>/stat; "
                                              "bench_cores: copycat-bench itself")
                             : QStringLiteral("getrusage of the whole process: servers, clients "
                                              "and the benchmark together")}};
  if (processes) cpu.insert(QStringLiteral("bench_cores"), p.benchCpu);
  QJsonObject ratios{
      {QStringLiteral("ops_per_raw_fdatasync"), p.opsPerSec / physical.fdatasyncPerSec},
      {QStringLiteral("p50_over_loopback_rtt"), p.latency.p50Ms * 1000 / physical.loopbackRttUs},
      {QStringLiteral("p99_over_loopback_rtt"), p.latency.p99Ms * 1000 / physical.loopbackRttUs}};
  QJsonObject result{
      {QStringLiteral("scenario"), scenario},
      {QStringLiteral("nodes"), nodes},
      {QStringLiteral("clients"), spec.clients},
      {QStringLiteral("client_threads"), spec.clientThreads},
      {QStringLiteral("rate"), spec.rate},
      {QStringLiteral("loop"), spec.rate > 0 ? QStringLiteral("open") : QStringLiteral("closed")},
      {QStringLiteral("value_bytes"), spec.valueBytes},
      {QStringLiteral("read_ratio"), spec.readRatio},
      {QStringLiteral("consistency"), consistencyName(spec.consistency)},
      {QStringLiteral("keys"), spec.keys},
      {QStringLiteral("duration_s"), p.seconds},
      {QStringLiteral("warmup_s"), context.options.warmup},
      {QStringLiteral("ops"), static_cast<qint64>(p.ops)},
      {QStringLiteral("errors"), static_cast<qint64>(p.errors)},
      {QStringLiteral("unfinished_at_end"), static_cast<qint64>(p.unfinished)},
      {QStringLiteral("ops_per_s"), p.opsPerSec},
      {QStringLiteral("latency_ms"), latencyJson(p.latency)},
      {QStringLiteral("cpu"), cpu},
      {QStringLiteral("fsyncs_per_s"),
       std::isnan(p.syncsPerSec) ? QJsonValue(QStringLiteral("n/a")) : QJsonValue(p.syncsPerSec)},
      {QStringLiteral("entries_per_fsync"), std::isnan(p.entriesPerSync)
                                                ? QJsonValue(QStringLiteral("n/a"))
                                                : QJsonValue(p.entriesPerSync)},
      {QStringLiteral("entries_per_persist_batch"), std::isnan(p.entriesPerBatch)
                                                        ? QJsonValue(QStringLiteral("n/a"))
                                                        : QJsonValue(p.entriesPerBatch)},
      {QStringLiteral("ratios"), ratios}};
  return result;
}

QStringList pointHeaders(const QString& first) {
  return {first,
          QStringLiteral("ops/s"),
          QStringLiteral("p50 ms"),
          QStringLiteral("p90 ms"),
          QStringLiteral("p99 ms"),
          QStringLiteral("p99.9 ms"),
          QStringLiteral("max ms"),
          QStringLiteral("errors"),
          QStringLiteral("CPU cores"),
          QStringLiteral("fsync/s"),
          QStringLiteral("entries/fsync"),
          QStringLiteral("ops/raw fsync"),
          QStringLiteral("p50/RTT")};
}

QStringList pointRow(const QString& first, const RunContext& context, const Point& p) {
  const PhysicalFigures& physical = context.reporter.physical();
  QString cpu = fixed(p.serverCpu, 2);
  if (context.options.launcher == Launcher::Processes)
    cpu += QStringLiteral(" +%1").arg(fixed(p.benchCpu, 2));
  return {first,
          grouped(p.opsPerSec),
          fixed(p.latency.p50Ms, 2),
          fixed(p.latency.p90Ms, 2),
          fixed(p.latency.p99Ms, 2),
          fixed(p.latency.p999Ms, 2),
          fixed(p.latency.maxMs, 2),
          QString::number(p.errors),
          cpu,
          std::isnan(p.syncsPerSec) ? QStringLiteral("n/a") : grouped(p.syncsPerSec),
          std::isnan(p.entriesPerSync) ? QStringLiteral("n/a") : fixed(p.entriesPerSync, 1),
          fixed(p.opsPerSec / physical.fdatasyncPerSec, 2),
          fixed(p.latency.p50Ms * 1000 / physical.loopbackRttUs, 0)};
}

void addPointNotes(Table& table, const RunContext& context) {
  const PhysicalFigures& physical = context.reporter.physical();
  table.addNote(
      QStringLiteral("ratios against this machine: raw fdatasync %1/s of 4 KiB appends (%2; "
                     "three writers back to back %3/s in all), loopback RTT %4 us")
          .arg(grouped(physical.fdatasyncPerSec), physical.filesystem,
               grouped(physical.concurrentSyncsPerSec), fixed(physical.loopbackRttUs, 1)));
  if (context.options.launcher == Launcher::Processes) {
    table.addNote(
        QStringLiteral("CPU: copycatd processes + copycat-bench (cores); fsync/s and "
                       "entries/fsync: the storage counters in each copycatd's status reply "
                       "(file fdatasync + directory fsync; entries appended on every replica)"));
  } else {
    table.addNote(
        QStringLiteral("CPU: the whole process (servers, clients, benchmark) in cores; fsync/s and "
                       "entries/fsync: all servers' Server::storageCounters() (file fdatasync + "
                       "directory fsync; entries appended on every replica)"));
  }
}

LoadSpec baseSpec(const Options& o, int clients) {
  LoadSpec spec;
  spec.clients = clients;
  spec.rate = o.rate;
  spec.valueBytes = o.valueBytes;
  spec.readRatio = o.readRatio;
  spec.consistency = o.consistency;
  spec.keys = o.keys;
  spec.clientThreads = o.clientThreads;
  return spec;
}

/// Writes keys k0..k(count-1) with `clients` closed-loop clients.
void fill(Cluster& cluster, std::uint64_t count, int clients, int valueBytes,
          const QString& label) {
  LoadSpec spec;
  spec.clients = clients;
  spec.valueBytes = valueBytes;
  spec.totalOps = count;
  LoadDriver driver(cluster.liveAddresses(), spec);
  QString error;
  if (!driver.connect(&error)) throw std::runtime_error(error.toStdString());
  Progress progress(label);
  const std::int64_t start = nowNs();
  driver.begin();
  while (!driver.fillDone()) {
    checkInterrupted();
    const double elapsed = secondsSince(start);
    progress.update(
        elapsed, 0,
        QStringLiteral("%1 of %2 writes, %3/s, %4 errors")
            .arg(grouped(static_cast<double>(driver.completed())),
                 grouped(static_cast<double>(count)),
                 grouped(static_cast<double>(driver.completed()) / std::max(elapsed, 0.001)))
            .arg(driver.failed()));
    if (elapsed > 3600) throw std::runtime_error("the fill did not finish within an hour");
    pump(50);
  }
  progress.done();
  driver.finish();
  std::fprintf(stderr, "%s: %s writes in %.1f s\n", qPrintable(label),
               qPrintable(grouped(static_cast<double>(count))), secondsSince(start));
}

// ---------------------------------------------------------------- scenarios

void physicalScenario(RunContext& context) {
  context.physicalMeasured = false;
  ensurePhysical(context, 6);
  const PhysicalFigures& f = context.reporter.physical();
  Table table(QStringLiteral("physical: this machine's ceiling"),
              {QStringLiteral("what"), QStringLiteral("value")});
  table.addRow(
      {QStringLiteral("fdatasync of 4 KiB appends (%1, %2)").arg(f.filesystem, context.root),
       QStringLiteral("%1 /s").arg(grouped(f.fdatasyncPerSec))});
  table.addRow({QStringLiteral("sequential 1 MiB appends + fdatasync"),
                QStringLiteral("%1 MB/s").arg(fixed(f.diskMBps, 1))});
  table.addRow({QStringLiteral("fdatasync latency p50"),
                QStringLiteral("%1 ms").arg(fixed(f.fdatasyncP50Ms, 2))});
  table.addRow({QStringLiteral("3 writers syncing at once: 2nd done, p50 (a 3-node commit)"),
                QStringLiteral("%1 ms").arg(fixed(f.quorumSyncP50Ms, 2))});
  table.addRow({QStringLiteral("2 writers syncing at once: both done, p50 (the followers' copies)"),
                QStringLiteral("%1 ms").arg(fixed(f.pairSyncP50Ms, 2))});
  table.addRow({QStringLiteral("3 writers syncing back to back, in all"),
                QStringLiteral("%1 /s").arg(grouped(f.concurrentSyncsPerSec))});
  table.addRow({QStringLiteral("loopback TCP round trip, 256 B, p50"),
                QStringLiteral("%1 us").arg(fixed(f.loopbackRttUs, 1))});
  table.addRow({QStringLiteral("loopback TCP round trip, 256 B, p99"),
                QStringLiteral("%1 us").arg(fixed(f.loopbackRttP99Us, 1))});
  table.addRow({QStringLiteral("loopback TCP stream, 64 KiB writes"),
                QStringLiteral("%1 MB/s").arg(grouped(f.loopbackMBps))});
  table.print();
  context.reporter.add({{QStringLiteral("scenario"), QStringLiteral("physical")},
                        {QStringLiteral("data_dir"), context.root}});
}

void throughputScenario(RunContext& context) {
  const Options& o = context.options;
  ensurePhysical(context, 2);
  const std::vector<int> clients = o.clientsSet ? o.clients : std::vector<int>{1, 16, 64, 100};
  auto cluster = startCluster(context, o.nodes, o.snapshotEntries ? o.snapshotEntries : 10000,
                              QStringLiteral("throughput"));
  Table table(QStringLiteral("throughput: %1 nodes, %2, %3 storage, %4 B values, read ratio %5%6")
                  .arg(o.nodes)
                  .arg(launcherName(o.launcher), storageName(o))
                  .arg(o.valueBytes)
                  .arg(o.readRatio)
                  .arg(o.rate > 0 ? QStringLiteral(", open loop %1 ops/s").arg(grouped(o.rate))
                                  : QStringLiteral(", closed loop")),
              pointHeaders(QStringLiteral("clients")));
  for (int count : clients) {
    const LoadSpec spec = baseSpec(o, count);
    const Point p = runPoint(*cluster, spec, o.warmup, o.duration,
                             QStringLiteral("throughput, %1 clients").arg(count));
    table.addRow(pointRow(QString::number(count), context, p));
    context.reporter.add(pointJson(context, QStringLiteral("throughput"), spec, o.nodes, p));
  }
  addPointNotes(table, context);
  table.print();
}

void readsScenario(RunContext& context) {
  const Options& o = context.options;
  ensurePhysical(context, 2);
  const int clients = o.clientsSet ? o.clients.front() : 16;
  auto cluster = startCluster(context, o.nodes, o.snapshotEntries ? o.snapshotEntries : 10000,
                              QStringLiteral("reads"));
  fill(*cluster, static_cast<std::uint64_t>(o.keys), 64, o.valueBytes,
       QStringLiteral("reads: filling the keys"));
  Table table(QStringLiteral("reads: %1 nodes, %2, %3 storage, %4 keys of %5 B")
                  .arg(o.nodes)
                  .arg(launcherName(o.launcher), storageName(o))
                  .arg(o.keys)
                  .arg(o.valueBytes),
              pointHeaders(QStringLiteral("consistency")));
  for (Consistency level :
       {Consistency::Linearizable, Consistency::LinearizableLease, Consistency::Sequential}) {
    LoadSpec spec = baseSpec(o, clients);
    spec.readRatio = 1;
    spec.consistency = level;
    const Point p = runPoint(*cluster, spec, o.warmup, o.duration,
                             QStringLiteral("reads, %1").arg(consistencyName(level)));
    table.addRow(pointRow(consistencyName(level), context, p));
    context.reporter.add(pointJson(context, QStringLiteral("reads"), spec, o.nodes, p));
  }
  addPointNotes(table, context);
  table.addNote(QStringLiteral("%1 closed-loop clients; sequential reads go to whichever server "
                               "the client is connected to (the leader)")
                    .arg(clients));
  table.print();
}

void failoverScenario(RunContext& context) {
  const Options& o = context.options;
  ensurePhysical(context, 2);
  auto cluster = startCluster(context, o.nodes, o.snapshotEntries ? o.snapshotEntries : 10000,
                              QStringLiteral("failover"));
  LoadSpec spec = baseSpec(o, o.clientsSet ? o.clients.front() : 4);
  spec.rate = o.rate > 0 ? o.rate : 200;
  spec.readRatio = 0;
  spec.recordEvents = true;
  LoadDriver driver(cluster->addresses(), spec);
  QString error;
  if (!driver.connect(&error)) throw std::runtime_error(error.toStdString());
  driver.begin();
  const auto run = [&](int ms) {
    const std::int64_t end = nowNs() + std::int64_t{ms} * 1000000;
    while (nowNs() < end) {
      checkInterrupted();
      driver.tick();
      QCoreApplication::processEvents(QEventLoop::AllEvents, 1);
      std::this_thread::sleep_for(std::chrono::microseconds(500));
    }
  };
  run(2000);
  std::vector<std::int64_t> killTimes;
  std::vector<double> electionMs;
  Progress progress(QStringLiteral("failover"));
  const std::int64_t start = nowNs();
  for (int k = 0; k < o.kills; ++k) {
    const int leader = cluster->leader(15s);
    if (leader < 0) throw std::runtime_error("no leader before kill " + std::to_string(k + 1));
    const std::int64_t killed = nowNs();
    cluster->kill(leader);
    killTimes.push_back(killed);
    double elected = kNaN;
    while (driver.lastOkSubmitNs() < killed) {
      checkInterrupted();
      if (std::isnan(elected)) {
        for (int i = 0; i < cluster->size(); ++i) {
          if (i == leader || !cluster->alive(i)) continue;
          const std::optional<NodeState> s = cluster->state(i);
          if (s && s->leader) elected = static_cast<double>(nowNs() - killed) / 1e6;
        }
      }
      if (secondsSince(killed) > 60)
        throw std::runtime_error("no write was acknowledged within 60 s of a kill");
      run(5);
    }
    electionMs.push_back(elected);
    progress.update(secondsSince(start), 0,
                    QStringLiteral("kill %1 of %2: write acknowledged %3 ms after the kill")
                        .arg(k + 1)
                        .arg(o.kills)
                        .arg(fixed(static_cast<double>(nowNs() - killed) / 1e6, 0)),
                    true);
    cluster->restart(leader);
    // Let the restarted server catch up before the next kill, keeping the writer running.
    const std::int64_t catchUpEnd = nowNs() + 30'000'000'000;
    bool caughtUp = false;
    while (!caughtUp && nowNs() < catchUpEnd) {
      run(100);
      const int current = cluster->leader(1s);
      const std::optional<NodeState> lead = current >= 0 ? cluster->state(current) : std::nullopt;
      const std::optional<NodeState> mine = cluster->state(leader);
      caughtUp = lead && mine && mine->applied + 50 >= lead->commit;
    }
    if (!caughtUp) throw std::runtime_error("a restarted server did not catch up within 30 s");
    run(500);
  }
  progress.done();
  driver.finish();
  const std::vector<OpEvent> events = driver.events();
  std::vector<std::int64_t> recoveries;
  QJsonArray killsMs, electionsMs;
  for (std::size_t k = 0; k < killTimes.size(); ++k) {
    const std::int64_t killed = killTimes[k];
    for (const OpEvent& e : events) {
      if (e.ok && e.submitNs >= killed) {
        recoveries.push_back(e.doneNs - killed);
        killsMs << static_cast<double>(e.doneNs - killed) / 1e6;
        break;
      }
    }
    electionsMs << (std::isnan(electionMs[k]) ? QJsonValue(QJsonValue::Null)
                                              : QJsonValue(electionMs[k]));
  }
  const LatencySummary summary = summarize(recoveries);
  std::vector<std::int64_t> electedNs;
  for (double ms : electionMs) {
    if (!std::isnan(ms)) electedNs.push_back(static_cast<std::int64_t>(ms * 1e6));
  }
  const LatencySummary elected = summarize(electedNs);
  const PhysicalFigures& physical = context.reporter.physical();
  Table table(
      QStringLiteral("failover: %1 nodes, %2, %3 storage, writer %4 ops/s over %5 clients")
          .arg(o.nodes)
          .arg(launcherName(o.launcher), storageName(o), grouped(spec.rate))
          .arg(spec.clients),
      {QStringLiteral("kills"), QStringLiteral("p50 ms"), QStringLiteral("p99 ms"),
       QStringLiteral("max ms"), QStringLiteral("mean ms"), QStringLiteral("p50/election timeout"),
       QStringLiteral("new leader seen p50 ms"), QStringLiteral("max ms")});
  table.addRow({QString::number(summary.count), fixed(summary.p50Ms, 0), fixed(summary.p99Ms, 0),
                fixed(summary.maxMs, 0), fixed(summary.meanMs, 0), fixed(summary.p50Ms / 500, 2),
                fixed(elected.p50Ms, 0), fixed(elected.maxMs, 0)});
  table.addNote(
      QStringLiteral("new leader seen: when polling the survivors' status first showed a leader"));
  table.addNote(QStringLiteral("kill: %1").arg(cluster->killDescription()));
  table.addNote(QStringLiteral(
      "time from the kill to the first acknowledgement of a write submitted after it "
      "(the killed leader cannot have committed it); election timeout 500 ms"));
  QStringList perKill;
  for (const QJsonValue& v : killsMs) perKill << fixed(v.toDouble(), 0);
  table.addNote(QStringLiteral("per kill (ms): %1").arg(perKill.join(QStringLiteral(", "))));
  table.addNote(QStringLiteral("ratio: p50 = %1 x raw fdatasync latency, %2 x loopback RTT")
                    .arg(fixed(summary.p50Ms / physical.fdatasyncP50Ms, 0),
                         fixed(summary.p50Ms * 1000 / physical.loopbackRttUs, 0)));
  table.print();
  context.reporter.add(
      {{QStringLiteral("scenario"), QStringLiteral("failover")},
       {QStringLiteral("nodes"), o.nodes},
       {QStringLiteral("kills"), o.kills},
       {QStringLiteral("kill_method"), cluster->killDescription()},
       {QStringLiteral("writer_rate"), spec.rate},
       {QStringLiteral("clients"), spec.clients},
       {QStringLiteral("kills_ms"), killsMs},
       {QStringLiteral("new_leader_seen_ms"), electionsMs},
       {QStringLiteral("failover_ms"), latencyJson(summary)},
       {QStringLiteral("ratios"), QJsonObject{{QStringLiteral("p50_over_loopback_rtt"),
                                               summary.p50Ms * 1000 / physical.loopbackRttUs},
                                              {QStringLiteral("p50_over_fdatasync_latency"),
                                               summary.p50Ms / physical.fdatasyncP50Ms}}}});
}

void recoveryScenario(RunContext& context) {
  const Options& o = context.options;
  if (!o.disk) throw std::runtime_error("recovery needs --storage disk");
  ensurePhysical(context, 2);
  const auto entries = static_cast<std::uint64_t>(o.entries);
  const int valueBytes = o.valueBytesSet ? o.valueBytes : 16;
  // One server, never snapshotting: the restart replays the whole log.
  auto cluster = startCluster(context, 1, 0, QStringLiteral("recovery"));
  const std::int64_t fillStart = nowNs();
  fill(*cluster, entries, o.clientsSet ? o.clients.front() : 128, valueBytes,
       QStringLiteral("recovery: writing the log"));
  const double fillSeconds = secondsSince(fillStart);
  const std::optional<NodeState> before = cluster->state(0);
  if (!before) throw std::runtime_error("the server stopped while writing the log");
  cluster->stop(0);

  // Opening the storage alone: index rebuild and checks.
  const std::int64_t openStart = nowNs();
  std::uint64_t opened = 0;
  {
    storage::StorageOptions options;
    options.level = storage::StorageLevel::Disk;
    options.directory = cluster->directory(0).toStdString();
    options.warn = [](const std::string&) {};
    std::unique_ptr<storage::PersistentStorage> storage = storage::openStorage(options);
    opened = storage->lastIndex();
  }
  const double openSeconds = secondsSince(openStart);

  const std::int64_t restartStart = nowNs();
  cluster->restart(0);
  const double startedSeconds = secondsSince(restartStart);
  double appliedSeconds = kNaN;
  for (;;) {
    checkInterrupted();
    const std::optional<NodeState> s = cluster->state(0);
    if (s && s->applied >= before->applied) {
      appliedSeconds = secondsSince(restartStart);
      break;
    }
    if (secondsSince(restartStart) > 600)
      throw std::runtime_error("the restarted server did not re-apply its log within 600 s");
    pump(10);
  }
  double serveSeconds = kNaN;
  {
    auto client = makeClient(cluster->addresses(), QStringLiteral("bench-recovery"), 60s);
    const auto reply = client->submit(kv::PutCommand("after-restart", "x")).result();
    if (!reply) throw std::runtime_error("no write after the restart: " + reply.error().message);
    serveSeconds = secondsSince(restartStart);
    client->close().waitForFinished();
  }
  Table table(QStringLiteral("recovery: 1 node (%1), %2 entries of %3 B values")
                  .arg(launcherName(o.launcher), grouped(static_cast<double>(before->lastIndex)))
                  .arg(valueBytes),
              {QStringLiteral("step"), QStringLiteral("seconds"), QStringLiteral("entries/s")});
  const auto last = static_cast<double>(before->lastIndex);
  table.addRow(
      {QStringLiteral("write the log (%1 clients)").arg(o.clientsSet ? o.clients.front() : 128),
       fixed(fillSeconds, 2), grouped(static_cast<double>(entries) / fillSeconds)});
  table.addRow({QStringLiteral("open the storage alone (openStorage)"), fixed(openSeconds, 3),
                grouped(static_cast<double>(opened) / openSeconds)});
  table.addRow({o.launcher == Launcher::InProcess
                    ? QStringLiteral("restart: Server::start() returned")
                    : QStringLiteral("restart: copycatd process started"),
                fixed(startedSeconds, 3), QStringLiteral("")});
  table.addRow({QStringLiteral("restart: log re-applied (applied >= %1)")
                    .arg(grouped(static_cast<double>(before->applied))),
                fixed(appliedSeconds, 3), grouped(last / appliedSeconds)});
  table.addRow({QStringLiteral("restart: first write acknowledged"), fixed(serveSeconds, 3),
                grouped(last / serveSeconds)});
  table.addNote(QStringLiteral(
      "the server never snapshots here (snapshot threshold 0), so the restart replays every entry; "
      "a restarted node waits one election timeout (500 ms) before it may vote or lead"));
  table.addNote(QStringLiteral("ratio: writing the log ran at %1 entries per raw fdatasync")
                    .arg(fixed(static_cast<double>(entries) / fillSeconds /
                                   context.reporter.physical().fdatasyncPerSec,
                               1)));
  table.print();
  context.reporter.add(
      {{QStringLiteral("scenario"), QStringLiteral("recovery")},
       {QStringLiteral("nodes"), 1},
       {QStringLiteral("entries"), static_cast<qint64>(before->lastIndex)},
       {QStringLiteral("value_bytes"), valueBytes},
       {QStringLiteral("fill_s"), fillSeconds},
       {QStringLiteral("fill_entries_per_s"), static_cast<double>(entries) / fillSeconds},
       {QStringLiteral("open_storage_s"), openSeconds},
       {QStringLiteral("open_entries_per_s"), static_cast<double>(opened) / openSeconds},
       {QStringLiteral("restart_started_s"), startedSeconds},
       {QStringLiteral("restart_applied_s"), appliedSeconds},
       {QStringLiteral("restart_first_write_s"), serveSeconds},
       {QStringLiteral("replay_entries_per_s"), last / appliedSeconds},
       {QStringLiteral("ratios"), QJsonObject{{QStringLiteral("fill_entries_per_raw_fdatasync"),
                                               static_cast<double>(entries) / fillSeconds /
                                                   context.reporter.physical().fdatasyncPerSec}}}});
}

void snapshotScenario(RunContext& context) {
  const Options& o = context.options;
  ensurePhysical(context, 2);
  const int valueBytes = o.valueBytesSet ? o.valueBytes : 64 * 1024;
  const std::uint64_t stateBytes = static_cast<std::uint64_t>(o.stateMb) << 20;
  const std::uint64_t count = (stateBytes + static_cast<std::uint64_t>(valueBytes) - 1) /
                              static_cast<std::uint64_t>(valueBytes);
  // Two snapshots during the fill (each writes the whole state), then padding
  // until one covers the fill.
  const std::uint64_t snapshotEvery =
      o.snapshotEntries ? o.snapshotEntries : std::max<std::uint64_t>(100, count / 2);
  auto cluster = startCluster(context, o.nodes, snapshotEvery, QStringLiteral("snapshot"));
  fill(*cluster, count, 16, valueBytes, QStringLiteral("snapshot: filling %1 MB").arg(o.stateMb));
  int leader = cluster->leader(15s);
  if (leader < 0) throw std::runtime_error("no leader after the fill");
  const std::uint64_t filled = cluster->state(leader).value_or(NodeState{}).applied;
  // The transfer is measured on a quiet cluster: every member has written its
  // own snapshot of the fill (three 100 MB writes to the same disk would
  // otherwise run during the catch-up).
  const auto everyMemberCovers = [&](std::uint64_t index) {
    for (int node = 0; node < o.nodes; ++node) {
      const std::optional<NodeState> s = cluster->state(node);
      if (!s || s->snapshotIndex < index) return false;
    }
    return true;
  };
  {
    auto client = makeClient(cluster->addresses(), QStringLiteral("bench-pad"));
    std::uint64_t pad = 0;
    const std::uint64_t coveredAt = (filled + snapshotEvery - 1) / snapshotEvery * snapshotEvery;
    const std::int64_t padStart = nowNs();
    for (;;) {
      checkInterrupted();
      leader = cluster->leader(15s);
      const std::optional<NodeState> s = leader >= 0 ? cluster->state(leader) : std::nullopt;
      if (s && everyMemberCovers(filled)) break;
      if (secondsSince(padStart) > 600)
        throw std::runtime_error("no snapshot covered the state within 600 s");
      // Past the snapshot threshold: wait for the snapshot being written
      // instead of padding on into the next one.
      if (s && s->applied >= coveredAt) {
        pump(20);
        continue;
      }
      std::vector<QFuture<Expected<std::optional<std::string>>>> writes;
      for (int i = 0; i < 64; ++i)
        writes.push_back(client->submit(kv::PutCommand("pad" + std::to_string(pad++ % 100), "p")));
      for (auto& w : writes) w.waitForFinished();
    }
    client->close().waitForFinished();
  }
  const std::optional<NodeState> lead = cluster->state(leader);
  if (!lead) throw std::runtime_error("the leader stopped");
  const std::uint64_t target = lead->applied;
  Progress progress(QStringLiteral("snapshot: a new server catches up"));
  const std::int64_t joinStart = nowNs();
  const int joiner = cluster->addJoiningNode();
  double caughtUp = kNaN;
  double running = kNaN;  // when the new server first answered a status request
  for (;;) {
    checkInterrupted();
    const std::optional<NodeState> s = cluster->state(joiner);
    if (s && std::isnan(running)) running = secondsSince(joinStart);
    progress.update(secondsSince(joinStart), 0,
                    QStringLiteral("applied %1 of %2").arg(s ? s->applied : 0).arg(target));
    if (s && s->applied >= target) {
      caughtUp = secondsSince(joinStart);
      break;
    }
    if (secondsSince(joinStart) > 600)
      throw std::runtime_error("the new server did not catch up within 600 s");
    pump(10);
  }
  progress.done();
  const double megabytes = static_cast<double>(count) * valueBytes / 1e6;
  Table table(
      QStringLiteral("snapshot: %1 nodes + 1 joining, %2, %3 storage")
          .arg(o.nodes)
          .arg(launcherName(o.launcher), storageName(o)),
      {QStringLiteral("state"), QStringLiteral("entries"), QStringLiteral("leader snapshot index"),
       QStringLiteral("catch-up s"), QStringLiteral("MB/s"), QStringLiteral("once running s"),
       QStringLiteral("MB/s"), QStringLiteral("vs disk MB/s"), QStringLiteral("vs loopback MB/s")});
  const double afterRunning = caughtUp - running;
  table.addRow(
      {QStringLiteral("%1 MB (%2 x %3 B)").arg(fixed(megabytes, 1)).arg(count).arg(valueBytes),
       grouped(static_cast<double>(target)), grouped(static_cast<double>(lead->snapshotIndex)),
       fixed(caughtUp, 2), fixed(megabytes / caughtUp, 1), fixed(afterRunning, 2),
       fixed(megabytes / afterRunning, 1),
       fixed(megabytes / caughtUp / context.reporter.physical().diskMBps, 2),
       fixed(megabytes / caughtUp / context.reporter.physical().loopbackMBps, 3)});
  table.addNote(
      QStringLiteral(
          "from starting the new server (join), once every member had written its snapshot of the "
          "fill, until its applied index reached the leader's (%1); snapshot every %2 entries")
          .arg(target)
          .arg(snapshotEvery));
  table.addNote(QStringLiteral("once running: from the new server's first status answer (%1 s "
                               "after its start), which leaves out its start-up")
                    .arg(fixed(running, 2)));
  table.print();
  context.reporter.add(
      {{QStringLiteral("scenario"), QStringLiteral("snapshot")},
       {QStringLiteral("nodes"), o.nodes},
       {QStringLiteral("state_mb"), megabytes},
       {QStringLiteral("value_bytes"), valueBytes},
       {QStringLiteral("keys"), static_cast<qint64>(count)},
       {QStringLiteral("snapshot_entries"), static_cast<qint64>(snapshotEvery)},
       {QStringLiteral("target_index"), static_cast<qint64>(target)},
       {QStringLiteral("leader_snapshot_index"), static_cast<qint64>(lead->snapshotIndex)},
       {QStringLiteral("catch_up_s"), caughtUp},
       {QStringLiteral("mb_per_s"), megabytes / caughtUp},
       {QStringLiteral("running_after_s"), running},
       {QStringLiteral("mb_per_s_once_running"), megabytes / afterRunning},
       {QStringLiteral("ratios"),
        QJsonObject{{QStringLiteral("mb_per_s_over_disk_sequential_mb_per_s"),
                     megabytes / caughtUp / context.reporter.physical().diskMBps},
                    {QStringLiteral("mb_per_s_over_loopback_mb_per_s"),
                     megabytes / caughtUp / context.reporter.physical().loopbackMBps}}}});
}

}  // namespace

void runScenario(const QString& scenario, RunContext& context) {
  if (scenario == QLatin1String("physical")) return physicalScenario(context);
  if (scenario == QLatin1String("throughput")) return throughputScenario(context);
  if (scenario == QLatin1String("reads")) return readsScenario(context);
  if (scenario == QLatin1String("failover")) return failoverScenario(context);
  if (scenario == QLatin1String("recovery")) return recoveryScenario(context);
  if (scenario == QLatin1String("snapshot")) return snapshotScenario(context);
  if (scenario == QLatin1String("all")) {
    for (const char* name :
         {"physical", "throughput", "reads", "failover", "recovery", "snapshot"}) {
      checkInterrupted();
      if (!context.options.disk && QLatin1String(name) == QLatin1String("recovery")) continue;
      runScenario(QString::fromLatin1(name), context);
    }
    return;
  }
  throw std::runtime_error("unknown scenario " + scenario.toStdString());
}

}  // namespace copycat::bench
