// copycatd: one Copycat server per process, holding the example map state
// machine (engine/kv). Scripts depend on its command line; see usage().

#include <sys/socket.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <optional>

#include <QCommandLineParser>
#include <QCoreApplication>
#include <QDir>
#include <QSocketNotifier>
#include <QTimer>

#include "engine/client/event_loop.h"
#include "engine/kv/map_state_machine.h"
#include "engine/server/server.h"

namespace {

using copycat::server::Server;

constexpr int kExitFailure = 1;
constexpr int kExitUsage = 2;

int g_signalPipe[2] = {-1, -1};

void onSignal(int) {
  const char byte = 1;
  [[maybe_unused]] const ssize_t written = ::write(g_signalPipe[1], &byte, 1);
}

/// `--bootstrap` may stand alone (a one-node cluster) or take a member list;
/// QCommandLineParser has no optional values, so a bare one becomes
/// `--bootstrap=`.
QStringList normalizeArguments(QStringList arguments) {
  for (qsizetype i = 1; i < arguments.size(); ++i) {
    if (arguments[i] != QLatin1String("--bootstrap")) continue;
    const bool hasValue =
        i + 1 < arguments.size() && !arguments[i + 1].startsWith(QLatin1Char('-'));
    if (!hasValue) arguments[i] = QStringLiteral("--bootstrap=");
  }
  return arguments;
}

int usageError(const QCommandLineParser& parser, const QString& message) {
  std::fprintf(stderr, "copycatd: %s\n\n%s", qPrintable(message), qPrintable(parser.helpText()));
  return kExitUsage;
}

std::optional<int> number(const QCommandLineParser& parser, const QString& name, int minimum,
                          QString* error) {
  if (!parser.isSet(name)) return std::nullopt;
  bool ok = false;
  const int value = parser.value(name).toInt(&ok);
  if (!ok || value < minimum) {
    *error =
        QStringLiteral("--%1 needs a %2 number, got '%3'")
            .arg(name, minimum > 0 ? QStringLiteral("positive") : QStringLiteral("non-negative"),
                 parser.value(name));
    return std::nullopt;
  }
  return value;
}

std::optional<int> positiveNumber(const QCommandLineParser& parser, const QString& name,
                                  QString* error) {
  return number(parser, name, 1, error);
}

QStringList memberList(const QString& text, QString* error) {
  QStringList members;
  for (const QString& part : text.split(QLatin1Char(','), Qt::SkipEmptyParts)) {
    const QString member = part.trimmed();
    if (!copycat::server::parseEndpoint(member)) {
      *error = QStringLiteral("invalid member address '%1' (expected HOST:PORT)").arg(member);
      return {};
    }
    members << member;
  }
  return members;
}

}  // namespace

