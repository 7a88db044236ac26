// copycat-bench: measures a Copycat cluster of the example map on this
// machine (throughput, latency, failover, recovery, snapshot catch-up, reads)
// against the machine's own ceiling. See --help and README "Benchmarks".

#include <csignal>
#include <cstdio>
#include <cstdlib>

#include <QApplication>
#include <QDir>
#include <QFileInfo>
#include <QTemporaryDir>

#include "bench/copycat_bench/charts.h"
#include "bench/copycat_bench/options.h"
#include "bench/copycat_bench/report.h"
#include "bench/copycat_bench/scenarios.h"
#include "engine/client/event_loop.h"

namespace {

using namespace copycat::bench;

constexpr int kExitFailure = 1;
constexpr int kExitUsage = 2;

bool g_verbose = false;

void onSignal(int) {
  if (g_interrupted.exchange(true)) std::_Exit(130);  // a second ^C: stop now
}

/// The servers' log lines are noise in a benchmark: shown with --verbose only.
void messageHandler(QtMsgType type, const QMessageLogContext&, const QString& message) {
  if (!g_verbose && (type == QtDebugMsg || type == QtInfoMsg || type == QtWarningMsg)) return;
  std::fprintf(stderr, "%s\n", qPrintable(message));
}

int usage(const QString& message) {
  std::fprintf(stderr, "copycat-bench: %s\nRun 'copycat-bench --help' for the options.\n",
               qPrintable(message));
  return kExitUsage;
}

/// copycatd: --copycatd, else next to this binary, else the build tree's.
QString findCopycatd(const QString& explicitPath) {
  if (!explicitPath.isEmpty()) return explicitPath;
  const QDir here(QCoreApplication::applicationDirPath());
  for (const QString& candidate :
       {here.filePath(QStringLiteral("copycatd")), here.filePath(QStringLiteral("../app/copycatd")),
        QStringLiteral(COPYCAT_BENCH_COPYCATD)}) {
    if (QFileInfo(candidate).isExecutable()) return QFileInfo(candidate).absoluteFilePath();
  }
  return {};
}

void printErrors(const QStringList& errors) {
  for (const QString& error : errors)
    std::fprintf(stderr, "copycat-bench: %s\n", qPrintable(error));
}

/// Writes the charts of `results` into `directory` and lists them; returns
/// whether every chart was written.
bool drawCharts(const std::vector<QJsonObject>& results, const QString& directory) {
  QStringList errors;
  const QStringList files = writeCharts(results, directory, &errors);
  for (const QString& file : files) std::printf("chart: %s\n", qPrintable(file));
  printErrors(errors);
  return errors.isEmpty();
}

/// The charts mode: no cluster, the charts of saved results.
int drawSavedCharts(const Options& options) {
  QStringList errors;
  const std::vector<QJsonObject> results = readResultFiles(options.from, &errors);
  printErrors(errors);
  if (!errors.isEmpty()) return kExitFailure;
  if (results.empty()) {
    std::fprintf(stderr, "copycat-bench: no results to draw in %s\n",
                 qPrintable(options.from.join(QStringLiteral(", "))));
    return kExitFailure;
  }
  const QString directory = options.charts.isEmpty()
                                ? QFileInfo(options.from.first()).absoluteDir().path()
                                : options.charts;
  return drawCharts(results, directory) ? 0 : kExitFailure;
}

}  // namespace

int main(int argc, char** argv) {
  copycat::useFastEventLoop();
  // Charts render with QCustomPlot (a QWidget) without any display.
  if (qEnvironmentVariableIsEmpty("QT_QPA_PLATFORM")) qputenv("QT_QPA_PLATFORM", "offscreen");
  qInstallMessageHandler(messageHandler);
  QApplication app(argc, argv);
  QCoreApplication::setApplicationName(QStringLiteral("copycat-bench"));

  Options options;
  QString text;
  switch (parseOptions(QCoreApplication::arguments(), &options, &text)) {
    case ParseOutcome::Help:
      std::fputs(qPrintable(text), stdout);
      return 0;
    case ParseOutcome::Error:
      return usage(text);
    case ParseOutcome::Run:
      break;
  }
  g_verbose = options.verbose;
  if (options.scenario == QLatin1String("charts")) return drawSavedCharts(options);

  QString copycatd;
  if (options.launcher == Launcher::Processes) {
    copycatd = findCopycatd(options.copycatd);
    if (copycatd.isEmpty() || !QFileInfo(copycatd).isExecutable()) {
      return usage(
          options.copycatd.isEmpty()
              ? QStringLiteral("copycatd not found next to copycat-bench: give --copycatd PATH")
              : QStringLiteral("--copycatd %1 is not an executable").arg(options.copycatd));
    }
  }
  const QString base = options.dataDir.isEmpty() ? QDir::tempPath() : options.dataDir;
  if (!QDir().mkpath(base)) return usage(QStringLiteral("cannot create --data %1").arg(base));
  QTemporaryDir root(QDir(base).filePath(QStringLiteral("copycat-bench-XXXXXX")));
  if (!root.isValid()) {
    return usage(QStringLiteral("cannot make a directory in %1: %2").arg(base, root.errorString()));
  }

  Reporter reporter(options);
  if (!reporter.open(&text)) return usage(text);
  std::signal(SIGINT, onSignal);
  std::signal(SIGTERM, onSignal);
  std::signal(SIGPIPE, SIG_IGN);

  std::printf("copycat-bench %s: %s launcher, %d node(s), %s storage in %s; load average %s\n",
              qPrintable(options.scenario), qPrintable(launcherName(options.launcher)),
              options.scenario == QLatin1String("recovery") ? 1 : options.nodes,
              options.disk ? "disk" : "memory", qPrintable(root.path()), qPrintable(loadAverage()));
  std::fflush(stdout);

  RunContext context{options, root.path(), copycatd, reporter};
  int status = 0;
  try {
    runScenario(options.scenario, context);
  } catch (const Interrupted&) {
    std::fprintf(stderr, "\ncopycat-bench: interrupted; cleaned up\n");
    status = 130;
  } catch (const std::exception& error) {
    std::fprintf(stderr, "\ncopycat-bench: %s failed: %s\n", qPrintable(options.scenario),
                 error.what());
    status = kExitFailure;
  }

  QString chartDir = options.charts;
  if (chartDir.isEmpty() && !options.json.isEmpty())
    chartDir = QFileInfo(options.json).absoluteDir().path();
  if (!chartDir.isEmpty() && !reporter.results().empty() &&
      !drawCharts(reporter.results(), chartDir) && status == 0) {
    status = kExitFailure;
  }
  if (!options.json.isEmpty()) std::printf("json: %s\n", qPrintable(options.json));
  return status;
}
