// Real `copycatd` processes on loopback ports with disk storage, driven by the
// `copycat` command line and by the Client library in this process: election
// and replication, SIGKILL of the leader and of the whole cluster, a fourth
// server joining and a follower leaving, the CLI's JSON contract and
// copycatd's usage errors. Scripts outside the repository depend on both
// command lines exactly. Wall-clock timers drive the servers, so every wait
// has a generous bound; each daemon's stderr goes to a file whose tail is
// printed when a test fails.

#include <sys/prctl.h>

#include <atomic>
#include <csignal>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <QDeadlineTimer>
#include <QDir>
#include <QElapsedTimer>
#include <QFile>
#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QProcess>
#include <QTemporaryDir>
#include <QtTest>

#include "engine/client/client.h"
#include "engine/kv/map_state_machine.h"
#include "tests/server_test_util.h"

/// QVERIFY2 that builds its message only when the check fails (Qt 6.4's
/// QVERIFY2 evaluates it every time, and the messages read log files).
#define CHECK(statement, description)                                       \
  do {                                                                      \
    if (!(statement)) {                                                     \
      QTest::qVerify(false, #statement, (description), __FILE__, __LINE__); \
      return;                                                               \
    }                                                                       \
  } while (false)

namespace kv = copycat::kv;
using copycat::Consistency;
using copycat::client::Client;

namespace {

constexpr int kElectionTimeoutMs = 300;
constexpr int kHeartbeatMs = 30;
constexpr int kLeaderWaitMs = 20000;
constexpr int kCatchUpWaitMs = 20000;
constexpr int kPollMs = 100;

/// One run of the `copycat` command line.
struct CliRun {
  int exitCode = -1;  // -1: did not start, crashed or hung
  QByteArray out;
  QByteArray err;

  QString describe() const {
    return QStringLiteral("exit %1, stdout: %2, stderr: %3")
        .arg(exitCode)
        .arg(QString::fromUtf8(out.trimmed().left(2000)),
             QString::fromUtf8(err.trimmed().left(2000)));
  }
};

/// Kills a child when this test process dies, even by a crash or SIGKILL.
void dieWithParent() { ::prctl(PR_SET_PDEATHSIG, SIGKILL); }

CliRun runCli(const QStringList& arguments, const QByteArray& input = {}, int waitMs = 60000) {
  QProcess process;
  process.setChildProcessModifier(dieWithParent);
  process.start(QStringLiteral(COPYCAT_CLI_PATH), arguments);
  CliRun run;
  if (!process.waitForStarted(30000)) return run;
  if (!input.isEmpty()) process.write(input);
  process.closeWriteChannel();
  if (!process.waitForFinished(waitMs)) {
    process.kill();
    process.waitForFinished();
    run.out = process.readAllStandardOutput();
    run.err = process.readAllStandardError() + "\n(killed: did not finish in time)";
    return run;
  }
  run.exitCode = process.exitStatus() == QProcess::NormalExit ? process.exitCode() : -1;
  run.out = process.readAllStandardOutput();
  run.err = process.readAllStandardError();
  return run;
}

/// `copycat --cluster <cluster> [--timeout-ms N] <command...>`.
CliRun cli(const QStringList& cluster, const QStringList& command, int timeoutMs = 5000,
           const QByteArray& input = {}) {
  return runCli(QStringList{QStringLiteral("--cluster"), cluster.join(QLatin1Char(',')),
                            QStringLiteral("--timeout-ms"), QString::number(timeoutMs)} +
                    command,
                input);
}

/// The JSON objects of a shell run's stdout, one per line; nothing when a
/// line is not a JSON object.
std::optional<std::vector<QJsonObject>> jsonLines(const QByteArray& out) {
  std::vector<QJsonObject> objects;
  for (const QByteArray& line : out.split('\n')) {
    if (line.trimmed().isEmpty()) continue;
    QJsonParseError error{};
    const QJsonDocument document = QJsonDocument::fromJson(line, &error);
    if (error.error != QJsonParseError::NoError || !document.isObject()) return std::nullopt;
    objects.push_back(document.object());
  }
  return objects;
}

/// One member's entry of `copycat status`.
struct MemberStatus {
  qint64 id = 0;
  QString address;
  QString role;
  qint64 term = 0;
  qint64 leader = 0;
  qint64 commit = 0;
  qint64 applied = 0;
  qint64 lastIndex = 0;
  bool answered = false;
};

/// The cluster's leader as every asked member agreed on it.
struct Leader {
  QString address;
  qint64 id = 0;
  qint64 term = 0;
  qint64 commit = 0;
};

/// A key written by a client, and whether the cluster acknowledged it.
struct Write {
  std::string key;
  std::string value;
  bool acknowledged = false;
};

/// Up to `lines` last lines of a file.
QString tailOf(const QString& path, int lines = 25) {
  QFile file(path);
  if (!file.open(QIODevice::ReadOnly)) return QStringLiteral("(no log %1)").arg(path);
  const QList<QByteArray> all = file.readAll().split('\n');
  QStringList kept;
  for (qsizetype i = std::max<qsizetype>(0, all.size() - lines); i < all.size(); ++i) {
    kept << QString::fromUtf8(all[i]);
  }
  return kept.join(QLatin1Char('\n'));
}

/// `count` loopback ports that were free a moment ago, as "127.0.0.1:PORT";
/// empty when there were not enough.
QStringList freeAddresses(int count) {
  QStringList addresses;
  for (quint16 port : copycat::server::freeLoopbackPorts(count)) {
    addresses << QStringLiteral("127.0.0.1:%1").arg(port);
  }
  return addresses;
}

/// Real copycatd processes, each with a data directory and a log file in one
/// temporary directory. The destructor SIGKILLs every process still running.
class ProcessCluster {
 public:
  explicit ProcessCluster(int size) : m_addresses(freeAddresses(size)) {}
  ~ProcessCluster() {
    for (auto& [index, process] : m_processes) {
      if (process && process->state() != QProcess::NotRunning) {
        process->kill();
        process->waitForFinished(10000);
      }
    }
  }

  bool valid() const { return m_directory.isValid() && !m_addresses.isEmpty(); }
  const QStringList& addresses() const { return m_addresses; }
  QString address(int index) const { return m_addresses.at(index); }
  QString dataDir(int index) const {
    return m_directory.filePath(QStringLiteral("n%1").arg(index));
  }
  QString logPath(int index) const {
    return m_directory.filePath(QStringLiteral("n%1.log").arg(index));
  }

  /// Starts copycatd `index` with the common options and `mode` (--bootstrap
  /// ..., --join ... or nothing). False when the process did not start.
  bool start(int index, const QStringList& mode) {
    QStringList arguments{QStringLiteral("--address"),
                          address(index),
                          QStringLiteral("--data"),
                          dataDir(index),
                          QStringLiteral("--storage"),
                          QStringLiteral("disk"),
                          QStringLiteral("--election-timeout-ms"),
                          QString::number(kElectionTimeoutMs),
                          QStringLiteral("--heartbeat-ms"),
                          QString::number(kHeartbeatMs)};
    arguments += mode;
    {
      QFile log(logPath(index));
      if (log.open(QIODevice::Append)) {
        log.write(QStringLiteral("===== test: starting copycatd %1\n")
                      .arg(arguments.join(QLatin1Char(' ')))
                      .toUtf8());
      }
    }
    auto process = std::make_unique<QProcess>();
    process->setChildProcessModifier(dieWithParent);
    process->setStandardOutputFile(logPath(index), QIODevice::Append);
    process->setStandardErrorFile(logPath(index), QIODevice::Append);
    process->start(QStringLiteral(COPYCATD_PATH), arguments);
    const bool started = process->waitForStarted(30000);
    m_processes[index] = std::move(process);
    return started;
  }

  /// --bootstrap with every address of the cluster.
  QStringList bootstrapMode(int members) const {
    return {QStringLiteral("--bootstrap"), m_addresses.mid(0, members).join(QLatin1Char(','))};
  }

  bool startAll(int members) {
    for (int i = 0; i < members; ++i) {
      if (!start(i, bootstrapMode(members))) return false;
    }
    return true;
  }

  bool isRunning(int index) const {
    auto it = m_processes.find(index);
    return it != m_processes.end() && it->second->state() != QProcess::NotRunning;
  }

  void sigkill(int index) {
    auto it = m_processes.find(index);
    if (it == m_processes.end()) return;
    it->second->kill();
    it->second->waitForFinished(10000);
  }

  QProcess* process(int index) {
    auto it = m_processes.find(index);
    return it == m_processes.end() ? nullptr : it->second.get();
  }

  int indexOf(const QString& address) const {
    return static_cast<int>(m_addresses.indexOf(address));
  }

  /// The tails of every daemon's log that was started.
  QString logTails() const {
    QString text;
    for (const auto& [index, process] : m_processes) {
      text += QStringLiteral("\n----- copycatd %1 (%2, %3) log tail:\n%4")
                  .arg(index)
                  .arg(address(index),
                       process->state() == QProcess::NotRunning ? QStringLiteral("not running")
                                                                : QStringLiteral("running"),
                       tailOf(logPath(index)));
    }
    return text;
  }

 private:
  QTemporaryDir m_directory;
  QStringList m_addresses;
  std::map<int, std::unique_ptr<QProcess>> m_processes;
};

/// `copycat status` against `cluster`, parsed; nothing when the CLI failed or
/// printed something else than an array of objects. `raw` gets the run.
std::optional<std::vector<MemberStatus>> status(const QStringList& cluster,
                                                QString* raw = nullptr) {
  const CliRun run = cli(cluster, {QStringLiteral("status")}, 2000);
  if (raw) *raw = run.describe();
  if (run.exitCode != 0) return std::nullopt;
  const QJsonDocument document = QJsonDocument::fromJson(run.out);
  if (!document.isArray()) return std::nullopt;
  std::vector<MemberStatus> members;
  for (const QJsonValue& value : document.array()) {
    const QJsonObject object = value.toObject();
    MemberStatus member;
    member.address = object.value(QStringLiteral("address")).toString();
    member.answered = !object.contains(QStringLiteral("error"));
    member.id = object.value(QStringLiteral("id")).toInteger();
    member.role = object.value(QStringLiteral("role")).toString();
    member.term = object.value(QStringLiteral("term")).toInteger();
    member.leader = object.value(QStringLiteral("leader")).toInteger();
    member.commit = object.value(QStringLiteral("commit")).toInteger();
    member.applied = object.value(QStringLiteral("applied")).toInteger();
    member.lastIndex = object.value(QStringLiteral("last_index")).toInteger();
    members.push_back(member);
  }
  return members;
}

/// The leader when every address of `expected` answered `copycat status`
/// (asked through `expected`) naming one leader in one term, that leader
/// among them and reporting itself the leader.
std::optional<Leader> agreedLeader(const QStringList& expected, QString* raw) {
  const std::optional<std::vector<MemberStatus>> members = status(expected, raw);
  if (!members) return std::nullopt;
  std::optional<Leader> leader;
  int answered = 0;
  for (const MemberStatus& member : *members) {
    if (!expected.contains(member.address)) continue;
    if (!member.answered || member.leader == 0) return std::nullopt;
    ++answered;
    if (leader && (leader->id != member.leader || leader->term != member.term)) return std::nullopt;
    if (!leader) leader = Leader{{}, member.leader, member.term, 0};
  }
  if (!leader || answered != expected.size()) return std::nullopt;
  for (const MemberStatus& member : *members) {
    if (member.id != leader->id) continue;
    if (member.role != QLatin1String("leader")) return std::nullopt;
    leader->address = member.address;
    leader->commit = member.commit;
  }
  if (leader->address.isEmpty()) return std::nullopt;
  return leader;
}

std::optional<Leader> waitForLeader(const QStringList& expected, QString* raw,
                                    int waitMs = kLeaderWaitMs) {
  QDeadlineTimer deadline(waitMs);
  while (true) {
    if (std::optional<Leader> leader = agreedLeader(expected, raw)) return leader;
    if (deadline.hasExpired()) return std::nullopt;
    QTest::qWait(kPollMs);
  }
}

/// An in-process client of the example map.
std::unique_ptr<Client> makeClient(
    const QStringList& members, int timeoutMs = 5000,
    copycat::client::ServerSelection selection = copycat::client::ServerSelection::Any) {
  return Client::builder(members)
      .withTimeout(std::chrono::milliseconds(timeoutMs))
      .withConnectionStrategy(copycat::client::ConnectionStrategy::exponentialBackoff(
          std::chrono::milliseconds(50), std::chrono::milliseconds(300)))
      .withServerSelection(selection)
      .withRegistration(kv::registerKvOperations)
      .withName(QStringLiteral("process-cluster-test"))
      .build();
}

/// Writes `count` keys prefix0..prefixN through `copycat shell` (one session);
/// every line's answer lands in `writes` (acknowledged when ok was true).
/// Returns the highest acknowledged index, or -1 when the shell did not run
/// or printed something else than one JSON object per line.
qint64 shellPuts(const QStringList& cluster, const QString& prefix, int count,
                 std::vector<Write>& writes, QString* raw) {
  QByteArray input;
  std::vector<Write> batch;
  for (int i = 0; i < count; ++i) {
    Write write{QStringLiteral("%1%2").arg(prefix).arg(i).toStdString(),
                QStringLiteral("value-%1-%2").arg(prefix).arg(i).toStdString(), false};
    input += "put " + QByteArray::fromStdString(write.key) + ' ' +
             QByteArray::fromStdString(write.value) + '\n';
    batch.push_back(write);
  }
  const CliRun run = cli(cluster, {QStringLiteral("shell")}, 5000, input);
  *raw = run.describe();
  const std::optional<std::vector<QJsonObject>> lines = jsonLines(run.out);
  if (run.exitCode != 0 || !lines || static_cast<int>(lines->size()) != count) return -1;
  qint64 highest = 0;
  for (int i = 0; i < count; ++i) {
    const QJsonObject& line = (*lines)[static_cast<std::size_t>(i)];
    if (line.value(QStringLiteral("key")).toString().toStdString() != batch[i].key) return -1;
    batch[i].acknowledged = line.value(QStringLiteral("ok")).toBool();
    if (batch[i].acknowledged) {
      highest = std::max<qint64>(highest, line.value(QStringLiteral("index")).toInteger());
    }
  }
  writes.insert(writes.end(), batch.begin(), batch.end());
  return highest;
}

/// Reads every acknowledged write back through `client` at `consistency`;
/// empty when all match, else a description of the first mismatches.
QString checkAcknowledged(Client& client, const std::vector<Write>& writes,
                          Consistency consistency) {
  QString problems;
  int bad = 0;
  for (const Write& write : writes) {
    if (!write.acknowledged) continue;
    auto result = client.submit(kv::GetQuery(write.key), consistency).result();
    QString problem;
    if (!result) {
      problem = QStringLiteral("get %1 failed: %2")
                    .arg(QString::fromStdString(write.key),
                         QString::fromStdString(result.error().message));
    } else if (*result != std::optional<std::string>(write.value)) {
      problem = QStringLiteral("get %1 gave %2, acknowledged %3")
                    .arg(QString::fromStdString(write.key),
                         result->has_value() ? QString::fromStdString(**result)
                                             : QStringLiteral("(absent)"),
                         QString::fromStdString(write.value));
    }
    if (!problem.isEmpty() && ++bad <= 5) problems += problem + QLatin1Char('\n');
  }
  if (bad > 5) problems += QStringLiteral("... %1 mismatches in all\n").arg(bad);
  return problems;
}

int acknowledgedCount(const std::vector<Write>& writes) {
  return static_cast<int>(
      std::count_if(writes.begin(), writes.end(), [](const Write& w) { return w.acknowledged; }));
}

/// Polls `copycat status` (through `cluster`) until the member at `address`
/// applied `index`; returns the last status text on failure.
bool waitApplied(const QStringList& cluster, const QStringList& addresses, qint64 index,
                 QString* raw, int waitMs = kCatchUpWaitMs) {
  QDeadlineTimer deadline(waitMs);
  while (true) {
    if (const auto members = status(cluster, raw)) {
      int done = 0;
      for (const MemberStatus& member : *members) {
        if (addresses.contains(member.address) && member.answered && member.applied >= index)
          ++done;
      }
      if (done == addresses.size()) return true;
    }
    if (deadline.hasExpired()) return false;
    QTest::qWait(kPollMs);
  }
}

/// `copycat members` through `cluster`: address -> kind.
std::optional<std::map<QString, QString>> members(const QStringList& cluster, QString* raw) {
  const CliRun run = cli(cluster, {QStringLiteral("members")}, 2000);
  *raw = run.describe();
  if (run.exitCode != 0) return std::nullopt;
  const QJsonDocument document = QJsonDocument::fromJson(run.out);
  if (!document.isArray()) return std::nullopt;
  std::map<QString, QString> kinds;
  for (const QJsonValue& value : document.array()) {
    kinds[value.toObject().value(QStringLiteral("address")).toString()] =
        value.toObject().value(QStringLiteral("kind")).toString();
  }
  return kinds;
}

}  // namespace

class ProcessClusterTimingTest : public QObject {
  Q_OBJECT

 private:
  std::unique_ptr<ProcessCluster> m_cluster;

  ProcessCluster& newCluster(int size) {
    m_cluster = std::make_unique<ProcessCluster>(size);
    return *m_cluster;
  }
  QString logs() const { return m_cluster ? m_cluster->logTails() : QString(); }

  void electAndReplicate(int size);

 private slots:
  void cleanup() {
    if (QTest::currentTestFailed() && m_cluster) {
      qWarning("%s", qPrintable(m_cluster->logTails()));
    }
    m_cluster.reset();  // SIGKILLs whatever still runs
  }

  void three_nodes_elect_and_replicate() { electAndReplicate(3); }
  void five_nodes_elect_and_replicate() { electAndReplicate(5); }

  void sigkill_leader_loses_no_acknowledged_write() {
    ProcessCluster& cluster = newCluster(3);
    QVERIFY(cluster.valid());
    QVERIFY(cluster.startAll(3));
    QString raw;
    const std::optional<Leader> first = waitForLeader(cluster.addresses(), &raw);
    CHECK(first, qPrintable(QStringLiteral("no leader: %1%2").arg(raw, logs())));

    std::unique_ptr<Client> writerClient = makeClient(cluster.addresses(), 3000);
    std::mutex mutex;
    std::vector<Write> writes;
    std::atomic<int> acknowledged{0};
    std::atomic<int> failed{0};
    int atKillAcked = 0;
    {
      // Three writers share one session, so several commands are in flight
      // when the leader dies.
      std::atomic<int> next{0};
      const auto writeLoop = [&](std::stop_token stop) {
        while (!stop.stop_requested()) {
          const int i = next++;
          Write write{"k" + std::to_string(i),
                      "v" + std::to_string(i) + "-" + std::to_string(i * 7), false};
          auto result = writerClient->submit(kv::PutCommand(write.key, write.value)).result();
          write.acknowledged = static_cast<bool>(result);
          {
            std::lock_guard lock(mutex);
            writes.push_back(write);
          }
          if (write.acknowledged) {
            ++acknowledged;
          } else {
            ++failed;
          }
        }
      };
      std::vector<std::jthread> writers;
      for (int w = 0; w < 3; ++w) writers.emplace_back(writeLoop);
      CHECK(QTest::qWaitFor([&] { return acknowledged >= 20; }, 20000),
            qPrintable(QStringLiteral("the writer got %1 acks, %2 failures before the kill%3")
                           .arg(acknowledged.load())
                           .arg(failed.load())
                           .arg(logs())));
      const int killedIndex = cluster.indexOf(first->address);
      QVERIFY(killedIndex >= 0);
      QElapsedTimer sinceKill;
      sinceKill.start();
      cluster.sigkill(killedIndex);
      const int atKill = acknowledged;
      atKillAcked = atKill;
      // Each writer may still count one answer of the old leader.
      CHECK(QTest::qWaitFor([&] { return acknowledged >= atKill + 4; }, 20000),
            qPrintable(QStringLiteral("no write acknowledged after the kill (%1 failures)%2")
                           .arg(failed.load())
                           .arg(logs())));
      qInfo("writes resumed %lld ms after the SIGKILL",
            static_cast<long long>(sinceKill.elapsed()));
      CHECK(QTest::qWaitFor([&] { return acknowledged >= atKill + 20; }, 20000),
            qPrintable(QStringLiteral("after the kill the writer got %1 more acks (%2 failures)%3")
                           .arg(acknowledged.load() - atKill)
                           .arg(failed.load())
                           .arg(logs())));
      for (std::jthread& writer : writers) writer.request_stop();
    }                      // joins the writers
    writerClient.reset();  // closes its session: no keep-alives move the commit index below

    QStringList survivors = cluster.addresses();
    survivors.removeAll(first->address);
    const std::optional<Leader> second = waitForLeader(survivors, &raw);
    CHECK(second, qPrintable(QStringLiteral("no new leader: %1%2").arg(raw, logs())));
    CHECK(second->address != first->address && second->term > first->term,
          qPrintable(QStringLiteral("old leader %1 term %2, new leader %3 term %4")
                         .arg(first->address)
                         .arg(first->term)
                         .arg(second->address)
                         .arg(second->term)));

    qInfo(
        "%d writes acknowledged (%d before the SIGKILL), %d failed; leader %s term %lld -> "
        "%s term %lld",
        acknowledgedCount(writes), atKillAcked, failed.load(), qPrintable(first->address),
        static_cast<long long>(first->term), qPrintable(second->address),
        static_cast<long long>(second->term));
    std::unique_ptr<Client> reader = makeClient(survivors, 5000);
    const QString lost = checkAcknowledged(*reader, writes, Consistency::Linearizable);
    CHECK(lost.isEmpty(),
          qPrintable(QStringLiteral("%1 acknowledged writes; lost after the kill:\n%2%3")
                         .arg(acknowledgedCount(writes))
                         .arg(lost, logs())));

    reader.reset();

    // The killed node restarts from its directory (no --bootstrap) and
    // catches up with the leader's commit.
    const int killedIndex = cluster.indexOf(first->address);
    QVERIFY(cluster.start(killedIndex, {}));
    QDeadlineTimer deadline(kCatchUpWaitMs);
    bool caughtUp = false;
    while (!caughtUp && !deadline.hasExpired()) {
      if (const auto all = status(cluster.addresses(), &raw)) {
        qint64 leaderCommit = -1;
        qint64 restartedApplied = -2;
        for (const MemberStatus& member : *all) {
          if (member.answered && member.role == QLatin1String("leader"))
            leaderCommit = member.commit;
          if (member.answered && member.address == first->address)
            restartedApplied = member.applied;
        }
        caughtUp = leaderCommit > 0 && restartedApplied == leaderCommit;
      }
      if (!caughtUp) QTest::qWait(kPollMs);
    }
    CHECK(caughtUp,
          qPrintable(QStringLiteral("the restarted node did not catch up: %1%2").arg(raw, logs())));

    // Sequential reads with the restarted node as the only contact point,
    // through the CLI, and through a client that prefers followers (the CLI
    // may serve sequential reads from the leader's connection).
    std::vector<Write> acked;
    for (const Write& write : writes) {
      if (write.acknowledged) acked.push_back(write);
    }
    QVERIFY(!acked.empty());
    for (const Write& write : {acked.front(), acked[acked.size() / 2], acked.back()}) {
      const CliRun run =
          cli({first->address}, {QStringLiteral("get"), QString::fromStdString(write.key),
                                 QStringLiteral("--consistency"), QStringLiteral("sequential")});
      const QJsonObject object = QJsonDocument::fromJson(run.out).object();
      CHECK(run.exitCode == 0 && object.value(QStringLiteral("ok")).toBool() &&
                object.value(QStringLiteral("result")).toString().toStdString() == write.value,
            qPrintable(QStringLiteral("sequential get %1 from the restarted node: %2 (want %3)%4")
                           .arg(QString::fromStdString(write.key), run.describe(),
                                QString::fromStdString(write.value), logs())));
    }
    std::unique_ptr<Client> follower =
        makeClient({first->address}, 5000, copycat::client::ServerSelection::Followers);
    const QString stale = checkAcknowledged(*follower, acked, Consistency::Sequential);
    CHECK(stale.isEmpty(),
          qPrintable(
              QStringLiteral("sequential reads at the restarted node:\n%1%2").arg(stale, logs())));
  }

  void kill_all_and_restart_from_disk() {
    ProcessCluster& cluster = newCluster(3);
    QVERIFY(cluster.valid());
    QVERIFY(cluster.startAll(3));
    QString raw;
    CHECK(waitForLeader(cluster.addresses(), &raw),
          qPrintable(QStringLiteral("no leader: %1%2").arg(raw, logs())));
    std::vector<Write> writes;
    CHECK(shellPuts(cluster.addresses(), QStringLiteral("a"), 30, writes, &raw) > 0,
          qPrintable(raw + logs()));
    QCOMPARE(acknowledgedCount(writes), 30);

    // Round 0: restarted without --bootstrap; round 1: with the original
    // --bootstrap still on the command line (the daemon must recover).
    for (int round = 0; round < 2; ++round) {
      for (int i = 0; i < 3; ++i) cluster.sigkill(i);
      for (int i = 0; i < 3; ++i) {
        QVERIFY(!cluster.isRunning(i));
        QVERIFY(cluster.start(i, round == 0 ? QStringList{} : cluster.bootstrapMode(3)));
      }
      const std::optional<Leader> leader = waitForLeader(cluster.addresses(), &raw);
      CHECK(leader, qPrintable(QStringLiteral("round %1: no leader after the restart: %2%3")
                                   .arg(round)
                                   .arg(raw, logs())));
      for (int i = 0; i < 3; ++i) {
        CHECK(
            cluster.isRunning(i),
            qPrintable(QStringLiteral("round %1: copycatd %2 exited").arg(round).arg(i) + logs()));
      }
      std::unique_ptr<Client> reader = makeClient(cluster.addresses());
      const QString lost = checkAcknowledged(*reader, writes, Consistency::Linearizable);
      CHECK(lost.isEmpty(), qPrintable(QStringLiteral("round %1: lost after the restart:\n%2%3")
                                           .arg(round)
                                           .arg(lost, logs())));
      const qint64 index =
          shellPuts(cluster.addresses(), QStringLiteral("r%1-").arg(round), 10, writes, &raw);
      CHECK(index > 0 && acknowledgedCount(writes) == 30 + 10 * (round + 1),
            qPrintable(QStringLiteral("round %1: new writes: %2%3").arg(round).arg(raw, logs())));
      CHECK(waitApplied(cluster.addresses(), cluster.addresses(), index, &raw),
            qPrintable(raw + logs()));
    }
    std::unique_ptr<Client> reader = makeClient(cluster.addresses());
    const QString lost = checkAcknowledged(*reader, writes, Consistency::Linearizable);
    CHECK(lost.isEmpty(), qPrintable(lost + logs()));
  }

  void fourth_joins_and_one_leaves() {
    ProcessCluster& cluster = newCluster(4);
    QVERIFY(cluster.valid());
    QVERIFY(cluster.startAll(3));
    const QStringList originals = cluster.addresses().mid(0, 3);
    QString raw;
    CHECK(waitForLeader(originals, &raw),
          qPrintable(QStringLiteral("no leader: %1%2").arg(raw, logs())));
    std::vector<Write> writes;
    const qint64 written = shellPuts(originals, QStringLiteral("j"), 20, writes, &raw);
    CHECK(written > 0 && acknowledgedCount(writes) == 20, qPrintable(raw + logs()));

    const QString fourth = cluster.address(3);
    QVERIFY(cluster.start(3, {QStringLiteral("--join"), originals.join(QLatin1Char(','))}));
    std::optional<std::map<QString, QString>> kinds;
    CHECK(QTest::qWaitFor(
              [&] {
                kinds = members(originals, &raw);
                return kinds && kinds->count(fourth) && kinds->at(fourth) == QLatin1String("voter");
              },
              kCatchUpWaitMs),
          qPrintable(QStringLiteral("%1 is not listed as a voter: %2%3").arg(fourth, raw, logs())));
    QVERIFY(cluster.isRunning(3));
    CHECK(waitApplied(originals, {fourth}, written, &raw), qPrintable(raw + logs()));

    const Write& probe = writes.back();
    CliRun run = cli({fourth}, {QStringLiteral("get"), QString::fromStdString(probe.key),
                                QStringLiteral("--consistency"), QStringLiteral("sequential")});
    CHECK(run.exitCode == 0 && QJsonDocument::fromJson(run.out)
                                       .object()
                                       .value(QStringLiteral("result"))
                                       .toString()
                                       .toStdString() == probe.value,
          qPrintable(run.describe() + logs()));
    {
      std::unique_ptr<Client> atFourth =
          makeClient({fourth}, 5000, copycat::client::ServerSelection::Followers);
      const QString missing = checkAcknowledged(*atFourth, writes, Consistency::Sequential);
      CHECK(missing.isEmpty(), qPrintable(missing + logs()));
    }

    // One of the original followers leaves.
    const std::optional<Leader> leader = waitForLeader(cluster.addresses(), &raw);
    CHECK(leader, qPrintable(raw + logs()));
    QString leaving;
    for (const QString& address : originals) {
      if (address != leader->address) leaving = address;
    }
    QStringList remaining = cluster.addresses();
    remaining.removeAll(leaving);
    run = cli(remaining, {QStringLiteral("leave"), leaving});
    CHECK(run.exitCode == 0, qPrintable(run.describe() + logs()));
    CHECK(QTest::qWaitFor(
              [&] {
                kinds = members(remaining, &raw);
                return kinds && kinds->size() == 3 && !kinds->count(leaving);
              },
              10000),
          qPrintable(QStringLiteral("%1 still listed: %2%3").arg(leaving, raw, logs())));
    const int leavingIndex = cluster.indexOf(leaving);
    CHECK(cluster.isRunning(leavingIndex),
          qPrintable(QStringLiteral("the removed copycatd exited") + logs()));

    const std::optional<Leader> before = waitForLeader(remaining, &raw);
    CHECK(before, qPrintable(raw + logs()));
    CHECK(shellPuts(remaining, QStringLiteral("after-leave-"), 10, writes, &raw) > 0,
          qPrintable(raw + logs()));

    // The removed server keeps running for three election timeouts (and
    // more) while writes go on: nobody's term moves.
    std::unique_ptr<Client> writer = makeClient(remaining, 3000);
    QElapsedTimer window;
    window.start();
    int i = 0;
    while (window.elapsed() < 3 * kElectionTimeoutMs + 600) {
      Write write{"during-" + std::to_string(i), "d" + std::to_string(i), false};
      auto result = writer->submit(kv::PutCommand(write.key, write.value)).result();
      if (!result) {
        QFAIL(qPrintable(QStringLiteral("write %1 failed while the removed server runs: %2%3")
                             .arg(i)
                             .arg(QString::fromStdString(result.error().message), logs())));
      }
      write.acknowledged = true;
      writes.push_back(write);
      ++i;
      QTest::qWait(20);
    }
    CHECK(cluster.isRunning(leavingIndex),
          qPrintable(QStringLiteral("the removed copycatd exited") + logs()));
    const std::optional<std::vector<MemberStatus>> after = status(remaining, &raw);
    CHECK(after, qPrintable(raw + logs()));
    for (const MemberStatus& member : *after) {
      CHECK(member.answered && member.term == before->term && member.leader == before->id,
            qPrintable(QStringLiteral("%1: term %2 leader %3, before: term %4 leader %5%6")
                           .arg(member.address)
                           .arg(member.term)
                           .arg(member.leader)
                           .arg(before->term)
                           .arg(before->id)
                           .arg(logs())));
    }
    qInfo("%s left; term %lld held for %lld ms (%d writes) while it ran; its log ends:\n%s",
          qPrintable(leaving), static_cast<long long>(before->term),
          static_cast<long long>(window.elapsed()), i,
          qPrintable(tailOf(cluster.logPath(leavingIndex), 4)));
    std::unique_ptr<Client> reader = makeClient(remaining);
    const QString lost = checkAcknowledged(*reader, writes, Consistency::Linearizable);
    CHECK(lost.isEmpty(), qPrintable(lost + logs()));
  }

  void cli_contract_against_real_cluster() {
    ProcessCluster& cluster = newCluster(3);
    QVERIFY(cluster.valid());
    QVERIFY(cluster.startAll(3));
    const QStringList all = cluster.addresses();
    QString raw;
    CHECK(waitForLeader(all, &raw), qPrintable(QStringLiteral("no leader: %1%2").arg(raw, logs())));

    const auto single = [&](const QStringList& command, QJsonObject* object) {
      const CliRun run = cli(all, command);
      const QList<QByteArray> lines = run.out.trimmed().split('\n');
      QJsonParseError error{};
      const QJsonDocument document = QJsonDocument::fromJson(run.out.trimmed(), &error);
      *object = document.object();
      const bool good = run.exitCode == 0 && lines.size() == 1 &&
                        error.error == QJsonParseError::NoError && document.isObject();
      if (!good)
        qWarning("%s: %s", qPrintable(command.join(QLatin1Char(' '))), qPrintable(run.describe()));
      return good;
    };
    const auto isIndex = [](const QJsonObject& object) {
      return object.value(QStringLiteral("index")).isDouble() &&
             object.value(QStringLiteral("index")).toInteger() > 0;
    };
    QJsonObject object;
    QVERIFY(
        single({QStringLiteral("put"), QStringLiteral("color"), QStringLiteral("red")}, &object));
    QCOMPARE(object.value(QStringLiteral("op")).toString(), QStringLiteral("put"));
    QCOMPARE(object.value(QStringLiteral("key")).toString(), QStringLiteral("color"));
    QCOMPARE(object.value(QStringLiteral("value")).toString(), QStringLiteral("red"));
    QCOMPARE(object.value(QStringLiteral("ok")), QJsonValue(true));
    QVERIFY(object.contains(QStringLiteral("result")));
    QVERIFY(object.value(QStringLiteral("result")).isNull());  // no previous value
    QVERIFY(isIndex(object));
    const qint64 putIndex = object.value(QStringLiteral("index")).toInteger();

    QVERIFY(single({QStringLiteral("get"), QStringLiteral("color")}, &object));
    QCOMPARE(object.value(QStringLiteral("op")).toString(), QStringLiteral("get"));
    QCOMPARE(object.value(QStringLiteral("key")).toString(), QStringLiteral("color"));
    QCOMPARE(object.value(QStringLiteral("ok")), QJsonValue(true));
    QCOMPARE(object.value(QStringLiteral("result")).toString(), QStringLiteral("red"));
    QVERIFY(isIndex(object));
    QVERIFY(object.value(QStringLiteral("index")).toInteger() >= putIndex);

    for (const QString& consistency :
         {QStringLiteral("linearizable"), QStringLiteral("lease"), QStringLiteral("sequential")}) {
      QVERIFY(single({QStringLiteral("get"), QStringLiteral("color"),
                      QStringLiteral("--consistency"), consistency},
                     &object));
      QCOMPARE(object.value(QStringLiteral("result")).toString(), QStringLiteral("red"));
    }

    // Each answer names the member that gave it: the leader for a write, a
    // follower for a sequential read sent to the followers.
    const std::optional<Leader> leader = agreedLeader(all, &raw);
    CHECK(leader, qPrintable(raw + logs()));
    QVERIFY(
        single({QStringLiteral("put"), QStringLiteral("shape"), QStringLiteral("round")}, &object));
    QCOMPARE(object.value(QStringLiteral("server")).toString(), leader->address);
    QVERIFY(single(
        {QStringLiteral("--connect-to"), QStringLiteral("followers"), QStringLiteral("get"),
         QStringLiteral("shape"), QStringLiteral("--consistency"), QStringLiteral("sequential")},
        &object));
    QCOMPARE(object.value(QStringLiteral("result")).toString(), QStringLiteral("round"));
    const QString reader = object.value(QStringLiteral("server")).toString();
    QVERIFY2(all.contains(reader) && reader != leader->address, qPrintable(reader));

    QVERIFY(single({QStringLiteral("get"), QStringLiteral("absent-key")}, &object));
    QCOMPARE(object.value(QStringLiteral("ok")), QJsonValue(true));
    QVERIFY(object.contains(QStringLiteral("result")));
    QVERIFY(object.value(QStringLiteral("result")).isNull());

    QVERIFY(single({QStringLiteral("cas"), QStringLiteral("color"), QStringLiteral("blue"),
                    QStringLiteral("green")},
                   &object));
    QCOMPARE(object.value(QStringLiteral("op")).toString(), QStringLiteral("cas"));
    QCOMPARE(object.value(QStringLiteral("ok")), QJsonValue(true));
    QCOMPARE(object.value(QStringLiteral("result")), QJsonValue(false));
    QVERIFY(isIndex(object));
    QVERIFY(single({QStringLiteral("cas"), QStringLiteral("color"), QStringLiteral("red"),
                    QStringLiteral("green")},
                   &object));
    QCOMPARE(object.value(QStringLiteral("result")), QJsonValue(true));
    QCOMPARE(object.value(QStringLiteral("key")).toString(), QStringLiteral("color"));
    QCOMPARE(object.value(QStringLiteral("value")).toString(), QStringLiteral("green"));

    QVERIFY(single({QStringLiteral("remove"), QStringLiteral("color")}, &object));
    QCOMPARE(object.value(QStringLiteral("op")).toString(), QStringLiteral("remove"));
    QCOMPARE(object.value(QStringLiteral("key")).toString(), QStringLiteral("color"));
    QCOMPARE(object.value(QStringLiteral("ok")), QJsonValue(true));
    QCOMPARE(object.value(QStringLiteral("result")).toString(), QStringLiteral("green"));
    QVERIFY(isIndex(object));
    QVERIFY(single({QStringLiteral("get"), QStringLiteral("color")}, &object));
    QVERIFY(object.value(QStringLiteral("result")).isNull());

    // status: one object per member with the eleven documented fields.
    CliRun run = cli(all, {QStringLiteral("status")});
    CHECK(run.exitCode == 0, qPrintable(run.describe()));
    const QJsonDocument statusDocument = QJsonDocument::fromJson(run.out);
    CHECK(statusDocument.isArray(), run.out.constData());
    QCOMPARE(statusDocument.array().size(), 3);
    QStringList seen;
    int leaders = 0;
    for (const QJsonValue& value : statusDocument.array()) {
      QVERIFY(value.isObject());
      const QJsonObject member = value.toObject();
      for (const char* field : {"id", "term", "leader", "commit", "applied", "last_index",
                                "durable", "snapshot_index", "log_bytes"}) {
        CHECK(member.value(QLatin1String(field)).isDouble(),
              qPrintable(QStringLiteral("field %1 missing or not a number in %2")
                             .arg(QLatin1String(field),
                                  QString::fromUtf8(QJsonDocument(member).toJson()))));
      }
      for (const char* field : {"address", "role"}) {
        CHECK(member.value(QLatin1String(field)).isString(),
              qPrintable(QStringLiteral("field %1 missing or not a string in %2")
                             .arg(QLatin1String(field),
                                  QString::fromUtf8(QJsonDocument(member).toJson()))));
      }
      // Something was written, and nothing is durable beyond the log's end.
      const qint64 durable = member.value(QStringLiteral("durable")).toInteger();
      CHECK(durable > 0 && durable <= member.value(QStringLiteral("last_index")).toInteger(),
            qPrintable(QString::fromUtf8(QJsonDocument(member).toJson())));
      seen << member.value(QStringLiteral("address")).toString();
      if (member.value(QStringLiteral("role")).toString() == QLatin1String("leader")) ++leaders;
    }
    seen.sort();
    QStringList expected = all;
    expected.sort();
    QCOMPARE(seen, expected);
    QCOMPARE(leaders, 1);

    // shell: one JSON object per line, in order, on one session.
    const QByteArray script =
        "put s1 one\n"
        "get s1 --consistency lease\n"
        "frobnicate s1\n"
        "put s2\n"
        "cas s1 one uno\n"
        "get s1 sequential\n"
        "remove s1\n"
        "get s1\n";
    run = cli(all, {QStringLiteral("shell")}, 5000, script);
    CHECK(run.exitCode == 0, qPrintable(run.describe()));
    const std::optional<std::vector<QJsonObject>> lines = jsonLines(run.out);
    CHECK(lines, qPrintable(run.describe()));
    CHECK(lines->size() == 8, qPrintable(run.describe()));
    const std::vector<std::pair<QString, bool>> expectedLines{
        {QStringLiteral("put"), true},         {QStringLiteral("get"), true},
        {QStringLiteral("frobnicate"), false}, {QStringLiteral("put"), false},
        {QStringLiteral("cas"), true},         {QStringLiteral("get"), true},
        {QStringLiteral("remove"), true},      {QStringLiteral("get"), true}};
    for (std::size_t i = 0; i < expectedLines.size(); ++i) {
      const QJsonObject& line = (*lines)[i];
      CHECK(line.value(QStringLiteral("op")).toString() == expectedLines[i].first &&
                line.value(QStringLiteral("ok")) == QJsonValue(expectedLines[i].second),
            qPrintable(
                QStringLiteral("line %1: %2")
                    .arg(i)
                    .arg(QString::fromUtf8(QJsonDocument(line).toJson(QJsonDocument::Compact)))));
      if (!expectedLines[i].second) {
        CHECK(line.value(QStringLiteral("error")).isString() &&
                  !line.value(QStringLiteral("error")).toString().isEmpty(),
              qPrintable(QStringLiteral("line %1 has no error text").arg(i)));
      } else {
        CHECK(isIndex(line), qPrintable(QStringLiteral("line %1 has no index").arg(i)));
      }
    }
    QCOMPARE((*lines)[1].value(QStringLiteral("result")).toString(), QStringLiteral("one"));
    QCOMPARE((*lines)[4].value(QStringLiteral("result")), QJsonValue(true));
    // Sequential on the same session: never older than what it wrote.
    QCOMPARE((*lines)[5].value(QStringLiteral("result")).toString(), QStringLiteral("uno"));
    QCOMPARE((*lines)[6].value(QStringLiteral("result")).toString(), QStringLiteral("uno"));
    QVERIFY((*lines)[7].value(QStringLiteral("result")).isNull());
    // Indexes of one session never go backwards.
    qint64 lastIndex = 0;
    for (const QJsonObject& line : *lines) {
      if (!line.value(QStringLiteral("ok")).toBool()) continue;
      QVERIFY(line.value(QStringLiteral("index")).toInteger() >= lastIndex);
      lastIndex = line.value(QStringLiteral("index")).toInteger();
    }

    // A closed port: exit 3 once the timeout passed.
    const QStringList closed = freeAddresses(1);
    QVERIFY(!closed.isEmpty());
    QElapsedTimer timer;
    timer.start();
    run = cli(closed, {QStringLiteral("get"), QStringLiteral("k")}, 500);
    CHECK(run.exitCode == 3, qPrintable(run.describe()));
    QVERIFY(!run.err.trimmed().isEmpty());
    CHECK(timer.elapsed() < 15000, qPrintable(QString::number(timer.elapsed())));

    // SIGTERM: a graceful exit 0 within 5 s.
    QProcess* daemon = cluster.process(2);
    QVERIFY(daemon && daemon->state() == QProcess::Running);
    daemon->terminate();
    CHECK(daemon->waitForFinished(5000),
          qPrintable(QStringLiteral("copycatd did not exit within 5 s of SIGTERM") + logs()));
    QCOMPARE(daemon->exitStatus(), QProcess::NormalExit);
    CHECK(daemon->exitCode() == 0,
          qPrintable(QStringLiteral("exit code %1").arg(daemon->exitCode()) + logs()));
  }

  void copycatd_usage_errors_data() {
    QTest::addColumn<QStringList>("arguments");
    const std::vector<quint16> port = copycat::server::freeLoopbackPorts(1);
    const QString address = QStringLiteral("127.0.0.1:%1").arg(port.empty() ? 29999 : port.front());
    const QString data = QDir::temp().filePath(QStringLiteral("copycatd-usage-never-created"));
    const QStringList valid{QStringLiteral("--address"), address, QStringLiteral("--data"), data};
    QTest::newRow("no arguments") << QStringList{};
    QTest::newRow("missing --data")
        << QStringList{QStringLiteral("--address"), address, QStringLiteral("--bootstrap")};
    QTest::newRow("invalid --address")
        << QStringList{QStringLiteral("--address"), QStringLiteral("nowhere"),
                       QStringLiteral("--data"), data, QStringLiteral("--bootstrap")};
    QTest::newRow("invalid --address port")
        << QStringList{QStringLiteral("--address"), QStringLiteral("127.0.0.1:99999"),
                       QStringLiteral("--data"), data};
    QTest::newRow("--bootstrap with --join")
        << valid + QStringList{QStringLiteral("--bootstrap"), address, QStringLiteral("--join"),
                               QStringLiteral("127.0.0.1:1")};
    QTest::newRow("--storage floppy")
        << valid + QStringList{QStringLiteral("--storage"), QStringLiteral("floppy")};
    QTest::newRow("--heartbeat-ms -5")
        << valid + QStringList{QStringLiteral("--heartbeat-ms"), QStringLiteral("-5")};
    QTest::newRow("--heartbeat-ms=-5") << valid + QStringList{QStringLiteral("--heartbeat-ms=-5")};
    QTest::newRow("--own-sync-delay-ms -1")
        << valid + QStringList{QStringLiteral("--own-sync-delay-ms"), QStringLiteral("-1")};
    QTest::newRow("--own-sync-delay-ms 5000")
        << valid + QStringList{QStringLiteral("--own-sync-delay-ms"), QStringLiteral("5000")};
    QTest::newRow("--follower-apply-delay-ms -1")
        << valid + QStringList{QStringLiteral("--follower-apply-delay-ms"), QStringLiteral("-1")};
    QTest::newRow("--follower-apply-delay-ms 1001")
        << valid + QStringList{QStringLiteral("--follower-apply-delay-ms"), QStringLiteral("1001")};
    QTest::newRow("unknown option") << valid + QStringList{QStringLiteral("--frobnicate")};
  }

  void copycatd_usage_errors() {
    QFETCH(QStringList, arguments);
    QProcess process;
    process.setChildProcessModifier(dieWithParent);
    process.start(QStringLiteral(COPYCATD_PATH), arguments);
    QVERIFY(process.waitForStarted(30000));
    if (!process.waitForFinished(15000)) {
      process.kill();
      process.waitForFinished();
      QFAIL(qPrintable(QStringLiteral("copycatd %1 kept running; stderr: %2")
                           .arg(arguments.join(QLatin1Char(' ')),
                                QString::fromUtf8(process.readAllStandardError().left(2000)))));
    }
    const QByteArray err = process.readAllStandardError();
    CHECK(process.exitStatus() == QProcess::NormalExit && process.exitCode() == 2,
          qPrintable(QStringLiteral("copycatd %1: exit %2, stderr: %3")
                         .arg(arguments.join(QLatin1Char(' ')))
                         .arg(process.exitCode())
                         .arg(QString::fromUtf8(err.left(2000)))));
    CHECK(!err.trimmed().isEmpty(), "no error text on stderr");
  }
};

void ProcessClusterTimingTest::electAndReplicate(int size) {
  ProcessCluster& cluster = newCluster(size);
  QVERIFY(cluster.valid());
  QVERIFY(cluster.startAll(size));
  QString raw;
  const std::optional<Leader> leader = waitForLeader(cluster.addresses(), &raw);
  CHECK(leader, qPrintable(QStringLiteral("no agreed leader: %1%2").arg(raw, logs())));

  // Exactly one leader in the highest term.
  const std::optional<std::vector<MemberStatus>> members = status(cluster.addresses(), &raw);
  CHECK(members && static_cast<int>(members->size()) == size, qPrintable(raw));
  qint64 highest = 0;
  for (const MemberStatus& member : *members) highest = std::max(highest, member.term);
  int leaders = 0;
  for (const MemberStatus& member : *members) {
    if (member.role == QLatin1String("leader") && member.term == highest) ++leaders;
  }
  CHECK(leaders == 1,
        qPrintable(QStringLiteral("%1 leaders in term %2: %3").arg(leaders).arg(highest).arg(raw)));

  std::vector<Write> writes;
  const qint64 last = shellPuts(cluster.addresses(), QStringLiteral("key"), 50, writes, &raw);
  CHECK(last > 0, qPrintable(raw + logs()));
  CHECK(acknowledgedCount(writes) == 50, qPrintable(raw + logs()));
  CHECK(waitApplied(cluster.addresses(), cluster.addresses(), last, &raw),
        qPrintable(
            QStringLiteral("not every member applied index %1: %2%3").arg(last).arg(raw, logs())));

  QByteArray input;
  for (const Write& write : writes) input += "get " + QByteArray::fromStdString(write.key) + '\n';
  const CliRun run = cli(cluster.addresses(), {QStringLiteral("shell")}, 5000, input);
  const std::optional<std::vector<QJsonObject>> lines = jsonLines(run.out);
  CHECK(run.exitCode == 0 && lines && lines->size() == writes.size(), qPrintable(run.describe()));
  for (std::size_t i = 0; i < writes.size(); ++i) {
    CHECK(
        (*lines)[i].value(QStringLiteral("ok")).toBool() &&
            (*lines)[i].value(QStringLiteral("result")).toString().toStdString() == writes[i].value,
        qPrintable(QStringLiteral("get %1: %2")
                       .arg(QString::fromStdString(writes[i].key),
                            QString::fromUtf8(
                                QJsonDocument((*lines)[i]).toJson(QJsonDocument::Compact)))));
  }
}

QTEST_GUILESS_MAIN(ProcessClusterTimingTest)
#include "process_cluster_timing_test.moc"