int main(int argc, char** argv) {
  copycat::useFastEventLoop();
  QCoreApplication app(argc, argv);
  QCoreApplication::setApplicationName(QStringLiteral("copycatd"));
  qSetMessagePattern(QStringLiteral(
      "%{time yyyy-MM-dd hh:mm:ss.zzz} %{if-debug}debug%{endif}%{if-info}info%{endif}"
      "%{if-warning}warning%{endif}%{if-critical}error%{endif}%{if-fatal}fatal%{endif} "
      "%{category}: %{message}"));

  QCommandLineParser parser;
  parser.setApplicationDescription(QStringLiteral(
      "Runs one Copycat server holding a replicated string map.\n"
      "Started again with the same --address and --data (and neither --bootstrap nor --join),\n"
      "it recovers from DIR and rejoins its cluster. SIGTERM shuts it down gracefully."));
  parser.addHelpOption();
  parser.addOptions({
      {QStringLiteral("address"), QStringLiteral("Address to listen on."),
       QStringLiteral("HOST:PORT")},
      {QStringLiteral("data"), QStringLiteral("Directory of the log, snapshots and member list."),
       QStringLiteral("DIR")},
      {QStringLiteral("bootstrap"),
       QStringLiteral("Found a new cluster of these members (this server among them); alone: a "
                      "one-node cluster."),
       QStringLiteral("HOST:PORT,...")},
      {QStringLiteral("join"),
       QStringLiteral("Join the cluster these servers belong to (as a passive member, promoted "
                      "once caught up)."),
       QStringLiteral("HOST:PORT,...")},
      {QStringLiteral("storage"), QStringLiteral("disk (fsync, the default) or memory."),
       QStringLiteral("disk|memory"), QStringLiteral("disk")},
      {QStringLiteral("election-timeout-ms"), QStringLiteral("Election timeout (default 500)."),
       QStringLiteral("N")},
      {QStringLiteral("heartbeat-ms"), QStringLiteral("Heartbeat interval (default 50)."),
       QStringLiteral("N")},
      {QStringLiteral("session-timeout-ms"),
       QStringLiteral("Default client session timeout (default 5000)."), QStringLiteral("N")},
      {QStringLiteral("snapshot-entries"),
       QStringLiteral("Snapshot and compact every N applied entries (default 10000)."),
       QStringLiteral("N")},
      {QStringLiteral("cluster-id"), QStringLiteral("Refuse peers and clients of other clusters."),
       QStringLiteral("ID")},
      {QStringLiteral("own-sync-delay-ms"),
       QStringLiteral("While leading, defer the sync of its own log up to N ms as long as the "
                      "followers alone can commit (default 2; 0: sync every batch at once)."),
       QStringLiteral("N")},
      {QStringLiteral("follower-apply-delay-ms"),
       QStringLiteral("While following, hold committed entries up to N ms before the state "
                      "machine applies them, in one go (default 5; 0: apply every batch at "
                      "once)."),
       QStringLiteral("N")},
  });
  if (!parser.parse(normalizeArguments(QCoreApplication::arguments()))) {
    return usageError(parser, parser.errorText());
  }
  if (parser.isSet(QStringLiteral("help"))) {
    std::fputs(qPrintable(parser.helpText()), stdout);
    return 0;
  }
  if (!parser.positionalArguments().isEmpty()) {
    return usageError(
        parser,
        QStringLiteral("unexpected argument '%1'").arg(parser.positionalArguments().first()));
  }
  const QString address = parser.value(QStringLiteral("address"));
  if (address.isEmpty()) return usageError(parser, QStringLiteral("--address is required"));
  if (!copycat::server::parseEndpoint(address)) {
    return usageError(parser,
                      QStringLiteral("invalid --address '%1' (expected HOST:PORT)").arg(address));
  }
  const QString data = parser.value(QStringLiteral("data"));
  if (data.isEmpty()) return usageError(parser, QStringLiteral("--data is required"));
  if (parser.isSet(QStringLiteral("bootstrap")) && parser.isSet(QStringLiteral("join"))) {
    return usageError(parser, QStringLiteral("--bootstrap and --join exclude each other"));
  }
  const QString storageText = parser.value(QStringLiteral("storage"));
  if (storageText != QLatin1String("disk") && storageText != QLatin1String("memory")) {
    return usageError(
        parser, QStringLiteral("--storage must be disk or memory, got '%1'").arg(storageText));
  }
  QString error;
  const std::optional<int> electionMs =
      positiveNumber(parser, QStringLiteral("election-timeout-ms"), &error);
  const std::optional<int> heartbeatMs =
      positiveNumber(parser, QStringLiteral("heartbeat-ms"), &error);
  const std::optional<int> sessionMs =
      positiveNumber(parser, QStringLiteral("session-timeout-ms"), &error);
  const std::optional<int> snapshotEntries =
      positiveNumber(parser, QStringLiteral("snapshot-entries"), &error);
  const std::optional<int> ownSyncDelayMs =
      number(parser, QStringLiteral("own-sync-delay-ms"), 0, &error);
  const std::optional<int> followerApplyDelayMs =
      number(parser, QStringLiteral("follower-apply-delay-ms"), 0, &error);
  if (!error.isEmpty()) return usageError(parser, error);
  QStringList bootstrapMembers;
  QStringList joinMembers;
  if (parser.isSet(QStringLiteral("bootstrap"))) {
    bootstrapMembers = memberList(parser.value(QStringLiteral("bootstrap")), &error);
    if (!error.isEmpty()) return usageError(parser, error);
    if (bootstrapMembers.isEmpty()) bootstrapMembers << address;
    if (!bootstrapMembers.contains(address)) {
      return usageError(parser, QStringLiteral("--bootstrap must list this server's --address"));
    }
  }
  if (parser.isSet(QStringLiteral("join"))) {
    joinMembers = memberList(parser.value(QStringLiteral("join")), &error);
    if (!error.isEmpty()) return usageError(parser, error);
    if (joinMembers.isEmpty()) return usageError(parser, QStringLiteral("--join needs members"));
  }

  const bool disk = storageText == QLatin1String("disk");
  if (disk && !QDir().mkpath(data)) {
    std::fprintf(stderr, "copycatd: cannot create the data directory %s\n", qPrintable(data));
    return kExitFailure;
  }
  std::unique_ptr<Server> server;
  try {
    Server::Builder builder = Server::builder(address);
    builder.withStateMachine([] { return std::make_unique<copycat::kv::MapStateMachine>(); })
        .withRegistration(copycat::kv::registerKvOperations)
        .withStorage(
            disk ? copycat::storage::StorageLevel::Disk : copycat::storage::StorageLevel::Memory,
            data, 32u << 20, static_cast<std::uint64_t>(snapshotEntries.value_or(10000)))
        .withClusterId(parser.value(QStringLiteral("cluster-id")).toStdString());
    if (electionMs) builder.withElectionTimeout(std::chrono::milliseconds(*electionMs));
    if (heartbeatMs) builder.withHeartbeatInterval(std::chrono::milliseconds(*heartbeatMs));
    if (sessionMs) builder.withSessionTimeout(std::chrono::milliseconds(*sessionMs));
    if (ownSyncDelayMs) builder.withOwnSyncDelay(std::chrono::milliseconds(*ownSyncDelayMs));
    if (followerApplyDelayMs) {
      builder.withFollowerApplyDelay(std::chrono::milliseconds(*followerApplyDelayMs));
    }
    server = builder.build();
  } catch (const std::invalid_argument& invalid) {
    return usageError(parser, QString::fromUtf8(invalid.what()));
  }

  try {
    server->start().waitForFinished();
  } catch (const std::exception& failure) {
    std::fprintf(stderr, "copycatd: cannot start: %s\n", failure.what());
    return kExitFailure;
  }
  const copycat::raft::Status status = server->status();
  const bool hasState = status.term > 0 || status.lastIndex > 0 || status.snapshotIndex > 0;
  try {
    if (hasState) {
      if (!bootstrapMembers.isEmpty() || !joinMembers.isEmpty()) {
        qInfo("%s already holds a server's state: recovering from it (--bootstrap/--join ignored)",
              qPrintable(data));
      }
    } else if (!bootstrapMembers.isEmpty()) {
      server->bootstrap(bootstrapMembers).waitForFinished();
      qInfo("bootstrapped a cluster of %s", qPrintable(bootstrapMembers.join(QLatin1Char(','))));
    } else if (!joinMembers.isEmpty()) {
      qInfo("joining the cluster of %s", qPrintable(joinMembers.join(QLatin1Char(','))));
      server->join(joinMembers).waitForFinished();
      qInfo("joined: now a voting member");
    } else {
      qWarning(
          "%s is empty and neither --bootstrap nor --join was given: waiting for a leader to "
          "add this server",
          qPrintable(data));
    }
  } catch (const std::exception& failure) {
    std::fprintf(stderr, "copycatd: %s\n", failure.what());
    server->shutdown();
    return kExitFailure;
  }

  if (::socketpair(AF_UNIX, SOCK_STREAM, 0, g_signalPipe) != 0) {
    std::perror("copycatd: socketpair");
    return kExitFailure;
  }
  QSocketNotifier notifier(g_signalPipe[0], QSocketNotifier::Read);
  QObject::connect(&notifier, &QSocketNotifier::activated, &app, [&app] {
    char byte = 0;
    [[maybe_unused]] const ssize_t got = ::read(g_signalPipe[0], &byte, 1);
    qInfo("signal received: shutting down");
    app.exit(0);
  });
  std::signal(SIGTERM, onSignal);
  std::signal(SIGINT, onSignal);

  int exitCode = 0;
  QTimer watchdog;
  QObject::connect(&watchdog, &QTimer::timeout, &app, [&] {
    if (server->isRunning()) return;
    std::fprintf(stderr, "copycatd: the server stopped: %s\n", qPrintable(server->failure()));
    exitCode = kExitFailure;
    app.exit(kExitFailure);
  });
  watchdog.start(500);

  const int loopCode = app.exec();
  server->shutdown();
  qInfo("shut down");
  return exitCode != 0 ? exitCode : loopCode;
}
