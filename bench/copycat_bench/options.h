#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include <QString>
#include <QStringList>

#include "engine/api/operation.h"

namespace copycat::bench {

enum class Launcher : std::uint8_t { InProcess, Processes };

/// copycat-bench's command line, validated. Every field holds a usable value
/// once parseOptions() succeeded; the `...Set` flags tell an explicit choice
/// from a scenario's default.
struct Options {
  QString scenario;  // physical, throughput, failover, recovery, snapshot, reads, all
  Launcher launcher = Launcher::InProcess;
  QString copycatd;  // explicit --copycatd, else found next to the binary
  int nodes = 3;
  bool disk = true;
  QString dataDir;  // parent of the run's temporary directory; empty: the system temp dir
  std::vector<int> clients;
  bool clientsSet = false;
  int clientThreads = 2;  // event threads the clients share; 0: one per client
  double rate = 0;        // open-loop ops/s over all clients; 0: closed loop
  int valueBytes = 256;
  bool valueBytesSet = false;
  double readRatio = 0;
  Consistency consistency = Consistency::Linearizable;
  double duration = 10;
  double warmup = 1;
  int keys = 10000;
  int kills = 10;
  std::int64_t entries = 1000000;
  int stateMb = 100;
  std::uint64_t snapshotEntries = 0;  // 0: the scenario's default
  QString json;
  QString charts;
  /// charts: the JSON lines files to draw.
  QStringList from;
  bool verbose = false;
};

enum class ParseOutcome : std::uint8_t { Run, Help, Error };

/// Parses argv (arguments()[0] is the program). On Help, `text` is the help
/// text; on Error, it is the message (without the usage).
ParseOutcome parseOptions(const QStringList& arguments, Options* options, QString* text);

QString launcherName(Launcher launcher);
QString consistencyName(Consistency consistency);

}  // namespace copycat::bench
