#include "bench/copycat_bench/options.h"

#include <cmath>

#include <QCommandLineParser>

namespace copycat::bench {

namespace {

const QStringList kScenarios = {QStringLiteral("physical"), QStringLiteral("throughput"),
                                QStringLiteral("failover"), QStringLiteral("recovery"),
                                QStringLiteral("snapshot"), QStringLiteral("reads"),
                                QStringLiteral("all"),      QStringLiteral("charts")};

/// Reads --name as an integer in [low, high] when it is set.
bool intOption(const QCommandLineParser& parser, const QString& name, std::int64_t low,
               std::int64_t high, std::int64_t* out, QString* error) {
  if (!parser.isSet(name)) return true;
  bool ok = false;
  const qlonglong value = parser.value(name).trimmed().toLongLong(&ok);
  if (!ok || value < low || value > high) {
    *error = QStringLiteral("--%1 needs an integer from %2 to %3, got '%4'")
                 .arg(name)
                 .arg(low)
                 .arg(high)
                 .arg(parser.value(name));
    return false;
  }
  *out = value;
  return true;
}

/// Reads --name as a number in [low, high] (lowOpen: > low) when it is set.
bool numberOption(const QCommandLineParser& parser, const QString& name, double low, double high,
                  bool lowOpen, double* out, QString* error) {
  if (!parser.isSet(name)) return true;
  bool ok = false;
  const double value = parser.value(name).trimmed().toDouble(&ok);
  if (!ok || !std::isfinite(value) || value < low || (lowOpen && value == low) || value > high) {
    *error = QStringLiteral("--%1 needs a number %2 %3 and at most %4, got '%5'")
                 .arg(name, lowOpen ? QStringLiteral("above") : QStringLiteral("from"))
                 .arg(low)
                 .arg(high)
                 .arg(parser.value(name));
    return false;
  }
  *out = value;
  return true;
}

}  // namespace

QString launcherName(Launcher launcher) {
  return launcher == Launcher::InProcess ? QStringLiteral("in-process")
                                         : QStringLiteral("processes");
}

QString consistencyName(Consistency consistency) {
  switch (consistency) {
    case Consistency::Linearizable:
      return QStringLiteral("linearizable");
    case Consistency::LinearizableLease:
      return QStringLiteral("lease");
    case Consistency::Sequential:
      return QStringLiteral("sequential");
  }
  return QStringLiteral("?");
}

ParseOutcome parseOptions(const QStringList& arguments, Options* options, QString* text) {
  QCommandLineParser parser;
  parser.setApplicationDescription(QStringLiteral(
      "Measures a Copycat cluster of the example map state machine on this machine.\n"
      "Scenarios:\n"
      "  physical    this machine's ceiling: fdatasync/s of 4 KiB appends in the data dir,\n"
      "              loopback TCP round trip and throughput\n"
      "  throughput  closed-loop writers (clients 1,16,64,100 by default), or --rate\n"
      "  failover    kill the leader --kills times under a writer; time to the next ack\n"
      "  recovery    restart a 1-node server holding --entries entries; open and replay time\n"
      "  snapshot    a new server joins and catches up --state-mb MB through a snapshot\n"
      "  reads       linearizable, lease and sequential reads/s with 16 clients\n"
      "  all         physical, then every scenario\n"
      "  charts      no run: draws the charts of saved JSON lines (--from, repeated), with\n"
      "              scripts/bench-etcd.sh's puts as an etcd series beside Copycat's\n"
      "Every result is also shown as a ratio to the physical figures. Exit status: 0 done,\n"
      "1 a run failed, 2 bad usage, 130 interrupted (everything is cleaned up)."));
  parser.addHelpOption();
  parser.addPositionalArgument(QStringLiteral("scenario"), kScenarios.join(QLatin1Char('|')));
  parser.addOptions({
      {QStringLiteral("launcher"),
       QStringLiteral("in-process (servers in this process, default) or processes (copycatd)."),
       QStringLiteral("in-process|processes"), QStringLiteral("in-process")},
      {QStringLiteral("copycatd"),
       QStringLiteral("Path of copycatd (default: found next to copycat-bench)."),
       QStringLiteral("PATH")},
      {QStringLiteral("nodes"), QStringLiteral("Servers in the cluster: 3 or 5 (default 3)."),
       QStringLiteral("N")},
      {QStringLiteral("storage"), QStringLiteral("disk (fdatasync, default) or memory."),
       QStringLiteral("disk|memory"), QStringLiteral("disk")},
      {QStringLiteral("data"),
       QStringLiteral("Directory under which the run's temporary directory is made (default: the "
                      "system temp dir). Removed at the end."),
       QStringLiteral("DIR")},
      {QStringLiteral("clients"),
       QStringLiteral("Clients (sessions), 1 to 256; a list such as 1,16,64 runs one point each."),
       QStringLiteral("N[,N...]")},
      {QStringLiteral("client-threads"),
       QStringLiteral("Event threads the clients share (default 2, one per core; 0: a thread "
                      "per client)."),
       QStringLiteral("N")},
      {QStringLiteral("rate"),
       QStringLiteral("Open loop: this many ops/s spread over the clients (latency from the "
                      "scheduled send time). Default: closed loop."),
       QStringLiteral("OPS")},
      {QStringLiteral("value-bytes"),
       QStringLiteral("Bytes per written value (default 256; recovery 16, snapshot "
                      "65536)."),
       QStringLiteral("N")},
      {QStringLiteral("read-ratio"), QStringLiteral("Fraction of reads, 0 to 1 (default 0)."),
       QStringLiteral("R")},
      {QStringLiteral("consistency"),
       QStringLiteral("Reads: linearizable (default), lease or sequential."),
       QStringLiteral("LEVEL"), QStringLiteral("linearizable")},
      {QStringLiteral("duration"), QStringLiteral("Measured seconds per point (default 10)."),
       QStringLiteral("S")},
      {QStringLiteral("warmup"),
       QStringLiteral("Unmeasured seconds before each point (default 1)."), QStringLiteral("S")},
      {QStringLiteral("keys"), QStringLiteral("Key space (default 10000)."), QStringLiteral("N")},
      {QStringLiteral("kills"), QStringLiteral("failover: leader kills (default 10)."),
       QStringLiteral("N")},
      {QStringLiteral("entries"), QStringLiteral("recovery: log entries (default 1000000)."),
       QStringLiteral("N")},
      {QStringLiteral("state-mb"), QStringLiteral("snapshot: MB of map state (default 100)."),
       QStringLiteral("MB")},
      {QStringLiteral("snapshot-entries"),
       QStringLiteral("Snapshot every N applied entries (default 10000; snapshot scenario: half "
                      "the fill, at least 100; recovery never)."),
       QStringLiteral("N")},
      {QStringLiteral("json"),
       QStringLiteral("Write one JSON object per result, one per line, to FILE (replaced)."),
       QStringLiteral("FILE")},
      {QStringLiteral("charts"),
       QStringLiteral("Directory of the PNG charts (default: the --json file's directory)."),
       QStringLiteral("DIR")},
      {QStringLiteral("from"),
       QStringLiteral("charts: a JSON lines file of copycat-bench --json or scripts/bench-etcd.sh "
                      "(repeat for several)."),
       QStringLiteral("FILE")},
      {QStringLiteral("verbose"), QStringLiteral("Show the servers' log messages.")},
  });
  if (!parser.parse(arguments)) {
    *text = parser.errorText();
    return ParseOutcome::Error;
  }
  if (parser.isSet(QStringLiteral("help"))) {
    *text = parser.helpText();
    return ParseOutcome::Help;
  }
  const QStringList positional = parser.positionalArguments();
  if (positional.size() > 1) {
    *text =
        QStringLiteral("one scenario expected, got '%1'").arg(positional.join(QLatin1Char(' ')));
    return ParseOutcome::Error;
  }
  Options& o = *options;
  o.scenario = positional.isEmpty() ? QStringLiteral("throughput") : positional.first();
  if (!kScenarios.contains(o.scenario)) {
    *text = QStringLiteral("unknown scenario '%1' (expected %2)")
                .arg(o.scenario, kScenarios.join(QLatin1Char('|')));
    return ParseOutcome::Error;
  }
  const QString launcher = parser.value(QStringLiteral("launcher"));
  if (launcher == QLatin1String("in-process")) {
    o.launcher = Launcher::InProcess;
  } else if (launcher == QLatin1String("processes")) {
    o.launcher = Launcher::Processes;
  } else {
    *text = QStringLiteral("--launcher must be in-process or processes, got '%1'").arg(launcher);
    return ParseOutcome::Error;
  }
  o.copycatd = parser.value(QStringLiteral("copycatd"));
  const QString storage = parser.value(QStringLiteral("storage"));
  if (storage != QLatin1String("disk") && storage != QLatin1String("memory")) {
    *text = QStringLiteral("--storage must be disk or memory, got '%1'").arg(storage);
    return ParseOutcome::Error;
  }
  o.disk = storage == QLatin1String("disk");
  o.dataDir = parser.value(QStringLiteral("data"));
  const QString consistency = parser.value(QStringLiteral("consistency"));
  if (consistency == QLatin1String("linearizable")) {
    o.consistency = Consistency::Linearizable;
  } else if (consistency == QLatin1String("lease")) {
    o.consistency = Consistency::LinearizableLease;
  } else if (consistency == QLatin1String("sequential")) {
    o.consistency = Consistency::Sequential;
  } else {
    *text = QStringLiteral("--consistency must be linearizable, lease or sequential, got '%1'")
                .arg(consistency);
    return ParseOutcome::Error;
  }

  QString error;
  std::int64_t nodes = o.nodes, valueBytes = o.valueBytes, keys = o.keys, kills = o.kills,
               entries = o.entries, stateMb = o.stateMb, snapshotEntries = 0,
               clientThreads = o.clientThreads;
  const bool ok =
      intOption(parser, QStringLiteral("nodes"), 3, 5, &nodes, &error) &&
      intOption(parser, QStringLiteral("value-bytes"), 1, 4 << 20, &valueBytes, &error) &&
      intOption(parser, QStringLiteral("keys"), 1, 100000000, &keys, &error) &&
      intOption(parser, QStringLiteral("kills"), 1, 1000, &kills, &error) &&
      intOption(parser, QStringLiteral("client-threads"), 0, 256, &clientThreads, &error) &&
      intOption(parser, QStringLiteral("entries"), 1, 1000000000, &entries, &error) &&
      intOption(parser, QStringLiteral("state-mb"), 1, 100000, &stateMb, &error) &&
      intOption(parser, QStringLiteral("snapshot-entries"), 1, 2000000000, &snapshotEntries,
                &error) &&
      numberOption(parser, QStringLiteral("rate"), 0, 10000000, true, &o.rate, &error) &&
      numberOption(parser, QStringLiteral("read-ratio"), 0, 1, false, &o.readRatio, &error) &&
      numberOption(parser, QStringLiteral("duration"), 0, 86400, true, &o.duration, &error) &&
      numberOption(parser, QStringLiteral("warmup"), 0, 3600, false, &o.warmup, &error);
  if (!ok) {
    *text = error;
    return ParseOutcome::Error;
  }
  if (nodes == 4) {
    *text = QStringLiteral("--nodes must be 3 or 5, got '4'");
    return ParseOutcome::Error;
  }
  o.nodes = static_cast<int>(nodes);
  o.valueBytes = static_cast<int>(valueBytes);
  o.valueBytesSet = parser.isSet(QStringLiteral("value-bytes"));
  o.keys = static_cast<int>(keys);
  o.kills = static_cast<int>(kills);
  o.clientThreads = static_cast<int>(clientThreads);
  o.entries = entries;
  o.stateMb = static_cast<int>(stateMb);
  o.snapshotEntries = static_cast<std::uint64_t>(snapshotEntries);

  if (parser.isSet(QStringLiteral("clients"))) {
    o.clientsSet = true;
    const QString list = parser.value(QStringLiteral("clients"));
    for (const QString& part : list.split(QLatin1Char(','))) {
      bool isNumber = false;
      const int count = part.trimmed().toInt(&isNumber);
      if (!isNumber || count < 1 || count > 256) {
        *text = QStringLiteral("--clients needs numbers from 1 to 256 (a list: 1,16,64), got '%1'")
                    .arg(list);
        return ParseOutcome::Error;
      }
      o.clients.push_back(count);
    }
  }
  o.json = parser.value(QStringLiteral("json"));
  o.charts = parser.value(QStringLiteral("charts"));
  o.from = parser.values(QStringLiteral("from"));
  if (o.scenario == QLatin1String("charts") && o.from.isEmpty()) {
    *text = QStringLiteral("charts needs at least one --from FILE");
    return ParseOutcome::Error;
  }
  if (o.scenario != QLatin1String("charts") && !o.from.isEmpty()) {
    *text = QStringLiteral("--from is for the charts mode only");
    return ParseOutcome::Error;
  }
  o.verbose = parser.isSet(QStringLiteral("verbose"));
  if (o.scenario == QLatin1String("recovery") && !o.disk) {
    *text = QStringLiteral("the recovery scenario needs --storage disk");
    return ParseOutcome::Error;
  }
  return ParseOutcome::Run;
}

}  // namespace copycat::bench
